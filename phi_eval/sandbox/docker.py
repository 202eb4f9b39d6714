"""The Docker executor: a warm pool of hardened containers, each running the trusted runner.

Each container is started once and reused: the runner is its main process and speaks
newline-delimited JSON over the attach socket (one job in, one verdict out). Starting a container
costs ~0.4 s and a `docker exec` ~0.1 s, so per-sample containers or execs would dominate the run;
one attach round trip costs well under a millisecond.

The host keeps the last word: every job has a host-side deadline (its timeout + a grace), and a
container that dies, hangs or talks nonsense is removed and replaced; the job it held is re-run on
a fresh container as phi_eval.sandbox.blame decides (the machine's failures are never the model's).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult
from phi_eval.sandbox.blame import Fault, is_infrastructure, verdict_after
from phi_eval.sandbox.parking import (
    MAX_PARKED_PER_WORKER,
    NORMAL_SHARES,
    PARKED_SHARES,
    cgroup_cpu_file,
    cpu_seconds,
    park_after_s,
)

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

LABEL = "phi-eval"
OWNER_LABEL = "phi-eval.owner-pid"
HOST_LABEL = "phi-eval.owner-host"
EXECUTOR_LABEL = "phi-eval.executor"  # one executor's containers, among others of the same process
GRACE_S = 5.0  # host deadline = job timeout + this: the runner enforces the timeout, we back it up
START_TIMEOUT_S = 60.0
RUNNER_OVERHEAD_MB = 256  # the runner, the test process and page cache on top of a job's memory_mb
DEFAULT_MEMORY_MB = 1024
MAX_LINE = 8 << 20  # a runner line longer than this is nonsense
PIPELINE = 4  # jobs written ahead to each runner: it never waits for our round trip
START_PATIENCE_S = 30.0  # how long to keep starting a replacement (a storm may kill each one) before giving up


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SandboxFault(Exception):
    """The container, not the sample, failed: dead, hung or garbled. The job is re-run (see blame)."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


def _engine_error(exc: BaseException) -> bool:
    """An error talking to the engine (API error, lost connection), as opposed to a bug of ours."""
    import docker.errors
    import requests.exceptions

    return isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException, OSError))


def engine_lost(client: DockerClient, exc: BaseException) -> PhiEvalError | None:
    """The one line for an engine that stopped answering mid-run; None while it still answers."""
    try:
        client.ping()
        return None
    except Exception:  # noqa: BLE001 - any failure to answer is the engine being gone
        where = getattr(client.api, "base_url", "") or os.environ.get("DOCKER_HOST") or "the Docker socket"
        return PhiEvalError(
            f"the Docker engine ({where}) stopped answering mid-run ({type(exc).__name__}); the results "
            "written so far are kept: start the engine again and run the same command with --resume"
        )


def connect(hosts: Iterable[str] = ()) -> list[DockerClient]:
    """One client per --docker-host URL, or one from the environment (DOCKER_HOST, else the socket)."""
    import docker
    import docker.errors

    urls = list(hosts) or [None]
    clients = []
    for url in urls:
        where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.DockerClient(base_url=url, version="auto") if url else docker.from_env()
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            for c in clients:
                c.close()
            raise PhiEvalError(
                f"no Docker engine answers at {where} ({type(exc).__name__}); start one with "
                "`sudo dockerd &` (or `sudo systemctl start docker`), set DOCKER_HOST, "
                "or pass --sandbox local to run without isolation"
            ) from None
        clients.append(client)
    return clients


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(client: DockerClient) -> int:
    """Remove phi-eval containers this machine started from processes that are gone (after a crash)."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        labels = container.labels or {}
        if labels.get(HOST_LABEL) != socket.gethostname():
            continue
        try:
            pid = int(labels.get(OWNER_LABEL, ""))
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                container.remove(force=True)
                removed += 1
            except Exception:  # noqa: BLE001 - already gone or being removed
                pass
    return removed


RUNNER_CMD = ["python3", "-I", "-S", "-u", "/opt/phi_eval/runner"]


UIDS_PER_CONTAINER = 1024  # the test process's, then one candidate uid per sample, in turn
RANGES_PER_PROCESS = 256  # uid ranges one phi-eval process can hold at once (live containers)
PROCESS_BLOCKS = 8_000  # processes told apart by pid % this; every uid stays below 2**31
UID_BASE = 100_000
MAX_WORKERS = RANGES_PER_PROCESS // 2  # the rest is room for spares and parked samples' containers


def sandbox_uids(block: int, n: int) -> tuple[int, int, int]:
    """(test uid, first candidate uid, number of candidate uids) of uid range `n` of process block
    `block`. Without user namespaces RLIMIT_NPROC counts per uid across the whole machine, so a
    fork bomb in one container must not eat another's allowance; within a container each sample
    gets the next candidate uid, so nothing a sample left can share the next one's."""
    if not (0 <= n < RANGES_PER_PROCESS and 0 <= block < PROCESS_BLOCKS):
        raise ValueError(f"uid range {n} of block {block} is out of bounds")
    base = UID_BASE + (block * RANGES_PER_PROCESS + n) * UIDS_PER_CONTAINER
    return base, base + 1, UIDS_PER_CONTAINER - 1


