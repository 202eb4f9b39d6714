"""One executor protocol: a hung runner and an OOM-killed runner get the same verdict in both executors.

The faults are real. A hung runner is stopped (SIGSTOP for a local runner, `docker pause` for a
container) each time it has said ready, so every try of the job passes the host deadline. An
OOM-killed runner is killed by the kernel's OOM killer for real: the runner is made the OOM
killer's first choice (oom_score_adj 1000: its score is then above the whole limit, so above the
hog's) and a memory hog joins its memory cgroup (the container's own; for a local runner, one made
for the test) and fills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phi_eval.jobs import ExecJob, ExecResult, build_job
from phi_eval.sandbox.blame import CANDIDATE_ATTEMPTS
from phi_eval.sandbox.pool import Pool
from phi_eval.tasks import get_task

ROOT = os.geteuid() == 0
EXECUTORS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


def job(timeout_s: float, *, sleep_s: float = 0.0) -> ExecJob:
    task = get_task("humaneval")
    p = task.load(None, None)[0][0]
    return build_job(task, p, p.reference + f"\nimport time\ntime.sleep({sleep_s})\n", 0, timeout_s=timeout_s)


def make(kind: str, **kw) -> Pool:
    if kind == "local":
        from phi_eval.sandbox.local import LocalExecutor

        return LocalExecutor(workers=1, warn=False, grace_s=1.0, **kw)
    from phi_eval.sandbox.docker import DockerExecutor

    return DockerExecutor(workers=1, grace_s=1.0, **kw)


def runner_pid(slot) -> int:
    """The runner's pid on this host (a container's main process, or the local subprocess)."""
    if getattr(slot, "container", None) is not None:
        slot.container.reload()
        return int(slot.container.attrs["State"]["Pid"])
    return int(slot.pid)


def run_one(ex: Pool, j: ExecJob) -> ExecResult:
    out: list[ExecResult] = []
    ex.run([j], out.append)
    return out[0]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_a_hung_runner_is_a_timeout_in_both_executors(kind: str) -> None:
    """Every runner stops answering once it is up: the job is tried CANDIDATE_ATTEMPTS times and
    is then the candidate's `timeout`, in the same words in both executors."""
    stopped: list = []

    def stop(slot) -> None:
        stopped.append(slot)
        if getattr(slot, "container", None) is not None:
            slot.container.pause()
        else:
            os.kill(slot.pid, signal.SIGSTOP)

    with make(kind) as ex:
        ex.run([job(2.0)], lambda r: None)  # the first runner is up and answers
        for slot in ex.live_slots():  # then stops answering
            stop(slot)
        ex.on_start = stop  # and so does each fresh one
        started = time.monotonic()
        result = run_one(ex, job(1.0))
        took = time.monotonic() - started
        ex.on_start = None
        for slot in ex.live_slots():  # the last fresh one goes on, so that closing is quick
            if getattr(slot, "container", None) is not None:
                slot.container.unpause()
            else:
                os.kill(slot.pid, signal.SIGCONT)
    assert result.outcome == "timeout", result
    assert result.detail.startswith("no answer by the host deadline (timeout 1.0 s + 1.0 s grace)"), result
    assert took >= CANDIDATE_ATTEMPTS * 2.0  # each try waited out timeout + grace
    # the first runner, one fresh one per further try, and the one that replaced the last
    assert len(stopped) == CANDIDATE_ATTEMPTS + 1


def memory_cgroup(pid: int) -> Path:
    """The memory cgroup folder `pid` is in (cgroup v1 memory controller, or the v2 unified tree)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        if controllers == "":
            unified = Path("/sys/fs/cgroup") / path.lstrip("/")
            if (unified / "memory.max").exists():
                return unified
    raise AssertionError(f"no memory cgroup for {pid}")


@pytest.fixture()
def local_cgroup() -> Iterator[Path]:
    """A memory cgroup with a 200 MB limit for the local runners (there is none of their own)."""
    v1 = Path("/sys/fs/cgroup/memory")
    base = v1 if (v1 / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    if not ROOT or not os.access(base, os.W_OK):
        pytest.skip("making a memory cgroup needs root and a writable cgroup tree")
    group = base / f"phi-eval-oom-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / ("memory.limit_in_bytes" if base == v1 else "memory.max")).write_text(str(200 << 20))
    except OSError as exc:
        if group.exists():
            group.rmdir()
        pytest.skip(f"cannot make a memory cgroup here ({exc})")
    try:
        yield group
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:  # a process is still leaving it
                time.sleep(0.1)


HOG = (
    "import sys, time\n"
    "sys.stdin.readline()\n"
    "b = bytearray(400 << 20)\n"
    "for i in range(0, len(b), 4096):\n"
    "    b[i] = 1\n"
    "time.sleep(30)\n"
)


@pytest.mark.skipif(not ROOT, reason="an OOM kill on purpose needs root (oom_score_adj, cgroups)")
@pytest.mark.parametrize("kind", EXECUTORS)
def test_an_oom_killed_runner_is_oom_in_both_executors(kind: str, request: pytest.FixtureRequest) -> None:
    """Each runner is OOM-killed by the kernel mid-job: tried CANDIDATE_ATTEMPTS times, then `oom`."""
    group = request.getfixturevalue("local_cgroup") if kind == "local" else None
    hogs: list[subprocess.Popen] = []
    kills: list[int] = []

    def oom_kill_soon(slot) -> None:
        pid = runner_pid(slot)
        if group is not None:
            (group / "cgroup.procs").write_text(str(pid))
        hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.PIPE)
        hogs.append(hog)
        (memory_cgroup(pid) / "cgroup.procs").write_text(str(hog.pid))
        kills.append(pid)

        def fill() -> None:  # once the job is under way (the candidate keeps its own score)
            time.sleep(0.5)
            try:
                Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
                hog.stdin.write(b"\n")
                hog.stdin.flush()
            except OSError:  # the last fresh runner, closed with the executor, and its hog killed
                pass

        threading.Thread(target=fill, daemon=True).start()

    kw = {"memory_mb": 200} if kind == "docker" else {}
    try:
        with make(kind, **kw) as ex:
            ex.run([job(5.0)], lambda r: None)  # the pool is up
            for slot in ex.live_slots():
                oom_kill_soon(slot)
            ex.on_start = oom_kill_soon
            result = run_one(ex, job(10.0, sleep_s=3.0))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.outcome == "oom", result
    assert result.detail == "the container ran out of memory and was killed", result
    assert len(kills) >= CANDIDATE_ATTEMPTS
