"""`--sandbox local`: the trusted runner as plain host subprocesses, for machines without Docker.

The verdict logic is the same as in the container (sandbox/runner/ splits every sample into an
untrusted candidate process and a trusted test process), but there is no container: no network
cut, no read-only filesystem, the host's files are readable to the sandbox uids.  Hence the loud
warning and the explicit opt-in.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult
from phi_eval.paths import sandbox_dir
from phi_eval.sandbox.blame import Fault, FaultKind, is_infrastructure, verdict_after

GRACE_S = 5.0  # host-side slack over a job's own timeout before its runner is declared hung
READY_TIMEOUT_S = 30.0
# Sandbox uids for local runners: far above any login or container range, and different per
# executor (from our pid), so two executors on one host never sweep each other's processes.
LOCAL_UID_BASE = 2_100_000_000
UIDS_PER_EXECUTOR = 4096
UIDS_PER_WORKER = 32  # T's, then 31 candidate uids the runner takes in turn, one per sample
MAX_WORKERS = UIDS_PER_EXECUTOR // UIDS_PER_WORKER  # 128: each worker's uids inside its executor's
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

WARNING = (
    "[bold red]LOCAL SANDBOX: model-written code runs directly on this machine, NOT in a container.[/]\n"
    "It gets separate unprivileged uids, resource limits and a process sweep, but it can use the "
    "network and read every world-readable file.  Use --sandbox local only on a throwaway machine "
    "without Docker; everywhere else use the default --sandbox docker."
)


def local_uids(worker: int, pid: int | None = None) -> tuple[int, int]:
    """(test uid, first candidate uid) for one local worker; its candidate uids are the
    UIDS_PER_WORKER - 1 from there."""
    slot = (pid if pid is not None else os.getpid()) % ((2**31 - 1 - LOCAL_UID_BASE) // UIDS_PER_EXECUTOR)
    base = LOCAL_UID_BASE + slot * UIDS_PER_EXECUTOR + UIDS_PER_WORKER * worker
    return base, base + 1


class _Worker:
    """One runner process and its line buffer."""

    def __init__(self, index: int, runner: Path, uids: tuple[int, int] | None) -> None:
        self.index = index
        self.runner = runner
        self.uids = uids
        self.proc: subprocess.Popen | None = None
        self.buf = b""
        self.job: ExecJob | None = None
        self.attempt = 0
        self.deadline = 0.0
        self.info: dict = {}
        self.log = tempfile.TemporaryFile()  # the runner's stderr, for sandbox_error details

    def start(self) -> None:
        args = [sys.executable, "-I", "-S", "-u", str(self.runner)]
        if self.uids:
            args += ["--uids", f"{self.uids[0]},{self.uids[1]},{UIDS_PER_WORKER - 1}"]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(CHILD_ENV),
            cwd="/",
            start_new_session=True,  # Ctrl-C at the terminal is handled by close(), not by them
        )
        self.buf = b""
        line = self._read_line(time.monotonic() + READY_TIMEOUT_S)
        try:
            self.info = json.loads(line) if line else {}
        except ValueError:
            self.info = {}
        if not self.info.get("ready"):
            self.kill()
            raise PhiEvalError(f"the local sandbox runner did not start ({self.log_tail() or 'no output'})")

    @property
    def fd(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def lines(self) -> list[bytes] | None:
        """Complete lines available now; None when the runner closed its stdout (it died)."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return done

    def send(self, job: ExecJob, attempt: int, grace_s: float) -> bool:
        assert self.proc is not None and self.proc.stdin is not None
        self.job, self.attempt = job, attempt
        self.deadline = time.monotonic() + job.timeout_s + grace_s
        try:
            self.proc.stdin.write(json.dumps(job.to_json()).encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - 400))
            lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1][-200:] if lines else ""
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the runner only (the next runner of this worker sweeps its uids when it starts)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        self._reap()

    def stop(self, timeout: float) -> None:
        """Close stdin (the runner's clean exit) and wait; kill after `timeout`."""
        if self.proc is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self.proc = None


