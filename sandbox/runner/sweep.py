"""After each sample, the sweep: kill every process of the sandbox uids, remove their files and
IPC objects, and read the counters that show what a sample could leave for the next one."""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from collections.abc import Callable

from .limits import _libc, _reap_all

# Every place a sandbox uid can write (the container's root is read-only; /dev/mqueue holds POSIX
# message queues, /dev/shm POSIX shared memory and semaphores).
SCRATCH_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")


class Dirty(Exception):
    """A sample left something the runner cannot remove for certain: the runner answers, then exits
    (the executor replaces it), so no later sample ever runs beside what it left."""


def _proc_uids(pid: str) -> tuple[int, ...] | None:
    """A process's real, effective, saved and filesystem uids (None once it is gone).  From
    /proc/PID/status, not the owner of /proc/PID: a non-dumpable process's entry is root's."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    at = text.find(b"\nUid:")
    if at < 0:
        return None
    return tuple(int(u) for u in text[at + 5 : text.find(b"\n", at + 5)].split())


class _Sweeper:
    """Kills every process of the sandbox uids and removes their files, as the runner itself.

    Processes: found by scanning /proc (each process's uids from its status) and killed with the
    runner's CAP_KILL, never by switching to their uid, so nothing they do can signal the runner.
    A /proc entry already seen to belong to another uid is remembered by (pid, inode): a new
    process, even on a reused pid, has a new inode.  Files: removed with the filesystem uid set to
    their owner (the runner has no CAP_DAC_OVERRIDE in the container), whole trees however deep,
    odd permissions included.  Whatever cannot be removed for certain raises Dirty.
    """

    def __init__(self, uids: frozenset[int], reap: Callable[[], None]) -> None:
        self.uids, self.reap = uids, reap
        self.safe: set[tuple[int, int]] = set()  # (pid, /proc inode) of processes of other uids
        self.watch: _RootWatch | None = None
        try:
            self.watch = _RootWatch()
        except Exception:  # noqa: BLE001 - no inotify: every sweep lists the roots
            pass
        self.roots = [r for r in SCRATCH_ROOTS if os.path.isdir(r)]

    def kill_processes(self, keep: set[int], timeout: float = 5.0) -> bool:
        """SIGKILL every process of a sandbox uid but `keep`, until none is left (zombies reaped);
        returns whether there were any.  Dirty if some outlive `timeout`."""
        me = os.getpid()
        found = False
        deadline = time.monotonic() + timeout
        while True:
            alive = False
            for entry in os.scandir("/proc"):
                name = entry.name
                if not name.isdigit():
                    continue
                pid = int(name)
                if pid == me or pid in keep:
                    continue
                try:
                    ident = (pid, entry.inode())
                except OSError:
                    continue
                if ident in self.safe:
                    continue
                uids = _proc_uids(name)
                if uids is None:
                    continue
                if not self.uids.intersection(uids):
                    if len(self.safe) > 65536:
                        self.safe.clear()
                    self.safe.add(ident)
                    continue
                alive = found = True
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not alive:
                return found
            self.reap()
            if time.monotonic() > deadline:
                raise Dirty("a process of the sample survived SIGKILL")
            time.sleep(0.0005)

    def remove_files(self, uids: frozenset[int], full: bool = False) -> bool:
        """Remove every entry of `uids` from the writable roots (only the names that appeared
        since the last look, unless `full` or the watch overflowed); returns whether there were
        any besides empty scratch directories.  Dirty if one cannot be removed."""
        names = None if full or self.watch is None else self.watch.created()
        litter = False
        for root in self.roots:
            listed = names.get(root) if names is not None else None
            try:
                paths = [e.path for e in os.scandir(root)] if listed is None else [f"{root}/{n}" for n in listed]
            except OSError:
                continue
            for path in paths:
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_uid not in uids:
                    continue
                if not _remove_as(st.st_uid, path, st.st_mode & 0o170000 == 0o040000):
                    raise Dirty(f"could not remove {path}")
                if not (root == "/tmp" and os.path.basename(path).startswith("phi-eval-")):
                    litter = True
        return litter

    def remove_ipc(self, uids: frozenset[int]) -> bool:
        """Remove the System V IPC objects (shared memory, semaphores, message queues) of `uids`;
        the container's sysctls forbid making any, so this matters for --sandbox local."""
        found = False
        for kind in ("shm", "sem", "msg"):
            try:
                with open(f"/proc/sysvipc/{kind}", "rb") as fh:
                    header, *rows = fh.read().split(b"\n")
            except OSError:
                continue
            cols = header.split()
            try:
                at_id, at_uid, at_cuid = 1, cols.index(b"uid"), cols.index(b"cuid")
            except ValueError:
                continue
            for row in rows:
                fields = row.split()
                if len(fields) <= max(at_uid, at_cuid):
                    continue
                owner = next((int(fields[i]) for i in (at_cuid, at_uid) if int(fields[i]) in uids), None)
                if owner is None:
                    continue
                found = True
                if not _ipc_remove(kind, int(fields[at_id]), owner):
                    raise Dirty(f"could not remove a System V {kind} object")
        return found


def _remove_as(uid: int, path: str, is_dir: bool) -> bool:
    """Remove `path` (a whole tree when a directory) with the filesystem uid set to its owner;
    True once it is gone."""
    libc = _libc()
    libc.setfsuid(uid)
    try:
        if is_dir:
            try:
                os.rmdir(path)  # the common case: C's scratch, left empty
            except OSError:
                _rmtree_deep(path)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
        return not os.path.lexists(path)
    finally:
        libc.setfsuid(0)


def _ipc_remove(kind: str, ident: int, owner: int) -> bool:
    """IPC_RMID as the object's owner (only it, or CAP_SYS_ADMIN, may): the runner's effective
    uid changes, its real and saved uids stay root, so no process of `owner` could signal it."""
    libc = _libc()
    os.setresuid(-1, owner, -1)
    try:
        if kind == "shm":
            rc = libc.shmctl(ident, 0, None)
        elif kind == "sem":
            rc = libc.semctl(ident, 0, 0)
        else:
            rc = libc.msgctl(ident, 0, None)
    finally:
        os.setresuid(-1, 0, -1)
    return rc == 0


def _rmtree_deep(path: str, budget_s: float = 10.0) -> None:
    """Remove a directory tree of any depth without following symlinks: one directory fd at a time
    (a tree deeper than the fd limit is fine), each directory made accessible first (the candidate
    may have made it unreadable).  Needs no imports (the stdlib may be unreadable)."""
    deadline = time.monotonic() + budget_s
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        os.chmod(path, 0o700, follow_symlinks=False)
        cur = os.open(path, flags)
    except OSError:
        return
    names: list[str] = []  # the path below `path`, one name per level
    try:
        while time.monotonic() < deadline:
            sub = None
            with os.scandir(cur) as entries:
                listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for name, is_dir in listed:
                if is_dir:
                    sub = name
                    continue
                try:
                    os.unlink(name, dir_fd=cur)
                except OSError:
                    pass
            if sub is not None:
                try:
                    os.chmod(sub, 0o700, dir_fd=cur, follow_symlinks=False)
                    nxt = os.open(sub, flags, dir_fd=cur)
                except OSError:
                    return
                os.close(cur)
                cur = nxt
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=cur)
            os.close(cur)
            cur = parent
            try:
                os.rmdir(names.pop(), dir_fd=cur)
            except OSError:
                return
    finally:
        os.close(cur)
    try:
        os.rmdir(path)
    except OSError:
        pass


_IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW, _IN_IGNORED = 0x80, 0x100, 0x4000, 0x8000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


class _RootWatch:
    """The names that appeared in the scratch roots since the last look (inotify), so that the
    sweep after each job need not list and stat every entry of /tmp.

    Complete by construction: an entry can only appear in a directory by create, mkdir, mknod,
    symlink, link or a rename into it, and each of those is an IN_CREATE or IN_MOVED_TO event on
    the directory.  An overflowed queue or a lost watch makes the next sweep list the roots again.
    """

    def __init__(self) -> None:
        import ctypes

        libc = _libc()
        self.fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.roots: dict[int, str] = {}
        for root in SCRATCH_ROOTS:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(root), _IN_CREATE | _IN_MOVED_TO)
            if wd >= 0:
                self.roots[wd] = root

    def created(self) -> dict[str, set[str]] | None:
        """{root: names that appeared}; a root without a working watch is absent (so listed);
        None after an overflow (list every root)."""
        out: dict[str, set[str]] = {root: set() for root in self.roots.values()}
        overflow = False
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            pos = 0
            while pos + 16 <= len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16 : pos + 16 + size].split(b"\0", 1)[0]
                pos += 16 + size
                if mask & _IN_Q_OVERFLOW:
                    overflow = True
                elif mask & _IN_IGNORED:
                    out.pop(self.roots.pop(wd, ""), None)
                elif wd in self.roots and name:
                    out[self.roots[wd]].add(os.fsdecode(name))
        return None if overflow else {root: out[root] for root in self.roots.values() if root in out}


