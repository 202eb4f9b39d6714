"""The line protocol every executor speaks to the trusted runner, and what its faults mean.

Both executors run the same runner (sandbox/runner/) and speak the same newline-delimited JSON to
it: one ready line when it starts, then one job line in and one verdict line out. What differs is
only how a runner is reached (a hardened container's attach socket, or a subprocess's pipes): the
`Slot` protocol below, which a transport implements. The handshake, the reply parsing and the
classification of a fault (hung, dead, OOM-killed, the runner's own failure) are here, once, for
both; phi_eval.sandbox.pool drives them and phi_eval.sandbox.blame decides what a fault costs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Protocol

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult
from phi_eval.sandbox.blame import Fault

GRACE_S = 5.0  # host deadline = job timeout + this: the runner enforces the timeout, we back it up
START_TIMEOUT_S = 60.0  # for the runner's ready line
MAX_LINE = 8 << 20  # a runner line longer than this is nonsense
PIPELINE = 4  # jobs written ahead to each runner: it never waits for our round trip
START_PATIENCE_S = 30.0  # how long to keep starting a replacement (a storm may kill each one) before giving up


def short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def worker_count(workers: int | None, most: int) -> int:
    """--workers: 0 or None is one per core; refused below 0 or past `most` (one line each)."""
    if workers is not None and workers < 0:
        raise PhiEvalError(f"--workers must be 0 (one per core) or more (got {workers})")
    if workers is not None and workers > most:  # past it, uids would reach another process's
        raise PhiEvalError(f"--workers can be at most {most} per process (got {workers})")
    return min(most, max(1, workers or os.cpu_count() or 1))


class SandboxFault(Exception):
    """The runner or its transport, not the sample, failed: dead, hung or garbled. The job is re-run (see blame)."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


class Slot(Protocol):
    """One runner as a transport reaches it. Every failure to talk is a SandboxFault (hung=True
    for a passed deadline); the pool decides what it means."""

    index: int  # the worker it serves
    ready: dict[str, Any]  # the runner's ready line (set by the pool's handshake)
    dirty: str  # the runner said its last sample left something: it is exiting

    def start(self) -> None:
        """Start the runner (not waiting for its ready line)."""

    def send(self, data: bytes, deadline: float) -> None:
        """Write one line; a runner that stops reading is hung by `deadline`."""

    def readline(self, deadline: float) -> bytes:
        """The runner's next stdout line (EOF, a passed deadline, an oversized line: SandboxFault)."""

    def answer_ready(self, timeout: float) -> bool:
        """Whether a line is there (or comes within `timeout` s), without consuming it."""

    def oom_killed(self) -> bool:
        """Whether the runner was killed for memory (read after a fault)."""

    def cpu_s(self) -> float | None:
        """CPU seconds the runner and its samples have used; None: it cannot be parked."""

    def set_cpu_shares(self, shares: int) -> None:
        """Its CPU weight (only called where cpu_s() answers)."""

    def stderr_tail(self) -> str:
        """The runner's last words, for a fault's detail."""

    def remove(self) -> None:
        """Kill it now, with every process it started."""

    def stop(self) -> None:
        """End it at the end of a run (a clean exit where the transport has one)."""


def take_line(buf: bytearray) -> bytes | None:
    """The first whole line of a transport's read buffer (removed from it); None while there is
    none yet. A runner line longer than MAX_LINE is nonsense: a fault."""
    nl = buf.find(b"\n")
    if nl >= 0:
        line = bytes(buf[:nl])
        del buf[: nl + 1]
        return line
    if len(buf) > MAX_LINE:
        raise SandboxFault("runner wrote an oversized line")
    return None


def time_left(deadline: float) -> float:
    """Seconds to the host deadline; a passed one is the runner hanging."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise SandboxFault("no answer by the host deadline", hung=True)
    return left


def handshake(slot: Slot) -> None:
    """Wait for the runner's ready line; SandboxFault if it never comes or says something else."""
    line = slot.readline(time.monotonic() + START_TIMEOUT_S)
    try:
        ready = json.loads(line)
    except ValueError:
        ready = {}
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        raise SandboxFault(f"runner did not say ready: {line[:200]!r}")
    slot.ready = ready


def send_job(slot: Slot, job: ExecJob, deadline: float) -> None:
    slot.send(json.dumps(job.to_json(), separators=(",", ":")).encode() + b"\n", deadline)


def receive(slot: Slot, job: ExecJob, deadline: float) -> ExecResult:
    """The verdict on `job` (the oldest job sent and not yet answered)."""
    line = slot.readline(deadline)
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
    slot.dirty = str(data.get("dirty") or "")
    return result


def classify(fault: SandboxFault, *, oom: bool, tail: str = "", runner_said: str | None = None) -> Fault:
    """What went wrong under a job, in blame's terms: the same in every executor."""
    if runner_said is not None:
        return Fault("runner", runner_said)
    if oom:
        return Fault("oom", str(fault))
    if fault.hung:
        return Fault("hung", str(fault))
    return Fault("died", short(f"{fault}; {tail}".strip("; "), 250))
