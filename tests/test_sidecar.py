"""The sidecar computes exactly what the in-process checks compute, and the writer joins them
with verdicts in arrival order; a dead sidecar falls back to checking in-process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from phi_eval.checks import analyze
from phi_eval.execution import ResultWriter, check_key, verdict_fields
from phi_eval.files import JsonlAppender
from phi_eval.jobs import ExecResult
from phi_eval.samples import Sample
from phi_eval.sidecar import Sidecar
from phi_eval.tasks import get_task

COMPLETIONS = [
    "    return sorted(numbers)\n",
    "    import os\n    os.system(input())\n",
    "    return eval(input())\n",
    "    return math.foo(1)\n",
    "    return sorted(numbers)\n",  # a duplicate: checked once, taken twice
    "def broken(:\n",
]


def _problem():
    problems, _ = get_task("humaneval").load(None, None)
    return problems[0]


def test_sidecar_fields_equal_in_process_checks(tmp_path: Path) -> None:
    problem = _problem()
    samples = [Sample(problem.task_id, i, c) for i, c in enumerate(COMPLETIONS)]
    allowed = ("math", "typing")
    with Sidecar() as sidecar:
        sidecar.submit_checks((check_key(problem, s) for s in samples), allowed)
        with JsonlAppender(tmp_path / "results.jsonl") as out:
            writer = ResultWriter(out, sidecar, {problem.task_id: problem})
            for s in reversed(samples):  # verdicts arrive in any order
                writer.add(s, verdict_fields([ExecResult(f"{s.task_id}#{s.completion_id}", "failed", 0.01)], 1))
            writer.flush()
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["completion_id"] for r in rows] == list(reversed(range(len(samples))))
    for row in rows:
        expected = analyze(row["completion"], prompt=problem.prompt, allowed=allowed)
        assert {k: row[k] for k in expected} == expected
    assert rows[-2]["security"]  # os.system(input()) is flagged, through the sidecar too


def test_a_killed_sidecar_is_replaced_by_in_process_checks() -> None:
    problem = _problem()
    with Sidecar() as sidecar:
        sidecar.submit_checks([check_key(problem, Sample(problem.task_id, 0, COMPLETIONS[1]))], ("math",))
        for pid in list(sidecar._pool._processes):  # noqa: SLF001 - the fault under test
            os.kill(pid, signal.SIGKILL)
        fields = sidecar.take((problem.prompt, COMPLETIONS[1]))
    assert fields == analyze(COMPLETIONS[1], prompt=problem.prompt, allowed=("math",))