class _Counter:
    """A kernel counter read through an fd kept open (a pread costs ~1-10 us, an open ~100 us)."""

    def __init__(self, path: str) -> None:
        try:
            self.fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self.fd = None

    def read(self) -> bytes | None:
        if self.fd is None:
            return None
        try:
            return os.pread(self.fd, 64, 0)
        except OSError:
            return None


# The pid most recently allocated in this pid namespace, and the packets sent over `lo` (the only
# interface: --network none).  Whatever a sample could leave in its network namespace for the next
# one to see (a socket in TIME_WAIT, traffic) took packets over lo; a socket that never carried any
# dies with its process.
_LAST_PID = _Counter("/proc/sys/kernel/ns_last_pid")
_LO_PACKETS = _Counter("/sys/class/net/lo/statistics/tx_packets")


def _ipc_forbidden() -> bool:
    """Whether no System V IPC object can be made here (the container's sysctls: no segment,
    semaphore set or message queue identifiers at all), so there is none to look for."""
    try:
        with open("/proc/sys/kernel/shmmni", "rb") as fh:
            shm = int(fh.read())
        with open("/proc/sys/kernel/msgmni", "rb") as fh:
            msg = int(fh.read())
        with open("/proc/sys/kernel/sem", "rb") as fh:
            sem = int(fh.read().split()[3])
    except (OSError, ValueError, IndexError):
        return False
    return shm == msg == sem == 0


class InodeProbe:
    """The inode numbers the next probe directory of each tmpfs root must get."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}  # per tmpfs root: the inode number the next probe must get

    def check(self) -> None:
        """A tmpfs numbers its inodes one by one, so a file a sample made, even one it deleted,
        would show in the numbers the next sample's files get.  A probe directory per root, made
        after each sample, must get the number the last probe predicts (after one scratch
        directory, in /tmp); a higher one means the sample made files: dirty."""
        for root in ("/tmp", "/dev/shm"):
            probe = f"{root}/.phi-eval-probe-{os.getpid()}"
            try:
                os.mkdir(probe, 0o700)
                ino = os.lstat(probe).st_ino
                os.rmdir(probe)
            except OSError:
                continue
            expected = self.next.get(root)
            self.next[root] = ino + (2 if root == "/tmp" else 1)  # /tmp: the next C's scratch first
            if expected is not None and ino > expected:
                self.next.clear()
                raise Dirty(f"the sample made files in {root} (its inode numbers moved)")


def sweep_uids(todo: frozenset[int]) -> int:
    """`--sweep`: the host's cleanup after a runner was killed (as root, for sandbox uids only)."""
    if os.geteuid() == 0 and todo and min(todo) > 0:
        sweeper = _Sweeper(todo, _reap_all)
        try:
            sweeper.kill_processes(set())
            sweeper.remove_files(todo, full=True)
            sweeper.remove_ipc(todo)
        except Dirty as exc:
            print(f"runner: {exc}", file=sys.stderr)
            return 1
    return 0