class UidRanges:
    """Hands each live container of this process a uid range that no other live one holds.

    Ranges belong to containers, not to worker numbers: a parked sample's container and the spare
    that took over its worker run at once, and each needs its own range. A range is handed out again
    only once its container has been removed (with every process in it)."""

    def __init__(self, pid: int | None = None) -> None:
        self.block = (os.getpid() if pid is None else pid) % PROCESS_BLOCKS
        self._free = set(range(RANGES_PER_PROCESS))
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxFault(f"all {RANGES_PER_PROCESS} sandbox uid ranges of this process are in use")
            n = min(self._free)
            self._free.remove(n)
            return n

    def release(self, n: int) -> None:
        with self._lock:
            self._free.add(n)

    def uids(self, n: int) -> tuple[int, int, int]:
        return sandbox_uids(self.block, n)


# No System V IPC object or POSIX message queue can be made at all (they outlive processes and
# would be charged to the container's memory); shared memory is removed once unattached.
IPC_SYSCTLS = {
    "kernel.shmmni": "0",
    "kernel.msgmni": "0",
    "kernel.sem": "250 32000 32 0",
    "fs.mqueue.queues_max": "0",
    "kernel.shm_rmid_forced": "1",
}


def container_options(
    image: str, memory_mb: int, *, pids_limit: int = 256, owner: str = "",
    uids: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """The hardening every sandbox container gets (README.md, "The sandbox"); `uids` is the
    container's own range (UidRanges), by default the first range of this process."""
    from docker.types import LogConfig, Ulimit

    test_uid, cand_uid, n_cand = uids or sandbox_uids(os.getpid() % PROCESS_BLOCKS, 0)
    return {
        "image": image,
        "command": [*RUNNER_CMD, "--uids", f"{test_uid},{cand_uid},{n_cand}"],
        "stdin_open": True,
        "tty": False,
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": "size=64m,mode=1777"},
        "cap_drop": ["ALL"],
        "cap_add": ["CHOWN", "SETUID", "SETGID", "KILL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": pids_limit,
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "ulimits": [
            Ulimit(name="nofile", soft=1024, hard=1024),
            Ulimit(name="nproc", soft=512, hard=512),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "environment": {},
        "user": "0:0",
        "init": False,
        "hostname": "sandbox",
        "ipc_mode": "private",
        "sysctls": dict(IPC_SYSCTLS),
        # A neutral resolv.conf, not the host's nameservers and search domains (there is no network).
        "dns": ["127.0.0.1"],
        "dns_search": ["."],
        "log_config": LogConfig(type="none"),
        "labels": {
            LABEL: "sandbox",
            OWNER_LABEL: str(os.getpid()),
            HOST_LABEL: socket.gethostname(),
            EXECUTOR_LABEL: owner,
        },
    }


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
        while True:
            nl = self.out.find(b"\n")
            if nl >= 0:
                line = bytes(self.out[:nl])
                del self.out[: nl + 1]
                return line
            if len(self.out) > MAX_LINE:
                raise SandboxFault("runner wrote an oversized line")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxFault("no answer by the host deadline", hung=True)
            self.sock.settimeout(left)
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


class _Slot:
    """One warm container and its attach stream."""

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
        self.start_s = 0.0
        self._cpu_file: Path | bool | None = None  # False: not readable here
        self.dirty = ""  # the runner said its last sample left something: it is exiting

    def start(self) -> None:
        """Create, attach, start, and wait for the runner's ready line (SandboxFault if it never comes)."""
        started = time.monotonic()
        container = self.client.containers.create(**self.options)
        self.container = container
        raw = self.client.api.attach_socket(
            container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        self.stream = _Stream(getattr(raw, "_sock", raw))
        self._raw = raw  # keep the HTTP response alive (TLS closes with it)
        container.start()
        line = self.stream.readline(time.monotonic() + START_TIMEOUT_S)
        try:
            ready = json.loads(line)
        except ValueError:
            ready = {}
        if not isinstance(ready, dict) or ready.get("ready") is not True:
            raise SandboxFault(f"runner did not say ready: {line[:200]!r}")
        self.ready = ready
        self.start_s = time.monotonic() - started

    def send(self, job: ExecJob, deadline: float) -> None:
        assert self.stream is not None
        payload = json.dumps(job.to_json(), separators=(",", ":")).encode() + b"\n"
        try:
            self.stream.send(payload, deadline)
        except OSError as exc:
            raise SandboxFault(f"cannot write to the runner ({exc})") from None

    def receive(self, job: ExecJob, deadline: float) -> ExecResult:
        """The verdict on `job` (the oldest job sent and not yet answered)."""
        assert self.stream is not None
        line = self.stream.readline(deadline)
        try:
            data = json.loads(line)
            result = ExecResult(
                id=str(data["id"]),
                outcome=str(data["outcome"]),
                duration_s=float(data["duration_s"]),
                detail=str(data.get("detail", "")),
            )
        except (ValueError, KeyError, TypeError):
            raise SandboxFault(f"runner answered nonsense: {line[:200]!r}") from None
        if result.id != job.id:
            raise SandboxFault(f"runner answered for {result.id!r} while running {job.id!r}")
        self.dirty = str(data.get("dirty") or "")
        return result

    def answer_ready(self, timeout: float) -> bool:
        """Whether a verdict line is there (or comes within `timeout` s), without consuming it."""
        assert self.stream is not None
        if b"\n" in self.stream.out:
            return True
        try:
            return bool(select.select([self.stream.sock], [], [], max(0.0, timeout))[0])
        except (OSError, ValueError):
            return True  # let receive() find out what is wrong

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


class DockerExecutor:
    """Runs ExecJobs in a warm pool of hardened containers (one per worker, spread over the hosts)."""

    def __init__(
        self,
        workers: int | None = None,
        hosts: list[str] | None = None,
        *,
        image: str | None = None,
        memory_mb: int | None = None,
        pids_limit: int = 256,
    ) -> None:
        from phi_eval.sandbox.image import ensure_image

        if workers is not None and workers < 0:
            raise PhiEvalError(f"--workers must be 0 (one per core) or more (got {workers})")
        if workers is not None and workers > MAX_WORKERS:
            raise PhiEvalError(f"--workers can be at most {MAX_WORKERS} per process (got {workers})")
        self.workers = min(MAX_WORKERS, max(1, workers or os.cpu_count() or 1))  # 0 or None: one per core
        self.clients = connect(hosts or [])
        for client in self.clients:
            sweep_stale(client)
        self.images = [image or ensure_image(client) for client in self.clients]
        self.memory_mb = memory_mb
        self.uid = uuid.uuid4().hex[:12]
        self.pids_limit = pids_limit
        self._slots: list[_Slot] = []
        self.uid_ranges = UidRanges()  # one range per live container
        self._lock = threading.Lock()
        self._closed = False
        self._pool_memory = 0
        self._parked = 0  # slots running a parked sample (phi_eval/sandbox/parking.py)
        self._spares: list[_Slot] = []  # started slots not serving a worker, for the next park
        self._parked_slots: set[_Slot] = set()  # running a parked sample or answers to ignore
        self._starting_spare = False  # one spare is started ahead at a time
        self.park = True  # off: every sample holds its worker to the end (bench/measure_reference_times.py)
        self.parks = 0  # samples parked so far
        atexit.register(self.close)

    # -- pool ---------------------------------------------------------------------------------
    def _options(self, index: int, memory_mb: int, uid_range: int = 0) -> tuple[DockerClient, dict[str, Any]]:
        k = index % len(self.clients)
        return self.clients[k], container_options(
            self.images[k], memory_mb, pids_limit=self.pids_limit, owner=self.uid,
            uids=self.uid_ranges.uids(uid_range),
        )

    def _new_slot(self, index: int) -> _Slot:
        uid_range = self.uid_ranges.acquire()
        client, options = self._options(index, self._pool_memory, uid_range)
        slot = _Slot(client, options, index, uid_range)
        with self._lock:
            if self._closed:
                self.uid_ranges.release(uid_range)
                raise SandboxFault("executor closed")
            self._slots.append(slot)
        try:
            slot.start()
        except Exception as exc:
            self._drop(slot)
            if isinstance(exc, SandboxFault):
                raise SandboxFault(f"sandbox container did not start: {exc}; {slot.stderr_tail()}") from None
            raise
        if self._closed:  # closed while this one was starting: it must not outlive the executor
            self._drop(slot)
            raise SandboxFault("executor closed")
        return slot

    def _replace(self, index: int) -> _Slot:
        """A fresh container for worker `index`, tried a few times (one may be killed or removed while
        it starts); PhiEvalError in one line when the engine is gone or it never starts."""
        last: BaseException | None = None
        give_up = time.monotonic() + START_PATIENCE_S
        attempt = 0
        while attempt == 0 or time.monotonic() < give_up:
            attempt += 1
            if self._closed:
                raise SandboxFault("executor closed")
            try:
                return self._new_slot(index)
            except SandboxFault as exc:
                last = exc
            except Exception as exc:  # noqa: BLE001 - engine errors: is the engine still there?
                if not _engine_error(exc):
                    raise
                lost = engine_lost(self._options(index, self._pool_memory)[0], exc)
                if lost is not None:
                    raise lost from None
                last = exc
            time.sleep(min(0.2 * attempt, 2.0))
        raise PhiEvalError(
            f"cannot start a fresh sandbox container in {START_PATIENCE_S:g} s ({_short(str(last), 200)}); "
            "the results so far are kept: run `phi-eval sandbox check`, then the same command with --resume"
        )

    def containers(self) -> list[tuple[DockerClient, str]]:
        """(client, container id) of each live container: what tests and tools inspect."""
        with self._lock:
            return [(s.client, s.container.id) for s in self._slots if s.container is not None]

    def _drop(self, slot: _Slot) -> None:
        slot.remove()
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)
            uid_range, slot.uid_range = slot.uid_range, None
        if uid_range is not None:  # removed with its processes: the range is free again
            self.uid_ranges.release(uid_range)

    def _start_pool(self, memory_mb: int) -> list[_Slot]:
        """Start all containers at once (in threads: each start is mostly waiting on the engine)."""
        if self._slots and self._pool_memory >= memory_mb:
            with self._lock:
                busy = set(self._spares) | self._parked_slots
                return [s for s in self._slots if s not in busy][: self.workers]
        for slot in list(self._slots):
            self._drop(slot)
        self._spares.clear()
        self._parked_slots.clear()
        self._pool_memory = memory_mb
        slots: list[_Slot | None] = [None] * self.workers
        errors: list[BaseException] = []

        def start(i: int) -> None:
            try:
                slots[i] = self._new_slot(i)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            exc = errors[0]
            if isinstance(exc, SandboxFault):
                raise PhiEvalError(f"{exc}; run `phi-eval sandbox check`")
            import docker.errors

            if _engine_error(exc):
                lost = engine_lost(self.clients[0], exc)
                if lost is not None:
                    raise lost from None
            if isinstance(exc, docker.errors.APIError):
                raise PhiEvalError(f"cannot start a sandbox container: {exc.explanation or exc}") from None
            raise exc
        return [s for s in slots if s is not None]

    def warm(self, memory_mb: int) -> None:
        """Start the pool now for jobs of `memory_mb` (run() reuses it), e.g. while input is read."""
        self._start_pool(self.memory_mb or max(DEFAULT_MEMORY_MB, memory_mb + RUNNER_OVERHEAD_MB))

    # -- running ------------------------------------------------------------------------------
    def _work(
        self,
        index: int,
        slot: _Slot,
        work: queue.SimpleQueue[ExecJob],
        done: queue.SimpleQueue[ExecResult | BaseException],
        stop: threading.Event,
        parked: deque[ExecJob] | None = None,
        parked_since: float = 0.0,
    ) -> None:
        """Feed one container from the shared queue, PIPELINE jobs deep, and recover from its faults.

        The next job is written while the runner works on the current one, so the runner never waits
        for a round trip. On a fault the oldest unanswered job is blamed: run again on a fresh
        container or classified, as phi_eval.sandbox.blame decides; the jobs queued behind it are
        re-sent without blame.

        A head job still running past its park time (phi_eval/sandbox/parking.py) is left to finish
        in its container at a low CPU weight, served by a thread of its own (`parked`: the jobs it
        holds), while this worker goes on in a spare container.
        """
        pending: deque[ExecJob] = parked if parked is not None else deque()  # sent, unanswered, oldest first
        retry: deque[ExecJob] = deque()  # to send before anything from the shared queue
        since = parked_since if parked is not None else time.monotonic()  # when the runner started on pending[0]
        # The jobs already written behind a parked head are sent again by the worker to its next
        # container; here they run only because they cannot be unsent, and their answers are ignored.
        ignore = {job.id for job in list(pending)[1:]} if parked is not None else set()
        holds_place = parked is not None  # the parked sample still counts against MAX_PARKED
        attempts: dict[str, int] = {}

        def recover(fault: SandboxFault, runner_said: str | None = None) -> None:
            nonlocal slot, since
            oom, tail = slot.oom_killed(), slot.stderr_tail()
            self._drop(slot)
            slot = self._replace(index)
            since = time.monotonic()
            if not pending:
                return
            head = pending.popleft()
            retry.extendleft(reversed(pending))
            pending.clear()
            attempts[head.id] = attempts.get(head.id, 0) + 1
            if runner_said is not None:
                why = Fault("runner", runner_said)
            elif oom:
                why = Fault("oom", str(fault))
            elif fault.hung:
                why = Fault("hung", str(fault))
            else:
                why = Fault("died", _short(f"{fault}; {tail}".strip("; "), 250))
            verdict = verdict_after(head, attempts[head.id], why, GRACE_S)
            if verdict is None:
                retry.appendleft(head)
            else:
                done.put(verdict)

        try:
            while not stop.is_set():
                while len(pending) < PIPELINE:
                    if retry:
                        job = retry.popleft()
                    else:
                        try:
                            job = work.get_nowait()
                        except queue.Empty:
                            break
                    if not pending:
                        since = time.monotonic()
                    pending.append(job)
                    try:
                        slot.send(job, since + pending[0].timeout_s + GRACE_S)
                    except SandboxFault as fault:
                        recover(fault)
                        break
                if not pending:
                    if retry:
                        continue
                    if parked is not None:
                        self._unpark(slot, holds_place)
                    return
                head = pending[0]
                if parked is None and self._may_park(head, slot, since):
                    self._park_out(index, slot, deque(pending), since, done, stop)
                    retry.extendleft(reversed(list(pending)[1:]))  # not started yet: they go on here
                    slot, pending, since = self._spare_slot(index), deque(), time.monotonic()
                    continue
                try:
                    result = slot.receive(head, since + head.timeout_s + GRACE_S)
                except SandboxFault as fault:
                    recover(fault)
                    if parked is not None:
                        with self._lock:
                            self._parked_slots.add(slot)
                    if ignore:  # a fresh container runs only what this one still owes
                        kept = [job for job in retry if job.id not in ignore]
                        retry.clear()
                        retry.extend(kept)
                        ignore.clear()
                    continue
                if is_infrastructure(result):  # the runner's own machinery failed: a fresh container
                    recover(SandboxFault(result.detail), runner_said=result.detail)
                    continue
                pending.popleft()
                since = time.monotonic()
                if result.id in ignore:
                    ignore.discard(result.id)
                    continue
                done.put(result)
                if holds_place:  # what is left here are answers to ignore: a place for the next park
                    holds_place = False
                    with self._lock:
                        self._parked -= 1
                if slot.dirty:  # the sample's verdict stands; the jobs sent behind it go to a fresh container
                    if parked is not None:  # a parked container's other answers were to be ignored anyway
                        self._drop(slot)
                        with self._lock:
                            self._parked_slots.discard(slot)
                        return
                    retry.extendleft(reversed(pending))
                    pending.clear()
                    self._drop(slot)
                    slot = self._replace(index)
                    since = time.monotonic()
        except SandboxFault as exc:
            if not self._closed:
                done.put(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            if _engine_error(exc):
                exc = engine_lost(slot.client, exc) or exc
            done.put(exc)

    # -- parking (phi_eval/sandbox/parking.py) ---------------------------------------------------
    def _may_park(self, head: ExecJob, slot: _Slot, since: float) -> bool:
        """Wait for `head` until its container has used the park time in CPU; True (a place
        reserved) when it is to be parked, False once it answered or could not get there in time."""
        limit = park_after_s(head)
        if not self.park or limit >= head.timeout_s:
            return False
        cpu0 = slot.cpu_s()
        if cpu0 is None:
            return False
        end = since + head.timeout_s
        wait = since + limit - time.monotonic()  # CPU time never runs ahead of wall time
        while not slot.answer_ready(wait):
            used = (slot.cpu_s() or cpu0) - cpu0
            if used >= limit:
                with self._lock:
                    if self._closed or self._parked >= MAX_PARKED_PER_WORKER * self.workers:
                        return False
                    self._parked += 1
                    self.parks += 1
                return True
            wait = limit - used
            if time.monotonic() + wait >= end:
                return False
        return False

    def _park_out(self, index: int, slot: _Slot, pending: deque[ExecJob], since: float,
                  done: queue.SimpleQueue[ExecResult | BaseException], stop: threading.Event) -> None:
        slot.set_cpu_shares(PARKED_SHARES)
        with self._lock:
            self._parked_slots.add(slot)
        threading.Thread(
            target=self._work, args=(index, slot, queue.SimpleQueue(), done, stop),
            kwargs={"parked": pending, "parked_since": since}, daemon=True, name=f"phi-eval-parked-{index}",
        ).start()

    def _spare_slot(self, index: int) -> _Slot:
        """A started container for a worker whose own was parked; another is started in the
        background for the next park, so a worker waits for a container start only the first time."""
        with self._lock:
            spare = self._spares.pop() if self._spares else None
            more = not self._closed and not self._spares and not self._starting_spare
            self._starting_spare = self._starting_spare or more
        if more:
            threading.Thread(target=self._start_spare, args=(index,), daemon=True).start()
        return spare if spare is not None else self._new_slot(index)

    def _start_spare(self, index: int) -> None:
        try:
            slot = self._new_slot(index)
        except Exception:  # noqa: BLE001 - a spare is an optimisation; the next park starts its own
            with self._lock:
                self._starting_spare = False
            return
        with self._lock:
            self._spares.append(slot)
            self._starting_spare = False

    def _unpark(self, slot: _Slot, holds_place: bool) -> None:
        """A drained parked container: back to full weight, a spare for the next park."""
        slot.set_cpu_shares(NORMAL_SHARES)
        with self._lock:
            self._parked -= holds_place
            self._parked_slots.discard(slot)
            if not self._closed and slot in self._slots:
                self._spares.append(slot)

    def run(self, jobs: Iterable[ExecJob], on_result: Callable[[ExecResult], None]) -> None:
        """Run every job; `on_result` is called on this thread as verdicts arrive (any order)."""
        if self._closed:
            raise PhiEvalError("the Docker executor is closed; create a new one")
        todo = list(jobs)
        if not todo:
            return
        need = self.memory_mb or max(DEFAULT_MEMORY_MB, max(j.memory_mb for j in todo) + RUNNER_OVERHEAD_MB)
        slots = self._start_pool(need)
        work: queue.SimpleQueue[ExecJob] = queue.SimpleQueue()
        for job in todo:
            work.put(job)
        done: queue.SimpleQueue[ExecResult | BaseException] = queue.SimpleQueue()
        stop = threading.Event()

        threads = [
            threading.Thread(
                target=self._work,
                args=(s.index, s, work, done, stop),
                daemon=True,
                name=f"phi-eval-sandbox-{i}",
            )
            for i, s in enumerate(slots)
        ]
        for t in threads:
            t.start()
        try:
            for _ in range(len(todo)):
                item = done.get()
                if isinstance(item, BaseException):
                    if isinstance(item, SandboxFault):
                        raise PhiEvalError(f"{item}; run `phi-eval sandbox check`")
                    if _engine_error(item):
                        raise PhiEvalError(
                            f"the sandbox failed talking to the Docker engine ({type(item).__name__}: "
                            f"{_short(str(item), 200)}); results so far are kept: run again with --resume"
                        ) from None
                    raise item
                on_result(item)
        except BaseException:
            stop.set()
            self.close()  # Ctrl-C or an error: take every container down before leaving
            raise
        for t in threads:
            t.join()

    def close(self) -> None:
        """Remove every container this executor started (also run at exit)."""
        with self._lock:
            self._closed = True
            slots, self._slots = list(self._slots), []
        threads = [threading.Thread(target=s.remove, daemon=True) for s in slots]
        try:
            for t in threads:
                t.start()
        except RuntimeError:  # at interpreter shutdown (3.12+ refuses new threads): one by one
            for slot in slots:
                slot.remove()
        for t in threads:
            if t.ident is not None:
                t.join(timeout=30)
        self._sweep_own()
        atexit.unregister(self.close)

    def _sweep_own(self) -> None:
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

    def __enter__(self) -> DockerExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
