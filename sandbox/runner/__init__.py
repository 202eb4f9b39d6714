"""phi-eval's trusted runner: executes untrusted completions so that they cannot forge a verdict.

Stdlib only (it runs inside a bare container as PID 1, and on the host for `--sandbox local`), and
shipped as this one folder: `python3 -I -S -u <this folder>` runs __main__.py.

Protocol: started as `python3 -I -S -u runner [--uids T,C[,N]]`, it prints one line
`{"ready": true, "runner": <sha256[:12] of this folder's files>, "isolation": "uid"|"same-uid", ...}`, then reads
newline-delimited JSON jobs (phi_eval.jobs.ExecJob.to_json() plus optional `max_output_bytes`; its
`env` names the environment C starts the program in, envs.py) on stdin and answers each with one line `{"id", "outcome", "duration_s", "detail"}`.  EOF -> clean exit.
A reply with `"dirty": reason` says the sample left something that could not be removed for
certain: the runner exits right after it, without running the jobs queued behind, and the
executor re-sends those to a fresh runner (the verdict itself stands: the sample made the mess).

Why it is shaped like this (each sample is split across processes that cannot reach each other):
- The candidate process C runs the model's program.  It is forked by a *zygote*: a separate
  interpreter started once with a clean environment, which never holds anything of any sample (no
  test, no program: C reads its own from a memfd; no file name, no exit status), so C cannot find
  expected values or another sample's code in its own memory (gc, frames, /proc/self/mem).
- The test process T runs the benchmark's trusted tests and never executes candidate code.  It
  reaches into C only for the names the job lists (the functions and classes the tests mean to
  call, computed by the host from the task's reference solution); every other name is T's own
  (builtins, the prelude's imports) or a NameError, so nothing of the candidate computes an
  expected value.  A listed name resolves to a proxy: a call pickles (name, args) to C (trusted ->
  untrusted) and C answers in a tagged JSON that carries only plain values (builtin values, and
  deque, range, dict views, Fraction, Decimal, re.Match and iterators as T's own objects built from plain
  data), so a returned object with a rigged `__eq__` is impossible: T compares its own values.
- Any other object (an instance of a candidate class, a class, a function) stays in C, in a
  per-sample handle table; T gets a RemoteRef, its own class, which C's object can only be reached
  through by call, getattr and setattr (MBPP's `root.left = Node(2)`), each a round trip answered
  the same way.  Its ==, hash and str are the handle's; truth, len, order, arithmetic and iteration
  raise TypeError, so no candidate code decides a comparison or a truth test in T.
- T reports to the runner over a private pipe, and only after the tests ran to the end; an exit
  code, an early exit or a dead process is never a pass.
- As root, T and C run as different unprivileged uids with no groups, so C can neither signal,
  ptrace nor read /proc of T or the runner; each sample's C gets the next uid of a range of its
  own (`--uids T,C,N`), so nothing one sample left could signal the next or share its process
  limit.  Before a verdict is written, the runner itself (never switching its real uid, so
  nothing of the sample can signal it) kills every process of the sandbox uids but T, removes the
  sample's files from every writable root (whole trees, any depth or mode) and IPC objects, and
  in the container checks that the sample moved no pid counter, socket or loopback counter that
  the next sample could read.  What it cannot undo makes the runner dirty (see the protocol).
- T, which runs only trusted tests and only ever holds builtin values decoded from C, is one
  persistent process: each job runs in a fresh namespace, from the same interpreter state.  It is
  killed (and uid T swept) on a deadline, a broken channel, a sandbox error, after T_MAX_JOBS jobs,
  past T_MAX_RSS_KB, or after T_IDLE_S without work, so an idle runner holds no sandbox process.

The parts, one job each: common (shared constants), framing (the three wire formats), encode and
decode (the value codec), limits (privileges, rlimits, env, fds), envs (the named environments a
job's program may start in, such as evalplus's), preload (imports and warm-up
before forks), candidate (C), proxies, channel and testproc (T), zygote, sweep (the after-sample
checks), verdict (job line, report, outcome, reply) and orchestrator (the Runner).  This file
imports nothing, so importing the zygote's modules pulls in nothing of the test side.
"""
