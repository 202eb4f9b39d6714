"""Bad input through the real command line: one line on stderr, non-zero exit, no traceback,
and nothing already on disk changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def phi_eval(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "phi_eval", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def existing_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"pass_at_k": {"1": 0.5}}\n')
    (run / "results.jsonl").write_text('{"task_id": "HumanEval/0"}\n')
    return run


@pytest.mark.parametrize("lines,needles", [
    (['{"task_id": "HumanEval/0", "completion": "    return 1\\n"}', "{oops"], ["line", ":2:", "not valid JSON"]),
    (['{"task_id": "HumanEval/4242", "completion": "x"}'], ["unknown task id", "HumanEval/4242"]),
    (['{"task_id": "HumanEval/0", "answer": "x"}'], ["missing 'completion'"]),
    ([], ["holds no samples"]),
])
def test_bad_samples_file(tmp_path: Path, existing_run: Path, lines: list[str], needles: list[str]) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(lines) + ("\n" if lines else ""))
    before = snapshot(existing_run)
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(tmp_path / "new"))
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "new").exists()
    assert snapshot(existing_run) == before


def test_missing_samples_file(tmp_path: Path) -> None:
    assert_one_line_error(phi_eval("evaluate", str(tmp_path / "nope.jsonl"), "--task", "humaneval"), "does not exist")


def test_unknown_task(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "x"}\n')
    assert_one_line_error(phi_eval("evaluate", str(samples), "--task", "humaneval-xl"), "unknown task", "humaneval")


def test_unreadable_data_path(tmp_path: Path) -> None:
    proc = phi_eval("run", "--task", "mbpp", "--model", "reference", "--data", str(tmp_path / "missing.jsonl"),
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "cannot read data file", "missing.jsonl")
    assert not (tmp_path / "out").exists()


def test_existing_output_folder_is_left_alone(tmp_path: Path, existing_run: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return True\n"}) + "\n")
    before = snapshot(existing_run)
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(existing_run))
    assert_one_line_error(proc, "already exists", "--resume", "--force")
    assert snapshot(existing_run) == before
    proc = phi_eval("run", "--task", "humaneval", "--model", "reference", "--out", str(existing_run))
    assert_one_line_error(proc, "already exists")
    assert snapshot(existing_run) == before


def test_k_larger_than_n(tmp_path: Path) -> None:
    proc = phi_eval("run", "--task", "humaneval", "--model", "reference", "--n", "1", "--k", "1,10",
                    "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "pass@10 needs at least 10 samples")
    assert not (tmp_path / "o").exists()


def test_bad_k_and_split(tmp_path: Path, mbpp_path: Path) -> None:
    assert_one_line_error(phi_eval("run", "--task", "humaneval", "--model", "reference", "--k", "one"), "--k takes")
    proc = phi_eval("run", "--task", "mbpp", "--model", "reference", "--data", str(mbpp_path), "--split", "dev",
                    "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "unknown split 'dev'")


def test_few_shot_examples_missing_names_the_real_flag(tmp_path: Path, mbpp_path: Path) -> None:
    rows = [json.loads(line) for line in mbpp_path.read_text().splitlines()]
    data = tmp_path / "mbpp.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows if r["task_id"] in (1, 11, 12)))  # not 2-4
    out = tmp_path / "o"
    proc = phi_eval("generate", "--task", "mbpp", "--model", "reference", "--data", str(data),
                    "--mbpp-prompt", "3-shot", "--out", str(out))
    assert_one_line_error(proc, "few-shot", "--mbpp-prompt docstring")
    assert phi_eval("generate", "--task", "mbpp", "--model", "reference", "--data", str(data),
                    "--mbpp-prompt", "docstring", "--out", str(tmp_path / "o2")).returncode == 0  # the advice works
