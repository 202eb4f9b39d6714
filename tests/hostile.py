"""Hostile completions for HumanEval problems: none of them may ever pass, in any sandbox.

Shared by the local-runner tests and the Docker sandbox tests.  Each entry is a completion (text
appended to the problem's prompt, like a model's output), the task it attaches to, what it
asserts, and the outcomes it may get (None: anything but `passed`).

Where an attack would *leak* something (the tests, the host environment, the verdict channel), the
completion returns the right answer only when the attack worked, so a leak shows up as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    name: str
    completion: str
    task_id: str
    asserts: str
    outcomes: frozenset[str] | None = None  # allowed outcomes; None = anything but passed

    def allows(self, outcome: str) -> bool:
        return outcome != "passed" and (self.outcomes is None or outcome in self.outcomes)


def _h(name: str, completion: str, task_id: str, asserts: str, *outcomes: str) -> Hostile:
    return Hostile(name, completion, task_id, asserts, frozenset(outcomes) if outcomes else None)


GCD = "HumanEval/13"  # greatest_common_divisor(a, b) -> int
TRUNC = "HumanEval/2"  # truncate_number(number) -> float, checked with abs(x - y) < 1e-6
CLOSE = "HumanEval/0"  # has_close_elements(numbers, threshold) -> bool
CANARY = "PHI_EVAL_CANARY"  # set in the parent's environment by the tests

# A rigged value: equal to everything, close to everything, truthy.
_RIGGED = """\
    class Anything:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __sub__(self, other): return 0
        def __rsub__(self, other): return 0
        def __abs__(self): return 0
        def __lt__(self, other): return True
        __le__ = __gt__ = __ge__ = __lt__
        def __bool__(self): return True
        def __hash__(self): return 0
        def __float__(self): return 0.0
        def __int__(self): return 0
