"""The Docker executor: a warm pool of hardened containers, each running the trusted runner.

Each container is started once and reused: the runner is its main process and speaks
newline-delimited JSON over the attach socket (one job in, one verdict out). Starting a container
costs ~0.4 s and a `docker exec` ~0.1 s, so per-sample containers or execs would dominate the run;
one attach round trip costs well under a millisecond.

This module is only the transport (phi_eval.sandbox.pool has the protocol, the worker loop and the
blame policy): a container's attach stream, its OOM flag, its cgroup's CPU time and weight (so it
can be parked), and the engine's errors turned into one line each (phi_eval.sandbox.engine).
"""

from __future__ import annotations

import select
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.sandbox.engine import (
    EXECUTOR_LABEL,
    OWNER_LABEL,
    connect,
    container_options,
    engine_error,
    engine_lost,
    sweep_stale,
)
from phi_eval.sandbox.parking import cgroup_cpu_file, cpu_seconds
from phi_eval.sandbox.pool import Pool
from phi_eval.sandbox.protocol import GRACE_S, SandboxFault, short, take_line, time_left
from phi_eval.sandbox.uids import MAX_WORKERS, RANGES_PER_PROCESS, UidRanges, sandbox_uids

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

RUNNER_OVERHEAD_MB = 256  # the runner, the test process and page cache on top of a job's memory_mb
DEFAULT_MEMORY_MB = 1024


@dataclass
class _Stream:
    """Reads the runner's stdout lines out of the attach stream (8-byte frame headers when tty=False)."""

    sock: Any
    buf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)

    def send(self, data: bytes, deadline: float) -> None:
        """Write a job; the runner reads it once it is free, so a full pipe may block until then."""
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            self.sock.sendall(data)
        except (TimeoutError, BlockingIOError):
            raise SandboxFault("runner stopped reading its input by the host deadline", hung=True) from None

    def readline(self, deadline: float) -> bytes:
        """The next stdout line; SandboxFault on EOF, a passed deadline or an oversized line."""
        while (line := take_line(self.out)) is None:
            self.sock.settimeout(time_left(deadline))
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                raise SandboxFault("no answer by the host deadline", hung=True) from None
            except OSError as exc:
                raise SandboxFault(f"attach stream broke ({exc})") from None
            if not chunk:
                raise SandboxFault("container exited")
            self.buf += chunk
            self._demux()
        return line

    def _demux(self) -> None:
        while len(self.buf) >= 8:
            size = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + size:
                return
            kind, payload = self.buf[0], self.buf[8 : 8 + size]
            del self.buf[: 8 + size]
            if kind == 1:
                self.out += payload
            elif kind == 2:  # keep the runner's last words for the verdict's detail
                self.err = (self.err + payload)[-2000:]


