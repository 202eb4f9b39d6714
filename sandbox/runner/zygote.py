"""The zygote: a fresh interpreter (exec'd, never forked from the runner) that forks each C.

By construction it has never seen a test: it is started as `runner --zygote FD` and its imports
are this module's, none of which is the test side (channel, proxies, decode, testproc).
tests/test_runner.py checks that list.  `spawn` and `stop` below are the runner's side of it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from .candidate import _candidate_child
from .common import _ZYGOTE_FD
from .framing import _sock_recv, _sock_send
from .limits import CHILD_ENV, _candidate_limits, _libc, _set_env
from .preload import _warm_up


def zygote_main(sock_fd: int, uids: tuple[int, int, int] | None) -> None:
    """Fork candidate processes on request; never returns a sample's data.

    Started by exec, with a clean env.  It never holds anything of a sample, so that no C can find
    an earlier sample in the memory it inherits: no test, no program (C reads its own from a
    memfd), no file name, no exit status in a Python object (C's status goes to the runner from a
    fixed ctypes buffer, zeroed after), no orphan (it is no subreaper: a C's daemons re-parent to
    the runner).  Each request carries only the job's limits, a uid and a scratch path.
    """
    import ctypes

    libc = _libc()
    libc.prctl, libc.waitpid  # noqa: B018 - resolved once here, not in every C
    status = ctypes.c_int(0)
    status_view = memoryview(status).cast("B")
    _warm_up()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # inherited by every C (no handler of ours in there)
    sock = socket.socket(fileno=sock_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    c_stdin = os.open(os.devnull, os.O_RDONLY)
    _set_env(HOME="/", TMPDIR="/tmp")  # from here on only these two change, per C
    limits_for: dict[tuple, list] = {}  # (timeout_s, memory_mb) -> C's limits
    _sock_send(sock, {"ready": True})  # warm: no job's deadline pays for our start
    while True:
        try:
            msg, fds = _sock_recv(sock)
        except (OSError, EOFError, ValueError):
            msg, fds = None, []
        op = msg.get("op") if msg else "exit"
        if op == "spawn":
            if msg.get("reap"):  # the last C, dead already (the runner saw it exit): its status is not needed
                libc.waitpid(int(msg["reap"]), ctypes.byref(status), 0)
                status.value = 0
            cuid = msg.get("uid") if uids else None
            key = (msg.get("timeout_s"), msg.get("memory_mb"), cuid is None)
            if key not in limits_for:
                if len(limits_for) >= 64:
                    limits_for.clear()
                limits_for[key] = _candidate_limits(msg, cuid)
            scratch = msg["scratch"]
            os.environ["HOME"] = os.environ["TMPDIR"] = scratch  # C's environment (CHILD_ENV + these)
            try:
                cpid = os.fork()
            except OSError:
                cpid = -1
            if cpid == 0:
                sock.close()
                _candidate_child(fds, c_stdin, cuid, scratch, limits_for[key])
            for fd in fds:
                os.close(fd)
            _sock_send(sock, {"pid": cpid})
        elif op == "reap":  # C was killed by the runner: wait for it, hand its status on untouched
            if libc.waitpid(int(msg["pid"]), ctypes.byref(status), 0) < 0:
                status.value = -1
            try:
                sock.sendall(status_view)
            finally:
                status.value = 0
        else:
            return


# -- the runner's side


def spawn(source: str, uids: tuple[int, int, int] | None) -> tuple[int, socket.socket]:
    """Exec a fresh interpreter as the zygote (not a fork: it must never have seen a test), with a
    clean env and its socket at _ZYGOTE_FD; returns its pid and the runner's end of the socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if theirs.fileno() == _ZYGOTE_FD:  # dup2 onto itself would keep close-on-exec set
        moved = socket.socket(fileno=os.dup(theirs.fileno()))
        theirs.close()
        theirs = moved
    args = [sys.executable, "-I", "-S", "-u", source, "--zygote", str(_ZYGOTE_FD)]
    if uids:
        args += ["--uids", ",".join(map(str, uids))]
    pid = os.posix_spawn(
        sys.executable,
        args,
        dict(CHILD_ENV),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, theirs.fileno(), _ZYGOTE_FD),
        ],
    )
    theirs.close()
    return pid, ours


def stop(pid: int | None, sock: socket.socket | None, wait: float) -> None:
    """Close the zygote's socket (asking it to exit first when `wait`), and reap it: SIGKILL once
    `wait` seconds passed."""
    if sock is not None:
        try:
            if wait:
                _sock_send(sock, {"op": "exit"})
        except OSError:
            pass
        sock.close()
    if pid is None:
        return
    end = time.monotonic() + wait
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done or time.monotonic() >= end:
            if not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            break
        time.sleep(0.005)
