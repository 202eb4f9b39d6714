"""The Docker executor: a warm pool of hardened containers, each running the trusted runner.

Each container is started once and reused: the runner is its main process and speaks
newline-delimited JSON over the attach socket (one job in, one verdict out). Starting a container
costs ~0.4 s and a `docker exec` ~0.1 s, so per-sample containers or execs would dominate the run;
one attach round trip costs well under a millisecond.

The host keeps the last word: every job has a host-side deadline (its timeout + a grace), and a
container that dies, hangs or talks nonsense is removed and replaced; the job it held is re-run
once on a fresh container, then given a verdict that is never a pass.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult

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


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SandboxFault(Exception):
    """The container, not the sample, failed: dead, hung or garbled. The job is re-run once."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


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
    for container in client.containers.list(all=True, filters={"label": LABEL}):
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


RUNNER_CMD = ["python3", "-I", "-S", "-u", "/opt/phi_eval/runner.py"]


UIDS_PER_CONTAINER = 1024  # the test process's, then one candidate uid per sample, in turn


def sandbox_uids(slot: int) -> tuple[int, int, int]:
    """(test uid, first candidate uid, number of candidate uids): a range of its own for each
    container. Without user namespaces RLIMIT_NPROC counts per uid across the whole machine, so a
    fork bomb in one container must not eat another's allowance; within a container each sample
    gets the next candidate uid, so nothing a sample left can share the next one's."""
    base = 100_000 + ((os.getpid() % 40_000) * 32 + slot % 32) * UIDS_PER_CONTAINER
    return base, base + 1, UIDS_PER_CONTAINER - 1


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
    image: str, memory_mb: int, *, pids_limit: int = 256, owner: str = "", slot: int = 0
) -> dict[str, Any]:
    """The hardening every sandbox container gets (see DESIGN.md, "The sandbox, in short")."""
    from docker.types import LogConfig, Ulimit

    test_uid, cand_uid, n_cand = sandbox_uids(slot)
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

    def __init__(self, client: DockerClient, options: dict[str, Any], index: int = 0) -> None:
        self.index = index  # the worker it serves: a replacement goes to the same host
        self.client = client
        self.options = options
        self.container: Container | None = None
        self.stream: _Stream | None = None
        self.ready: dict[str, Any] = {}
        self.start_s = 0.0
        self.dirty = ""  # the runner said its last sample left something: it is exiting

    def start(self) -> None:
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

        self.workers = max(1, workers or os.cpu_count() or 1)
        self.clients = connect(hosts or [])
        for client in self.clients:
            sweep_stale(client)
        self.images = [image or ensure_image(client) for client in self.clients]
        self.memory_mb = memory_mb
        self.uid = uuid.uuid4().hex[:12]
        self.pids_limit = pids_limit
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pool_memory = 0
        atexit.register(self.close)

    # -- pool ---------------------------------------------------------------------------------
    def _options(self, index: int, memory_mb: int) -> tuple[DockerClient, dict[str, Any]]:
        k = index % len(self.clients)
        return self.clients[k], container_options(
            self.images[k], memory_mb, pids_limit=self.pids_limit, owner=self.uid, slot=index
        )

    def _new_slot(self, index: int) -> _Slot:
        client, options = self._options(index, self._pool_memory)
        slot = _Slot(client, options, index)
        with self._lock:
            if self._closed:
                raise SandboxFault("executor closed")
            self._slots.append(slot)
        try:
            slot.start()
        except Exception as exc:
            self._drop(slot)
            if isinstance(exc, SandboxFault):
                raise SandboxFault(f"sandbox container did not start: {exc}; {slot.stderr_tail()}") from None
            raise
        return slot

    def _drop(self, slot: _Slot) -> None:
        slot.remove()
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def _start_pool(self, memory_mb: int) -> list[_Slot]:
        """Start all containers at once (in threads: each start is mostly waiting on the engine)."""
        if self._slots and self._pool_memory >= memory_mb:
            return list(self._slots)
        for slot in list(self._slots):
            self._drop(slot)
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

            if isinstance(exc, docker.errors.APIError):
                raise PhiEvalError(f"cannot start a sandbox container: {exc.explanation or exc}") from None
            raise exc
        return [s for s in slots if s is not None]

    # -- running ------------------------------------------------------------------------------
    def _work(
        self,
        index: int,
        slot: _Slot,
        work: queue.SimpleQueue[ExecJob],
        done: queue.SimpleQueue[ExecResult | BaseException],
        stop: threading.Event,
    ) -> None:
        """Feed one container from the shared queue, PIPELINE jobs deep, and recover from its faults.

        The next job is written while the runner works on the current one, so the runner never waits
        for a round trip. On a fault the oldest unanswered job is blamed: re-run once on a fresh
        container, then classified; the jobs queued behind it are re-sent without blame.
        """
        pending: deque[ExecJob] = deque()  # sent, unanswered, oldest first
        retry: deque[ExecJob] = deque()  # to send before anything from the shared queue
        blamed: dict[str, int] = {}
        since = time.monotonic()  # when the runner started on pending[0]

        def recover(fault: SandboxFault) -> None:
            nonlocal slot, since
            oom, tail = slot.oom_killed(), slot.stderr_tail()
            self._drop(slot)
            slot = self._new_slot(index)
            since = time.monotonic()
            if not pending:
                return
            head = pending.popleft()
            retry.extendleft(reversed(pending))
            pending.clear()
            blamed[head.id] = blamed.get(head.id, 0) + 1
            if blamed[head.id] < 2:
                retry.appendleft(head)
                return
            if oom:
                outcome, detail = "oom", "the container ran out of memory and was killed"
            elif fault.hung:
                outcome, detail = "timeout", f"{fault} (timeout {head.timeout_s} s + {GRACE_S} s grace)"
            else:
                outcome, detail = "sandbox_error", f"{fault}; {tail}".strip("; ")
            took = head.timeout_s + GRACE_S if fault.hung else 0.0
            done.put(ExecResult(head.id, outcome, took, _short(detail)))

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
                    return
                head = pending[0]
                try:
                    result = slot.receive(head, since + head.timeout_s + GRACE_S)
                except SandboxFault as fault:
                    recover(fault)
                    continue
                pending.popleft()
                since = time.monotonic()
                done.put(result)
                if slot.dirty:  # the sample's verdict stands; the jobs sent behind it go to a fresh container
                    retry.extendleft(reversed(pending))
                    pending.clear()
                    self._drop(slot)
                    slot = self._new_slot(index)
                    since = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            done.put(exc)

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
        atexit.unregister(self.close)

    def __enter__(self) -> DockerExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