class ContainerSlot:
    """One warm container and its attach stream (a phi_eval.sandbox.pool.Slot)."""

    def __init__(
        self, client: DockerClient, options: dict[str, Any], index: int = 0, uid_range: int | None = None
    ) -> None:
        self.index = index  # the worker it serves: a replacement goes to the same host
        self.uid_range = uid_range  # its UidRanges number, released once the container is removed
        self.client = client
        self.options = options
        self.container: Container | None = None
        self.stream: _Stream | None = None
        self.ready: dict[str, Any] = {}
        self._cpu_file: Path | bool | None = None  # False: not readable here
        self.dirty = ""

    def start(self) -> None:
        """Create, attach and start the container (the pool then waits for its ready line)."""
        container = self.client.containers.create(**self.options)
        self.container = container
        raw = self.client.api.attach_socket(
            container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        self.stream = _Stream(getattr(raw, "_sock", raw))
        self._raw = raw  # keep the HTTP response alive (TLS closes with it)
        container.start()

    def send(self, data: bytes, deadline: float) -> None:
        assert self.stream is not None
        try:
            self.stream.send(data, deadline)
        except OSError as exc:
            raise SandboxFault(f"cannot write to the runner ({exc})") from None

    def readline(self, deadline: float) -> bytes:
        assert self.stream is not None
        return self.stream.readline(deadline)

    def answer_ready(self, timeout: float) -> bool:
        assert self.stream is not None
        if b"\n" in self.stream.out:
            return True
        try:
            return bool(select.select([self.stream.sock], [], [], max(0.0, timeout))[0])
        except (OSError, ValueError):
            return True  # let the read find out what is wrong

    def cpu_s(self) -> float | None:
        """CPU seconds the container has used (from its cgroup on this host; None when unreadable)."""
        if self.container is None:
            return None
        if self._cpu_file is None:
            self._cpu_file = cgroup_cpu_file(self.container.id) or False
        return cpu_seconds(self._cpu_file) if self._cpu_file else None

    def set_cpu_shares(self, shares: int) -> None:
        """The container's CPU weight (cgroup cpu shares); a failure leaves it as it was."""
        if self.container is not None:
            try:
                self.container.update(cpu_shares=shares)
            except Exception:  # noqa: BLE001 - only scheduling is at stake, never a verdict
                pass

    def oom_killed(self) -> bool:
        if self.container is None:
            return False
        try:
            self.container.reload()
            return bool(self.container.attrs.get("State", {}).get("OOMKilled"))
        except Exception:  # noqa: BLE001 - already gone
            return False

    def stderr_tail(self) -> str:
        return self.stream.err.decode("utf-8", "replace").strip()[-300:] if self.stream else ""

    def remove(self) -> None:
        container, self.container = self.container, None
        if self.stream is not None:
            try:
                self.stream.sock.close()
            except OSError:
                pass
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


    stop = remove  # a container has nothing to finish: removed with every process in it


class DockerExecutor(Pool):
    """Runs ExecJobs in a warm pool of hardened containers (one per worker, spread over the hosts)."""

    WHAT = "sandbox container"

    def __init__(
        self,
        workers: int | None = None,
        hosts: list[str] | None = None,
        *,
        image: str | None = None,
        memory_mb: int | None = None,
        pids_limit: int = 256,
        grace_s: float = GRACE_S,
    ) -> None:
        from phi_eval.sandbox.image import ensure_image

        super().__init__(workers, MAX_WORKERS, grace_s=grace_s)
        self.clients = connect(hosts or [])
        for client in self.clients:
            sweep_stale(client)
        self.images = [image or ensure_image(client) for client in self.clients]
        self.memory_mb = memory_mb
        self.uid = uuid.uuid4().hex[:12]
        self.pids_limit = pids_limit
        self.uid_ranges = UidRanges()  # one range per live container

    # -- the transport ------------------------------------------------------------------------
    def _make_slot(self, index: int) -> ContainerSlot:
        uid_range = self.uid_ranges.acquire()
        k = index % len(self.clients)
        options = container_options(
            self.images[k], self._pool_memory, pids_limit=self.pids_limit, owner=self.uid,
            uids=self.uid_ranges.uids(uid_range),
        )
        return ContainerSlot(self.clients[k], options, index, uid_range)

    def _released(self, slot: ContainerSlot) -> None:  # type: ignore[override]
        uid_range, slot.uid_range = slot.uid_range, None
        if uid_range is not None:  # removed with its processes: the range is free again
            self.uid_ranges.release(uid_range)

    def _memory_for(self, job_mb: int) -> int:
        return self.memory_mb or max(DEFAULT_MEMORY_MB, job_mb + RUNNER_OVERHEAD_MB)

    def _backend_error(self, exc: BaseException) -> bool:
        return engine_error(exc)

    def _backend_lost(self, exc: BaseException, index: int) -> PhiEvalError | None:
        return engine_lost(self.clients[index % len(self.clients)], exc)

    def _start_error(self, exc: BaseException) -> BaseException:
        import docker.errors

        if isinstance(exc, docker.errors.APIError) and engine_lost(self.clients[0], exc) is None:
            return PhiEvalError(f"cannot start a sandbox container: {exc.explanation or exc}")
        return super()._start_error(exc)

    def _run_error(self, exc: BaseException) -> BaseException:
        if not isinstance(exc, SandboxFault) and engine_error(exc):
            return PhiEvalError(
                f"the sandbox failed talking to the Docker engine ({type(exc).__name__}: "
                f"{short(str(exc), 200)}); results so far are kept: run again with --resume"
            )
        return super()._run_error(exc)

    def _after_close(self, interrupted: bool) -> None:
        """Remove any container labelled with this executor that is still there (one whose start
        raced with close(), say); quietly, as the engine may be gone."""
        for client in self.clients:
            try:
                for c in client.containers.list(all=True, filters={"label": f"{EXECUTOR_LABEL}={self.uid}"},
                                                   ignore_removed=True):
                    try:
                        c.remove(force=True)
                    except Exception:  # noqa: BLE001 - already gone
                        pass
            except Exception:  # noqa: BLE001 - the engine is gone: nothing to list
                pass

    # -- what tests and tools inspect ---------------------------------------------------------
    def containers(self) -> list[tuple[DockerClient, str]]:
        """(client, container id) of each live container."""
        with self._lock:
            return [(s.client, s.container.id) for s in self._slots if s.container is not None]  # type: ignore[attr-defined]

    def __enter__(self) -> DockerExecutor:
        return self


# Re-exported: what callers and tests take from "the Docker executor".
__all__ = [
    "GRACE_S", "MAX_WORKERS", "OWNER_LABEL", "RANGES_PER_PROCESS", "ContainerSlot", "DockerExecutor", "SandboxFault",
    "UidRanges", "connect", "container_options", "engine_lost", "sandbox_uids", "sweep_stale",
]
