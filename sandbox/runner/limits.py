"""Privileges and limits: dropping to a sandbox uid, resource limits, the environment and the fds
a child starts with, prctl through libc, and reaping children."""

from __future__ import annotations

import math
import os
import resource

CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


def _remap_fds(mapping: dict[int, int]) -> None:
    """Put each source fd at its target number and close every other fd (so nothing leaks in)."""
    high = {target: os.dup(src) for target, src in mapping.items()}  # dup first: sources may collide
    for target, tmp in high.items():
        os.dup2(tmp, target)
    top = max(mapping) + 1
    os.closerange(top, 1 << 16)
    for fd in range(top):
        if fd not in mapping:
            try:
                os.close(fd)
            except OSError:
                pass



def _drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("privilege drop failed")


def _limit_pairs(limits: dict[int, int]) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) for each limit, never above the current hard limit (a child
    inherits its parent's, so the zygote can work this out before the fork)."""
    pairs = []
    for res, value in limits.items():
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        pairs.append((res, (value, value)))
    return pairs


def _set_limits(limits: dict[int, int]) -> None:
    for res, pair in _limit_pairs(limits):
        resource.setrlimit(res, pair)


def _prctl(option: int, value: int) -> None:
    """libc's prctl (looked up before the zygote forks: a first ctypes call costs ~0.2 ms)."""
    try:
        _libc().prctl(option, value, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort: the uid sweep does not depend on it
        pass


def _set_env(**extra: str) -> None:
    """Make os.environ exactly CHILD_ENV plus `extra`, touching only what differs (the zygote's
    environment already is CHILD_ENV)."""
    want = {**CHILD_ENV, **extra}
    for key in [k for k in os.environ if k not in want]:
        del os.environ[key]
    for key, value in want.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _subreaper() -> None:
    """Orphans (a candidate's daemons) re-parent to this process, so they can be reaped and killed."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _reap(statuses: dict[int, int]) -> bool:
    """Reap every exited child into `statuses`; True while some child is still alive."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        statuses[pid] = status


def _reap_all() -> dict[int, int]:
    """Reap every exited child (PID 1 inherits orphans); returns {pid: status}."""
    out: dict[int, int] = {}
    _reap(out)
    return out



def _count_uid_processes(uid: int) -> int:
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _candidate_limits(msg: dict, uid: int | None) -> list[tuple[int, tuple[int, int]]]:
    """C's resource limits (and its CPU seconds), computed in the zygote before the fork: every
    object a fresh child touches costs it a copied page, so the child only makes the syscalls."""
    timeout_s, memory_mb = float(msg["timeout_s"]), int(msg["memory_mb"])
    nproc = 64 if uid is not None else _count_uid_processes(os.getuid()) + 64
    limits = {
        resource.RLIMIT_AS: memory_mb << 20,
        resource.RLIMIT_NPROC: nproc,
        resource.RLIMIT_FSIZE: 16 << 20,
        resource.RLIMIT_NOFILE: 64,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_MEMLOCK: 0,
        resource.RLIMIT_MSGQUEUE: 0,
    }
    cpu = int(math.ceil(timeout_s)) + 1
    return [*_limit_pairs(limits), (resource.RLIMIT_CPU, (cpu, cpu + 1))]  # SIGXCPU, then SIGKILL


_LIBC: list = []


def _libc():  # noqa: ANN202 - a ctypes.CDLL
    """libc through ctypes, loaded once (before forks: ctypes costs ~0.2 ms a load)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]
