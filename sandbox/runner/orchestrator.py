"""The orchestrator: reads jobs, runs each as a (T, C) pair, checks the sample left nothing, and
writes verdicts (the protocol is in __init__.py's docstring)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import sys
import time

from . import zygote
from .common import (
    MAX_OUTPUT_BYTES,
    MAX_REPORT_BYTES,
    T_IDLE_S,
    T_MAX_JOBS,
    T_MAX_RSS_KB,
    _short,
    package_sha256,
)
from .framing import _sock_exact, _sock_recv, _sock_send, _write_all, collect, read_lines
from .limits import _reap_all, _subreaper
from .preload import _warm_up
from .sweep import _LAST_PID, _LO_PACKETS, Dirty, InodeProbe, _ipc_forbidden, _rmtree_deep, _Sweeper
from .testproc import _test_worker
from .verdict import check_job, parse_report, verdict
from .verdict import reply as reply_line


class _Broken(Exception):
    """The sandbox itself failed before the job could run (the zygote cannot fork): the runner
    exits without a verdict, so the executor runs the job again on a fresh one."""


class Runner:
    """Reads jobs, runs each as a (T, C) pair, checks the sample left nothing, writes verdicts."""

    def __init__(self, uids: tuple[int, int, int] | None) -> None:
        self.uids = uids  # (uid of T, first candidate uid, number of candidate uids), or None
        self.source = os.path.dirname(os.path.abspath(__file__))  # the package: `python3 <it>` runs it
        self.zygote: int | None = None
        self.zsock: socket.socket | None = None
        self.statuses: dict[int, int] = {}
        self.t: _TestProcess | None = None
        self.seq = 0
        self.dirty: str | None = None  # what the last sample left: answer, then exit
        self.reap_owed = 0  # a dead C the zygote reaps with the next spawn
        self.inodes = InodeProbe()
        self.sweeper = (
            _Sweeper(frozenset([uids[0], *range(uids[1], uids[1] + uids[2])]), self._reap_orphans)
            if uids
            else None
        )
        # PID 1 in a container of its own: the pid counter and the network namespace are the
        # sandbox's alone, so a sample that moved them is seen (in --sandbox local they are the host's).
        self.own_namespaces = os.getpid() == 1 and _LAST_PID.read() is not None
        self.net = _LO_PACKETS.read() if self.own_namespaces else None
        self.ipc_possible = not (self.own_namespaces and _ipc_forbidden())
        if self.own_namespaces:  # the baseline for the first sample's inode check
            try:
                self.inodes.check()
            except Dirty:
                pass
        _warm_up()
        self._start_zygote()

    def _candidate_uid(self) -> int | None:
        """A candidate uid per sample, in turn through the range: a process a sample left could
        never signal the next sample's, nor share its process limit (and the sweep kills it)."""
        if not self.uids:
            return None
        return self.uids[1] + self.seq % self.uids[2]

    def _reap_orphans(self) -> None:
        """Reap every exited child; only T's and the zygote's statuses are kept (the rest are a
        sample's orphans, which re-parent to the runner)."""
        keep = {self.zygote, self.t.pid if self.t else None}
        for pid, status in _reap_all().items():
            if pid in keep:
                self.statuses[pid] = status

    def _sweep_all(self) -> None:
        """Kill every process of the sandbox uids and remove all their files (at start, after a
        zygote died, at the end): nothing of an earlier runner or sample survives it."""
        if self.sweeper is None:
            return
        try:
            keep = {p for p in (self.zygote, self.t.pid if self.t else None) if p}
            self.sweeper.kill_processes(keep)
            self.sweeper.remove_files(self.sweeper.uids, full=True)
            self.sweeper.remove_ipc(self.sweeper.uids)
        except Dirty as exc:
            self.dirty = str(exc)

    def _start_zygote(self) -> None:
        """Exec a fresh interpreter (not a fork: it must never have seen a test) with a clean env."""
        self._kill_t()
        self._stop_zygote(wait=0)
        self.reap_owed = 0  # the old zygote's children re-parent to the runner, which reaps them
        self._sweep_all()  # a crashed predecessor may have left processes behind
        self.zygote, self.zsock = zygote.spawn(self.source, self.uids)
        if _sock_recv(self.zsock)[0] is None:
            raise RuntimeError("the zygote did not start")

    # -- the persistent test process

    def _test_process(self, as_bytes: int) -> _TestProcess:
        """The live T, replaced when it has served its share or needs a larger memory limit."""
        t = self.t
        if t is not None and (t.jobs >= T_MAX_JOBS or t.as_bytes < as_bytes):
            self._retire_t()
            t = None
        if t is None:
            t = self.t = self._start_t(as_bytes)
        return t

    def _start_t(self, as_bytes: int) -> _TestProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self.zsock.close()
            _test_worker(theirs.detach(), self.uids[0] if self.uids else None, as_bytes)
        theirs.close()
        return _TestProcess(pid, ours, as_bytes)

    def _kill_t(self) -> int | None:
        """Kill the current T (if any) and reap it; returns its wait status."""
        t, self.t = self.t, None
        if t is None:
            return None
        t.sock.close()
        for target in (-t.pid, t.pid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        return self._wait(t.pid)

    def _retire_t(self) -> None:
        """Kill T between jobs (idle, recycled or resized); it never forks, so nothing of its uid
        is left (the next sweep would kill it)."""
        self._kill_t()

    def _stop_zygote(self, wait: float) -> None:
        zygote.stop(self.zygote, self.zsock, wait)
        self.zsock = None
        if self.zygote is not None:
            self.statuses.pop(self.zygote, None)
            self.zygote = None

    def ready_line(self) -> dict:
        digest = package_sha256(self.source)[:12]
        return {
            "ready": True,
            "runner": digest,
            "isolation": "uid" if self.uids else "same-uid",
            "uids": list(self.uids[:2]) if self.uids else None,
            "candidate_uids": self.uids[2] if self.uids else 0,
            "pid": os.getpid(),
            "zygote": self.zygote,
        }

    def serve(self, inp, out) -> None:  # noqa: ANN001 - binary file objects
        out.write(json.dumps(self.ready_line()) + "\n")
        out.flush()
        try:
            for line in read_lines(inp, T_IDLE_S, lambda: self.t is not None, self._retire_t):
                if not line.strip():
                    continue
                reply = self.handle_line(line)
                out.write(json.dumps(reply) + "\n")
                out.flush()
                self._reap_orphans()
                if self.dirty:  # the jobs already queued here run on the executor's next runner
                    break
        except _Broken:
            pass
        self._shutdown()

    def _shutdown(self) -> None:
        self._kill_t()
        self._stop_zygote(wait=10)
        self._sweep_all()

    def handle_line(self, line: bytes) -> dict:
        t0 = time.monotonic()
        job_id = None
        try:
            job = json.loads(line)
            job_id = job.get("id") if isinstance(job, dict) else None
            check_job(job)
        except (ValueError, RecursionError) as exc:
            return reply_line(job_id, "sandbox_error", t0, f"bad request: {exc}")
        try:
            outcome, detail = self.run_job(job)
        except _Broken:
            raise
        except Exception as exc:  # noqa: BLE001 - keep serving; the zygote is restarted
            outcome, detail = "sandbox_error", f"runner: {type(exc).__name__}: {exc}"
            try:
                self._start_zygote()  # and a fresh T
            except Exception as exc2:  # noqa: BLE001
                detail += f"; zygote restart failed: {exc2}"
        answer = reply_line(job_id, outcome, t0, detail)
        if self.dirty:
            answer["dirty"] = _short(self.dirty)
        return answer

    def run_job(self, job: dict) -> tuple[str, str]:
        timeout_s, memory_mb = float(job["timeout_s"]), int(job["memory_mb"])
        max_out = int(job.get("max_output_bytes") or MAX_OUTPUT_BYTES)
        deadline = time.monotonic() + timeout_s
        as_bytes = max(2 * memory_mb, 2048) << 20
        self.seq += 1
        entry = job.get("entry_point") if isinstance(job.get("entry_point"), str) else None
        work = {
            "seq": self.seq,
            "prelude": job.get("prelude") or "",
            "tests": job.get("tests") or "",
            "entry_point": job.get("entry_point"),
            "candidate_names": job.get("candidate_names") or [],
        }
        cuid = self._candidate_uid()
        scratch = f"/tmp/phi-eval-{os.getpid()}-{self.seq}-{os.urandom(4).hex()}"
        # C's program goes to C alone, through a memfd only it reads: never through the zygote.
        src = os.memfd_create("candidate", os.MFD_CLOEXEC)
        fds = [src]
        try:
            _write_all(src, json.dumps({"candidate": job["candidate"], "entry": entry, "env": job.get("env")}).encode())
            os.lseek(src, 0, os.SEEK_SET)
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            fds += [req_r, req_w, rep_r, rep_w]
            out_r, out_w = os.pipe()
            fds.append(out_w)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        try:
            t = self._test_process(as_bytes)
            try:
                _sock_send(t.sock, work, [req_w, rep_r])
            except OSError:  # T died while idle: a fresh one takes the job
                self._retire_t()
                t = self._test_process(as_bytes)
                _sock_send(t.sock, work, [req_w, rep_r])
            t.jobs += 1
            spawn = {
                "op": "spawn",
                "timeout_s": timeout_s,
                "memory_mb": memory_mb,
                "uid": cuid,
                "scratch": scratch,
                "reap": self.reap_owed,
            }
            self.reap_owed = 0
            _sock_send(self.zsock, spawn, [src, req_r, rep_w, out_w])
        except BaseException:
            os.close(out_r)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        try:
            reply, _ = _sock_recv(self.zsock)
            if reply is None:
                raise RuntimeError("zygote closed its socket")
            cpid = int(reply["pid"])
            if cpid <= 0:  # no process can be made (pids exhausted?): not the sample's doing
                self._kill_t()
                raise _Broken("the zygote cannot fork")
            report, output, timed_out = collect(t.sock.fileno(), out_r, deadline, max_out, MAX_REPORT_BYTES)
        finally:
            os.close(out_r)
        rep = parse_report(report, self.seq)
        tstatus = None
        if rep is None or rep["outcome"] in ("sandbox_error", "oom") or rep.get("rss_kb", 0) > T_MAX_RSS_KB:
            tstatus = self._kill_t()  # anything odd, or a T grown big: the next job gets a fresh one
        need_status = rep is None or rep["outcome"] == "candidate_died"
        cstatus = self._end_candidate(cpid, cuid, scratch, need_status)
        return verdict(rep, output, timed_out, cstatus, tstatus, timeout_s)

    def _end_candidate(self, cpid: int, cuid: int | None, scratch: str, need_status: bool) -> int | None:
        """Kill C's tree, get C's exit status from the zygote, then make sure the sample left
        nothing: no process of a sandbox uid but T, no file of its uid in a writable root, no IPC
        object; in the container also no new process (the pid counter) and no socket or loopback
        traffic.  What cannot be undone for certain marks the runner dirty.  Returns C's status
        when `need_status` (else None: in the container C is only seen to exit, and the zygote
        reaps it with the next spawn, saving a round trip per sample)."""
        lazy = self.own_namespaces and not need_status
        pidfd = None
        if lazy:
            try:
                pidfd = os.pidfd_open(cpid)
            except (AttributeError, OSError):
                lazy = False
        for target in (-cpid, cpid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        status = None
        if pidfd is not None:
            try:
                if not select.select([pidfd], [], [], 5.0)[0]:
                    self.dirty = "the candidate process did not die"
                    return None
            finally:
                os.close(pidfd)
            self.reap_owed = cpid
        else:
            status = self._reap_candidate(cpid)
            if self.dirty:
                return None
        if self.sweeper is None:  # same-uid mode: C's own scratch (its group was killed above)
            if os.path.lexists(scratch):
                _rmtree_deep(scratch)
            return status
        return self._check_clean(cpid, cuid, status)

    def _reap_candidate(self, cpid: int) -> int | None:
        """C's wait status, from the zygote (its parent), which reaps it now."""
        try:
            self.zsock.settimeout(5.0)
            _sock_send(self.zsock, {"op": "reap", "pid": cpid})
            raw = _sock_exact(self.zsock, 4)
            self.zsock.settimeout(None)
            (value,) = struct.unpack("i", raw)
            return None if value < 0 else value
        except (OSError, EOFError) as exc:
            self.dirty = f"the candidate process could not be reaped ({exc})"
            return None

    def _check_clean(self, cpid: int, cuid: int | None, status: int | None) -> int | None:
        """The sweep after C is dead (see _end_candidate)."""
        assert self.sweeper is not None
        try:
            keep = {p for p in (self.zygote, self.t.pid if self.t else None) if p}
            # In the container nothing but C makes a process between the spawn and here, so an
            # unmoved pid counter proves the sample left no process (no /proc scan needed).
            forked = not self.own_namespaces or _LAST_PID.read() != b"%d\n" % cpid
            if forked:
                if self.reap_owed == cpid:  # its zombie would count as a process of its uid
                    self.reap_owed = 0
                    self._reap_candidate(cpid)
                self.sweeper.kill_processes(keep)
            self.sweeper.remove_files(frozenset([cuid]))
            if self.ipc_possible:
                self.sweeper.remove_ipc(self.sweeper.uids)
            if self.own_namespaces:
                if forked:
                    raise Dirty("the sample started processes or threads (the pid counter moved)")
                if _LO_PACKETS.read() != self.net:
                    raise Dirty("the sample used sockets or the loopback device")
                self.inodes.check()
        except Dirty as exc:
            self.dirty = str(exc)
        return status

    def _wait(self, pid: int) -> int | None:
        if pid in self.statuses:
            return self.statuses.pop(pid)
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

class _TestProcess:
    """The runner's handle on its persistent T."""

    __slots__ = ("pid", "sock", "as_bytes", "jobs")

    def __init__(self, pid: int, sock: socket.socket, as_bytes: int) -> None:
        self.pid, self.sock, self.as_bytes, self.jobs = pid, sock, as_bytes, 0


def serve(uids: tuple[int, int, int] | None) -> None:
    """The runner's life: a subreaper (a sample's orphans come back to it), serving stdin to EOF."""
    _subreaper()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    Runner(uids).serve(sys.stdin.buffer, sys.stdout)
