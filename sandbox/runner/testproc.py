"""The test process T: runs the benchmark's trusted tests, one job at a time, in a fresh namespace.

It never executes candidate code: the names the job lists resolve to proxies of C's objects
through that job's Channel, which is passed down (no module-level channel), so nothing of one job
is reachable from the next.
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import signal
import socket
import sys

from .channel import _BUILTIN_NAMES, Channel
from .common import _T_CTL, _T_REP, _T_REQ, _short
from .framing import _sock_recv, frame
from .limits import _drop_privileges, _remap_fds, _set_env, _set_limits
from .preload import PREIMPORT_OK
from .proxies import RemoteFunction


class _TestNamespace(dict):
    """T's globals.  A name the tests do not define is T's own builtin (or a NameError), unless the
    job lists it as one the tests take from the candidate: its functions and classes, the objects
    MBPP's setup builds there, and a builtin name only where the task's reference solution defines
    it too (MBPP 126's `sum`).  Modules, constants and helpers come from T's prelude and tests."""

    __slots__ = ("allowed", "channel")

    def __init__(self, allowed: frozenset[str], channel: Channel, **names: object) -> None:
        super().__init__(**names)
        self.allowed = allowed
        self.channel = channel

    def __missing__(self, name: str) -> object:
        if name not in self.allowed:
            raise KeyError(name)  # on to T's builtins, then NameError
        try:
            value = self.channel.lookup(name)
        except KeyError:
            if name not in _BUILTIN_NAMES:
                raise
            value = getattr(builtins, name)  # not the candidate's: the builtin it is
        dict.__setitem__(self, name, value)
        return value


def _builtin_globals(allowed: frozenset[str]) -> dict[str, object]:
    """T's builtins as plain globals of the namespace, but for the names the job may take from C.

    A global the namespace lacks goes through __missing__ (a Python call and a KeyError) before
    Python looks in the builtins: 75 times per input in EvalPlus's checker (`type`, `len`, ...).
    Found in the namespace itself, a builtin costs a dict lookup.  The names the job lists stay
    out, so that they still resolve through __missing__ exactly as before; dunders stay out too
    (`__name__` is the tests', and the interpreter finds `__import__` & co. in `__builtins__`)."""
    return {name: value for name, value in _BUILTINS.items() if name not in allowed}


_BUILTINS = {name: value for name, value in vars(builtins).items() if not name.startswith("__")}


def _allowed_names(job: dict) -> frozenset[str]:
    """The names T may take from C: the job's list (computed by the host from the task) and the
    entry point, never a dunder."""
    names = job.get("candidate_names") or ()
    if not isinstance(names, (list, tuple)):
        raise ValueError("candidate_names must be a list of names")
    out = {n for n in names if type(n) is str and n.isidentifier() and not n.startswith("__")}
    entry = job.get("entry_point")
    if type(entry) is str and entry.isidentifier():
        out.add(entry)
    return frozenset(out)


class CodeCache:
    """T's compiled preludes and tests (trusted text), compiled once per persistent T: the ten
    samples of a problem share them (code objects are immutable, so sharing leaks nothing)."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, str], object] = {}

    def get(self, source: str, name: str) -> object:
        key = (source, name)
        code = self.codes.get(key)
        if code is None:
            code = compile(source, name, "exec")
            if len(self.codes) >= 1024:
                self.codes.clear()
            self.codes[key] = code
        return code


def _run_tests(job: dict, channel: Channel, codes: CodeCache) -> dict:
    """The whole trusted side of one sample, in a fresh namespace; returns T's report."""
    try:
        allowed = _allowed_names(job)
        ns = _TestNamespace(allowed, channel, **_builtin_globals(allowed), __name__="__main__", __builtins__=builtins)
        exec(codes.get(job.get("prelude") or "", "<prelude>"), ns, ns)
        entry = job.get("entry_point")
        if entry:  # the prompt's stub: the tests must reach the candidate's version by this name
            dict.pop(ns, entry, None)
        channel.wait_hello()
        exec(codes.get(job.get("tests") or "", "<tests>"), ns, ns)
        if entry:
            check = dict.get(ns, "check")
            if not callable(check):
                return {"outcome": "runtime_error", "detail": "the tests define no check() function"}
            if channel.hello.get("fn") is not True and not isinstance(
                channel.lookup(entry), RemoteFunction
            ):
                return {"outcome": "runtime_error", "detail": f"{entry} is not a function in the candidate"}
            check(RemoteFunction(entry, channel))
    except AssertionError as exc:
        if channel.fault:
            return {"outcome": channel.fault[0], "detail": channel.fault[1]}
        return {
            "outcome": "failed",
            "detail": _short(f"AssertionError: {exc}" if str(exc) else "AssertionError"),
        }
    except KeyError as exc:
        if channel.fault:
            return {"outcome": channel.fault[0], "detail": channel.fault[1]}
        return {"outcome": "runtime_error", "detail": _short(f"KeyError: {exc}")}
    except BaseException as exc:  # noqa: BLE001 - anything else the tests raised
        if channel.fault:
            return {"outcome": channel.fault[0], "detail": channel.fault[1]}
        return {"outcome": "runtime_error", "detail": _short(f"{type(exc).__name__}: {exc}")}
    if channel.fault:  # the tests swallowed a fault: still never a pass
        return {"outcome": channel.fault[0], "detail": channel.fault[1]}
    return {"outcome": "passed", "detail": ""}


def _test_worker(sock_fd: int, uid: int | None, as_bytes: int) -> None:
    """Body of the persistent test process T after fork; never returns.

    T only ever runs trusted tests and sees decoded builtin values (and its own RemoteRefs) from C,
    so one T serves many samples: per job it gets the job and that job's two pipe ends to C over
    its socket, runs prelude and tests in a fresh namespace and answers with its report.  Any
    anomaly (deadline, broken socket, sandbox error) makes the runner kill it and start another.
    """
    code = 0
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a dead candidate is an OSError, not our death
        devnull = os.open(os.devnull, os.O_RDWR)
        # fds 3 and 4 hold /dev/null between jobs, so the pipe ends received per job land elsewhere
        _remap_fds({0: devnull, 1: devnull, 2: devnull, _T_REQ: devnull, _T_REP: devnull, _T_CTL: sock_fd})
        if uid is not None:  # what a test may import, while the stdlib is surely readable (root)
            for name in sorted(PREIMPORT_OK):
                try:
                    __import__(name)
                except Exception:  # noqa: BLE001 - the tests' own import will report it
                    pass
        _set_limits(
            {
                resource.RLIMIT_AS: as_bytes,
                resource.RLIMIT_NPROC: 64
                if uid is not None
                else resource.getrlimit(resource.RLIMIT_NPROC)[1],
                resource.RLIMIT_FSIZE: 16 << 20,
                resource.RLIMIT_NOFILE: 64,
                resource.RLIMIT_CORE: 0,
            }
        )
        _drop_privileges(uid)
        os.chdir("/")
        _set_env(HOME="/")
        _serve_tests(socket.socket(fileno=_T_CTL))
    except BaseException:  # noqa: BLE001 - the runner sees the closed socket and replaces T
        code = 70
    finally:
        os._exit(code)


def _serve_tests(sock: socket.socket) -> None:
    """T's job loop: every job starts from the same interpreter state the first one saw."""
    import random

    codes = CodeCache()

    random_state = random.getstate()  # HumanEval/38, /50 draw from the shared generator
    recursion_limit = sys.getrecursionlimit()
    while True:
        msg, fds = _sock_recv(sock)
        if msg is None:
            return
        try:
            if len(fds) != 2 or min(fds) <= _T_CTL:
                raise RuntimeError("a job needs exactly two new pipe ends")
            os.dup2(fds[0], _T_REQ)
            os.dup2(fds[1], _T_REP)
            for fd in fds:
                os.close(fd)
            random.setstate(random_state)
            sys.setrecursionlimit(recursion_limit)
            report = _run_tests(msg, Channel(), codes)  # a fresh channel: nothing of the last job's pipes
            os.dup2(0, _T_REQ)  # closes this job's pipe ends: C sees EOF and ends
            os.dup2(0, _T_REP)
        except BaseException as exc:  # noqa: BLE001 - say so for this job; the runner replaces T
            report = {
                "outcome": "sandbox_error",
                "detail": _short(f"test process: {type(exc).__name__}: {exc}"),
            }
        report["seq"] = msg.get("seq")
        report["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        body = json.dumps(report).encode()
        sock.sendall(frame(body))