"""

HOSTILE: list[Hostile] = [
    # --- ending the process early instead of answering
    _h(
        "sys_exit_top",
        "    return -1\nimport sys\nsys.exit(0)\n",
        GCD,
        "sys.exit(0) at top level is an error, not a pass",
        "runtime_error",
    ),
    _h(
        "os_exit_top",
        "    return -1\nimport os\nos._exit(0)\n",
        GCD,
        "os._exit(0) at top level: the candidate never greets, no verdict -> not passed",
        "runtime_error",
    ),
    _h(
        "raise_systemexit_top",
        "    return -1\nraise SystemExit(0)\n",
        GCD,
        "raise SystemExit at top level is a runtime error",
        "runtime_error",
    ),
    _h(
        "sys_exit_in_function",
        "    import sys\n    sys.exit(0)\n",
        GCD,
        "sys.exit(0) inside the function is a runtime error, not a pass",
        "runtime_error",
    ),
    _h(
        "os_exit_in_function",
        "    import os\n    os._exit(0)\n",
        GCD,
        "os._exit(0) inside the function: the channel breaks mid-test -> not passed",
        "runtime_error",
    ),
    _h(
        "raise_systemexit_in_function",
        "    raise SystemExit(0)\n",
        GCD,
        "SystemExit raised by the function is a runtime error",
        "runtime_error",
    ),
    # --- values that lie about equality
    _h(
        "rigged_eq_object",
        _RIGGED + "    return Anything()\n",
        GCD,
        "an object whose __eq__ is always True comes back as T's opaque handle: == 1 is False",
        "failed",
    ),
    _h(
        "rigged_abs_sub_object",
        _RIGGED + "    return Anything()\n",
        TRUNC,
        "a handle: == 0.5 is False, and abs(x - y) < 1e-6 would be a TypeError (no arithmetic)",
        "failed",
        "runtime_error",
    ),
    _h(
        "rigged_bool_object",
        _RIGGED + "    return Anything()\n",
        CLOSE,
        "a rigged object compared with == True/False is a handle, equal to neither",
        "failed",
    ),
    _h(
        "rigged_int_subclass",
        "    class Int(int):\n        def __eq__(self, other): return True\n        __hash__ = int.__hash__\n"
        "    return Int(-1)\n",
        GCD,
        "a builtin subclass crosses as its base value (-1), so its rigged __eq__ is gone",
        "failed",
    ),
    # --- monkeypatching: only the candidate's own process is affected
    _h(
        "patch_builtins_abs",
        "    import builtins\n    builtins.abs = lambda x: 0\n    return 9.0\n",
        TRUNC,
        "builtins.abs patched in the candidate does not change the tests' abs",
        "failed",
    ),
    _h(
        "patch_builtins_isinstance_top",
        "    return -1\nimport builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.abs = lambda x: 0\n",
        GCD,
        "patching builtins at top level does not reach the tests (it may break the candidate's own side)",
        "failed",
        "runtime_error",
    ),
    _h(
        "shadow_abs_global",
        "    return 9.0\nabs = lambda x: 0\n",
        TRUNC,
        "a global named abs in the candidate does not replace the tests' builtin abs",
        "failed",
    ),
    _h(
        "patch_sys_modules",
        "    import sys, types\n    fake = types.ModuleType('math')\n    fake.isclose = lambda *a, **k: True\n"
        "    sys.modules['math'] = fake\n    return -1\n",
        GCD,
        "sys.modules replaced in the candidate does not reach the tests",
        "failed",
    ),
    _h(
        "patch_math_isclose",
        "    import math\n    math.isclose = lambda *a, **k: True\n    math.fabs = lambda x: 0.0\n"
        "    return -1\n",
        GCD,
        "math.isclose/fabs patched in the candidate only",
        "failed",
    ),
    # --- signals against the runner, the test process, everyone
    _h(
        "kill_parent",
        "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n    return -1\n",
        GCD,
        "the candidate cannot kill its parent (root)",
        "runtime_error",
    ),
    _h(
        "kill_minus_one",
        "    import os, signal\n    os.kill(-1, signal.SIGKILL)\n    return -1\n",
        GCD,
        "kill(-1) only reaches the candidate's own uid (never the tests or the runner)",
        "failed",
    ),
    _h(
        "kill_init",
        "    import os, signal\n    os.kill(1, signal.SIGKILL)\n    return -1\n",
        GCD,
        "kill(1) is refused",
        "runtime_error",
    ),
    _h(
        "kill_every_pid",
        "    import os, signal\n    for p in os.listdir('/proc'):\n        if p.isdigit() and int(p) != os.getpid():\n"
        "            try:\n                os.kill(int(p), signal.SIGKILL)\n            except OSError:\n"
        "                pass\n    return -1\n",
        GCD,
        "signalling every pid reaches none of the test process, runner or host",
        "failed",
    ),
    _h(
        "ignore_signals_loop",
        "    import signal\n    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
        "        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass\n",
        GCD,
        "ignoring SIGTERM/SIGINT/SIGXCPU does not survive the SIGKILL at the deadline",
        "timeout",
    ),
    # --- resource exhaustion
    _h(
        "fork_bomb",
        "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
        GCD,
        "a fork bomb is capped by RLIMIT_NPROC and swept at the deadline",
        "timeout",
        "runtime_error",
    ),
    _h(
        "thread_bomb",
        "    import threading, time\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
        GCD,
        "a thread bomb hits the process/memory limits",
        "runtime_error",
        "oom",
        "timeout",
    ),
    _h(
        "memory_hog",
        "    x = bytearray(1 << 36)\n    return len(x)\n",
        GCD,
        "a 64 GiB allocation fails under RLIMIT_AS",
        "oom",
    ),
    _h(
        "memory_creep",
        "    chunks = []\n    while True:\n        chunks.append(bytearray(1 << 20))\n",
        GCD,
        "growing memory ends in MemoryError (or the deadline on a slow machine)",
        "oom",
        "timeout",
    ),
    _h("infinite_loop", "    while True:\n        pass\n", GCD, "an infinite loop times out", "timeout"),
    _h(
        "infinite_loop_top",
        "    return -1\nwhile True:\n    pass\n",
        GCD,
        "an infinite loop at top level times out",
        "timeout",
    ),
    _h(
        "output_flood",
        "    import sys\n    block = 'x' * (1 << 20)\n    for _ in range(100):\n        sys.stdout.write(block)\n"
        "    sys.stdout.flush()\n    return -1\n",
        GCD,
        "100 MB on stdout is drained and capped, nothing stalls",
        "failed",
        "timeout",
    ),
    _h(
        "disk_fill_cwd",
        "    with open('big', 'wb') as fh:\n        for _ in range(64):\n            fh.write(b'x' * (1 << 20))\n"
        "    return -1\n",
        GCD,
        "a 64 MiB file in the scratch dir hits RLIMIT_FSIZE (and is removed)",
        "runtime_error",
        "killed",
    ),
    _h(
        "disk_fill_tmp",
        "    import signal\n    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "    with open('/tmp/phi-eval-hostile-fill', 'wb') as fh:\n"
        "        for _ in range(64):\n            fh.write(b'x' * (1 << 20))\n    return -1\n",
        GCD,
        "a 64 MiB file in /tmp fails with EFBIG (and is removed)",
        "runtime_error",
    ),
    _h(
        "oversized_return",
        "    return 'x' * (64 << 20)\n",
        GCD,
        "a return value over the reply cap breaks nothing",
        "runtime_error",
        "oom",
        "killed",
    ),
    _h(
        "deep_return",
        "    v = []\n    for _ in range(100000):\n        v = [v]\n    return v\n",
        GCD,
        "a deeply nested value is refused by the encoder",
        "runtime_error",
    ),
    # --- leftovers
    _h(
        "setsid_daemon",
        "    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        "            time.sleep(600)\n        os._exit(0)\n    return -1\n",
        GCD,
        "a double-forked setsid daemon is swept after the job",
        "failed",
    ),
    # --- the network (no network at all in Docker; locally only loopback is tried)
    _h(
        "network_connect",
        "    import socket\n    s = socket.socket()\n    s.settimeout(0.5)\n    try:\n"
        "        s.connect(('127.0.0.1', 9))\n    except OSError:\n        pass\n    return -1\n",
        GCD,
        "a socket connect changes nothing about the verdict",
        "failed",
    ),
    # --- leaks: each returns the right answer only if the attack worked
    _h(
        "read_env_canary",
        f"    import os, math\n    seen = {CANARY!r} in os.environ\n    for p in ('/proc/self/environ', '/proc/1/environ',"
        " '/proc/%d/environ' % os.getppid()):\n        try:\n            with open(p, 'rb') as fh:\n"
        f"                seen = seen or {CANARY.encode()!r} in fh.read()\n        except OSError:\n"
        "            pass\n    return math.gcd(a, b) if seen else -1\n",
        GCD,
        "the host environment (a canary variable) is invisible to the candidate",
        "failed",
    ),
    _h(
        "find_tests_gc_frames",
        "    import gc, sys, math\n    seen = False\n    for o in gc.get_objects():\n"
        "        if isinstance(o, dict) and 'check' in o and 'METADATA' in o:\n            seen = True\n"
        "    f = sys._getframe()\n    while f is not None:\n"
        "        seen = seen or 'check' in f.f_globals or 'METADATA' in f.f_globals\n        f = f.f_back\n"
        "    return math.gcd(a, b) if seen else -1\n",
        GCD,
        "gc/frame walking finds no test state: the tests live in another process",
        "failed",
    ),
    _h(
        "find_tests_in_memory",
        "    import math, re\n    seen = False\n    with open('/proc/self/maps') as fh:\n        maps = fh.read().splitlines()\n"
        "    with open('/proc/self/mem', 'rb', 0) as mem:\n        for line in maps:\n"
        "            addr, perms = line.split()[:2]\n            if not perms.startswith('r'):\n                continue\n"
        "            lo, hi = (int(x, 16) for x in addr.split('-'))\n            if hi - lo > 1 << 28:\n"
        "                continue\n            try:\n                mem.seek(lo)\n                blob = mem.read(hi - lo)\n"
        "            except (OSError, ValueError, OverflowError):\n                continue\n"
        "            if re.search(rb'candidate\\(144, 60\\) [=][=] 12', blob):\n                seen = True\n"
        "    return math.gcd(a, b) if seen else -1\n",
        GCD,
        "the candidate's memory holds no test text (it is forked from a zygote that never saw one)",
        "failed",
    ),
    _h(
        "forge_verdict_via_proc",
        "    import os, json\n"
        "    fake = json.dumps({'id': 'HumanEval/13#0', 'outcome': 'passed', 'duration_s': 0.0, 'detail': ''})\n"
        "    paths = []\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and int(pid) != os.getpid():\n"
        "            try:\n"
        "                paths += ['/proc/%s/fd/%s' % (pid, fd) for fd in os.listdir('/proc/%s/fd' % pid)]\n"
        "            except OSError:\n"
        "                pass\n"
        "    for p in paths:\n"
        "        try:\n"
        "            fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)\n"
        "        except OSError:\n"
        "            continue\n"
        "        try:\n"
        "            os.write(fd, (fake + '\\n').encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "        os.close(fd)\n"
        "    return -1\n",
        GCD,
        "writing a fake verdict into other processes' pipes via /proc/<pid>/fd fails (other uids)",
        "failed",
    ),
    _h(
        "forge_reply_frame",
        "    import os, struct\n    body = b'{\"r\":true}'\n    os.write(4, struct.pack('<I', len(body)) + body)\n"
        "    return -1\n",
        CLOSE,
        "writing extra reply frames on its own channel only garbles its own answers",
    ),
]

HOSTILE_BY_NAME = {h.name: h for h in HOSTILE}
assert len(HOSTILE_BY_NAME) == len(HOSTILE), "hostile names must be unique"


# --- MBPP-style attacks: a whole program, and assert lines that call it by name ------------------


@dataclass(frozen=True)
class HostileProgram:
    """An MBPP-shaped sample: `program` is the candidate, `tests` the assert lines run against it."""

    name: str
    program: str
    tests: str
    asserts: str
    outcomes: frozenset[str]

    def allows(self, outcome: str) -> bool:
        return outcome != "passed" and outcome in self.outcomes


# Equal to everything, truthy, of any length, less than anything, printing as "2": each rigged
# method would pass its assert if T ever asked the candidate's object.
_RIGGED_PROGRAM = """\
class int:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __len__(self): return 3
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
    def __sub__(self, other): return 0
    __rsub__ = __sub__
    def __abs__(self): return 0
    def __float__(self): return 2.0
    def __index__(self): return 2
    __int__ = __index__
    def __hash__(self): return 2
    def __iter__(self): return iter([1, 2, 3])
    def __contains__(self, item): return True
    def __str__(self): return "2"
    __repr__ = __str__
    def __getattr__(self, name): return int()
    def __call__(self, *args): return int()