class LocalExecutor:
    """Runs ExecJobs on `workers` local runner processes (see the module docstring for the caveats)."""

    def __init__(self, workers: int | None = None, *, grace_s: float = GRACE_S, warn: bool = True) -> None:
        if warn:
            from rich.console import Console
            from rich.panel import Panel

            Console(stderr=True).print(Panel(WARNING, title="phi-eval: --sandbox local", border_style="red"))
        self.grace_s = grace_s
        if workers is not None and workers < 0:
            raise PhiEvalError(f"--workers must be 0 (one per core) or more (got {workers})")
        if workers is not None and workers > MAX_WORKERS:  # past it, uids would reach another process's
            raise PhiEvalError(f"--workers can be at most {MAX_WORKERS} per process (got {workers})")
        n = min(MAX_WORKERS, workers or os.cpu_count() or 1)  # 0 or None: one per core, as in Docker
        runner = sandbox_dir() / "runner"  # a package: `python3 <folder>` runs its __main__.py
        if not (runner / "__main__.py").is_file():
            raise PhiEvalError(f"sandbox runner missing at {runner}; reinstall phi-eval")
        root = os.geteuid() == 0
        self.uids = [local_uids(i) for i in range(n)] if root else []
        self._workers = [_Worker(i, runner, self.uids[i] if root else None) for i in range(n)]
        self._dirty = False  # a runner was killed: sweep its uids from here at close()
        self._closed = False
        try:
            for w in self._workers:
                w.start()
        except BaseException:
            self.close()
            raise

    def all_uids(self) -> set[int]:
        """Every uid this executor's runners may give a sandbox process."""
        return {u for t, c in self.uids for u in (t, *range(c, c + UIDS_PER_WORKER - 1))}

    def runner_pids(self) -> list[tuple[int, int | None]]:
        """(runner pid, its zygote's pid) of each worker: what tests and tools inspect."""
        return [(w.proc.pid, w.info.get("zygote")) for w in self._workers if w.proc is not None]

    @property
    def isolation(self) -> str:
        """'uid' (T and C as separate unprivileged uids) or 'same-uid' (not root)."""
        return self._workers[0].info.get("isolation", "?") if self._workers else "?"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: Iterable[ExecJob], on_result: Callable[[ExecResult], None]) -> None:
        """Feed every job to the runners; call on_result (from this thread) as verdicts arrive."""
        if self._closed:
            raise PhiEvalError("this local executor is closed")
        pending: deque[tuple[ExecJob, int]] = deque((job, 0) for job in jobs)
        busy: dict[int, _Worker] = {}
        while pending or busy:
            for w in self._workers:
                if w.index not in busy and pending:
                    job, attempt = pending.popleft()
                    if w.send(job, attempt, self.grace_s):
                        busy[w.index] = w
                    else:
                        self._fail(w, pending, on_result, "runner died before the job was sent", "died")
            if not busy:
                continue
            now = time.monotonic()
            timeout = max(0.0, min(w.deadline for w in busy.values()) - now)
            fds = {w.fd: w for w in busy.values()}
            readable = select.select(list(fds), [], [], timeout)[0]
            for fd in readable:
                w = fds[fd]
                lines = w.lines()
                if lines is None:
                    del busy[w.index]
                    self._fail(w, pending, on_result, "runner died: " + (w.log_tail() or "no message"), "died")
                    continue
                for line in lines:
                    if w.job is None or not line.strip():
                        continue
                    parsed = self._parse(line, w.job)
                    if parsed is None or is_infrastructure(parsed[0]):
                        del busy[w.index]
                        if parsed is None:
                            self._fail(w, pending, on_result, "runner sent a malformed reply", "died")
                        else:  # the runner's own machinery failed: a fresh runner
                            self._fail(w, pending, on_result, parsed[0].detail, "runner")
                        break
                    result, dirty = parsed
                    w.job = None
                    del busy[w.index]
                    if dirty:  # the sample left something: this runner exits; a fresh one replaces it
                        self._restart(w, "a sample left a mess")
                    on_result(result)
                    break
            now = time.monotonic()
            for w in list(busy.values()):
                if w.job is not None and now >= w.deadline:
                    del busy[w.index]
                    self._fail(w, pending, on_result, "no answer by the host deadline", "hung")

    @staticmethod
    def _parse(line: bytes, job: ExecJob) -> tuple[ExecResult, bool] | None:
        """(the verdict, whether the runner said the sample left it dirty), or None for nonsense."""
        try:
            data = json.loads(line)
            if data.get("id") != job.id:
                return None
            result = ExecResult(
                id=job.id,
                outcome=str(data["outcome"]),
                duration_s=float(data.get("duration_s", 0.0)),
                detail=str(data.get("detail", "")),
            )
            return result, bool(data.get("dirty"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def _restart(self, w: _Worker, why: str) -> None:
        w.kill()
        self._dirty = True
        try:
            w.start()
        except PhiEvalError:
            raise PhiEvalError(f"a local sandbox runner could not be restarted ({why})") from None

    def _fail(
        self, w: _Worker, pending: deque, on_result: Callable[[ExecResult], None], why: str, kind: FaultKind
    ) -> None:
        """Replace a dead or hung runner; run its job again or classify it, as blame decides."""
        job, attempt = w.job, w.attempt
        w.job = None
        w.kill()
        self._dirty = True
        try:
            w.start()
        except PhiEvalError:
            pass
        if job is None:
            return
        verdict = verdict_after(job, attempt + 1, Fault(kind, why[:250]), self.grace_s)
        if verdict is None:
            pending.appendleft((job, attempt + 1))
        else:
            on_result(verdict)
        if w.proc is None:
            raise PhiEvalError(f"a local sandbox runner could not be restarted ({why})")

    def close(self) -> None:
        """Stop every runner and leave no process of the sandbox uids behind (Ctrl-C included)."""
        if self._closed:
            return
        self._closed = True
        interrupted = sys.exc_info()[0] is not None
        for w in self._workers:
            if interrupted:
                w.kill()
                self._dirty = True
            else:
                w.stop(timeout=10)
        if self.uids and (self._dirty or interrupted):
            self._sweep()
        for w in self._workers:
            w.log.close()

    def _sweep(self) -> None:
        runner = sandbox_dir() / "runner"
        flat = ",".join(f"{t},{c}-{c + UIDS_PER_WORKER - 2}" for t, c in self.uids)
        subprocess.run(
            [sys.executable, "-I", "-S", str(runner), "--sweep", flat],
            env=dict(CHILD_ENV),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )


__all__ = ["LocalExecutor", "local_uids"]