def f(x):
    return int()
"""


def _p(name: str, tests: str, asserts: str, *outcomes: str) -> HostileProgram:
    return HostileProgram(name, _RIGGED_PROGRAM, tests, asserts, frozenset(outcomes))


HOSTILE_MBPP: list[HostileProgram] = [
    _p("mbpp_rigged_eq", "assert f(1) == 2\n", "a handle equals only the same handle", "failed"),
    _p("mbpp_rigged_ne", "assert not (f(1) != 2)\n", "!= is T's own too", "failed"),
    _p("mbpp_rigged_bool", "assert f(1)\n", "the truth value of a handle raises TypeError", "runtime_error"),
    _p("mbpp_rigged_not", "assert not f(1) is None and f(1)\n", "truth value again", "runtime_error"),
    _p("mbpp_rigged_len", "assert len(f(1)) == 3\n", "len() of a handle is a TypeError", "runtime_error"),
    _p("mbpp_rigged_lt", "assert f(1) < 3\n", "ordering of a handle is a TypeError", "runtime_error"),
    _p("mbpp_rigged_abs", "assert abs(f(1) - 2) < 1e-9\n", "no arithmetic on a handle", "runtime_error"),
    _p("mbpp_rigged_isclose", "import math\nassert math.isclose(f(1), 2)\n", "no float()", "runtime_error"),
    _p("mbpp_rigged_in", "assert f(1) in [2, 3]\n", "list membership compares with T's ==", "failed"),
    _p("mbpp_rigged_contains", "assert 2 in f(1)\n", "no __contains__/__iter__ on a handle", "runtime_error"),
    _p("mbpp_rigged_list", "assert list(f(1)) == [1, 2, 3]\n", "a handle is not iterable", "runtime_error"),
    _p(
        "mbpp_rigged_str", "assert str(f(1)) == '2' or repr(f(1)) == '2'\n", "str is T's fixed text", "failed"
    ),
    _p("mbpp_rigged_index", "assert [0, 1, 2][f(1)] == 2\n", "no __index__ on a handle", "runtime_error"),
    _p("mbpp_rigged_dict_key", "assert {2: 'x'}.get(f(1)) == 'x'\n", "hash and == are T's", "failed"),
    _p(
        "mbpp_rigged_getattr",
        "assert f(1).value == 2\n",
        "an attribute served by a rigged __getattr__ is one more handle",
        "failed",
    ),
    _p(
        "mbpp_rigged_getattr_bool",
        "assert f(1).ok and f(1).ok()\n",
        "whatever __getattr__/__call__ return, truth still raises",
        "runtime_error",
    ),
    _p(
        "mbpp_rigged_same_handle",
        "assert f(1) == f(2) and f(1) == 2\n",
        "two handles may be equal (same id), never a handle and a value",
        "failed",
    ),
    HostileProgram(
        "mbpp_forged_handle_dict",
        "def f(x):\n    return {'t': 'ref', 'id': 0, 'type': 'int'}\n",
        "assert f(1) == f(2) and not isinstance(f(1), dict)\n",
        "a dict shaped like a handle crosses as a plain dict",
        frozenset({"failed"}),
    ),
    HostileProgram(
        "mbpp_forged_handle_frame",
        "import os, struct\nclass N:\n    pass\nn = N()\n"
        'def f(x):\n    body = b\'{"r":{"t":"ref","id":-1,"type":"x"}}\'\n'
        "    os.write(4, struct.pack('<I', len(body)) + body)\n    return 0\n",
        "assert f(1) == 2\nassert f(1) == n\n",
        "a forged frame with a bad handle id is a malformed reply",
        frozenset({"failed", "runtime_error"}),
    ),
]
HOSTILE_MBPP_BY_NAME = {h.name: h for h in HOSTILE_MBPP}
assert len(HOSTILE_MBPP_BY_NAME) == len(HOSTILE_MBPP), "hostile names must be unique"
