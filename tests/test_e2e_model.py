"""A real (tiny, freshly built) Phi model through the whole CLI: generate, resume, execute, score."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> None:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_then_resume_keeps_first_samples(tiny_phi: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--task", "humaneval", "--model", str(tiny_phi), "--n", "2", "--temperature", "0.8",
              "--max-new-tokens", "24", "--seed", "7", "--out", str(out)]
    cli("generate", *common, "--limit", "2")
    first = (out / "samples.jsonl").read_text()
    assert len(first.splitlines()) == 4
    cli("generate", *common, "--limit", "4", "--resume")
    after = (out / "samples.jsonl").read_text()
    assert after.startswith(first)  # never regenerated or rewritten
    keys = [(r["task_id"], r["completion_id"]) for r in _lines(out / "samples.jsonl")]
    assert sorted(keys) == sorted({(f"HumanEval/{t}", c) for t in range(4) for c in range(2)})
    config = json.loads((out / "config.json").read_text())
    assert config["model_info"]["model"] == str(tiny_phi) and config["temperature"] == 0.8
    prompts = _lines(out / "prompts.jsonl")
    assert prompts[0]["format"] == "plain" and prompts[0]["prompt"].startswith("from typing import List")


def test_changed_settings_refuse_to_resume(tiny_phi: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("generate", "--task", "humaneval", "--model", str(tiny_phi), "--limit", "1", "--max-new-tokens", "8",
        "--out", str(out))
    result = runner.invoke(app, ["generate", "--task", "humaneval", "--model", str(tiny_phi), "--limit", "1",
                                 "--max-new-tokens", "8", "--seed", "99", "--out", str(out), "--resume"])
    assert result.exit_code == 1 and "different settings (seed)" in result.output


@pytest.mark.docker
def test_sampled_run_scores_end_to_end(tiny_phi: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("run", "--task", "humaneval", "--model", str(tiny_phi), "--n", "2", "--temperature", "0.8",
        "--max-new-tokens", "32", "--limit", "3", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == 6 and metrics["num_tasks"] == 3 and set(metrics["pass_at_k"]) == {"1"}
    assert 0.0 <= metrics["pass_at_k"]["1"] <= 1.0 and sum(metrics["outcomes"].values()) == 6
    results = _lines(out / "results.jsonl")
    assert all(r["outcome"] in {"passed", "failed", "runtime_error", "syntax_error", "timeout"} for r in results)
    assert "allowed_imports_rate" in metrics and (out / "report.md").exists()


def test_missing_model_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--task", "humaneval", "--model", str(tmp_path / "no-model"),
                                 "--limit", "1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_two_processes_write_one_run_without_gaps(tiny_phi: Path, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m phi_eval generate`: rank 0 alone owns the folder; 3 tasks x 3
    samples over 2 processes (not divisible) come back exactly once each."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "phi_eval", "--",
         "generate", "--task", "humaneval", "--model", str(tiny_phi), "--limit", "3", "--n=3",
         "--temperature", "0.7", "--max-new-tokens", "12", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys = [(r["task_id"], r["completion_id"]) for r in _lines(out / "samples.jsonl")]
    assert sorted(keys) == sorted((f"HumanEval/{t}", c) for t in range(3) for c in range(3))
    single = tmp_path / "single"
    cli("generate", "--task", "humaneval", "--model", str(tiny_phi), "--limit", "3", "--n", "3",
        "--temperature", "0.7", "--max-new-tokens", "12", "--out", str(single))
    by_key = {(r["task_id"], r["completion_id"]): r["completion"] for r in _lines(single / "samples.jsonl")}
    assert {(r["task_id"], r["completion_id"]): r["completion"] for r in _lines(out / "samples.jsonl")} == by_key


def _interrupt_mid_run(cmd: list[str], samples: Path, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start `cmd`, wait until a few batches are on disk, send `sig`, return the finished process."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and len(samples.read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_interrupted_generation_keeps_finished_batches_and_resumes(
    tiny_phi: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """Killed or Ctrl-C'd mid-run: every finished batch is on disk whole, and --resume draws only
    the rest; the result is the same as an uninterrupted run (greedy)."""
    args = ["--task", "humaneval", "--model", str(tiny_phi), "--limit", "12", "--batch-size", "1",
            "--max-new-tokens", "48"]
    base = [sys.executable, "-m", "phi_eval", "generate", *args]
    out = tmp_path / "run"
    stopped = _interrupt_mid_run([*base, "--out", str(out)], out / "samples.jsonl", sig)
    assert stopped.returncode != 0
    if sig == signal.SIGINT:  # one line saying what happened, no traceback
        assert "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
        assert "interrupted; files written so far are kept" in stopped.stderr
    kept = (out / "samples.jsonl").read_text()
    assert kept.endswith("\n") and 3 <= len(kept.splitlines()) < 12
    subprocess.run([*base, "--out", str(out), "--resume"], check=True, capture_output=True, cwd=ROOT)
    resumed = (out / "samples.jsonl").read_text()
    assert resumed.startswith(kept)  # nothing finished was drawn again or rewritten
    clean = tmp_path / "clean"
    subprocess.run([*base, "--out", str(clean)], check=True, capture_output=True, cwd=ROOT)
    key = lambda r: (r["task_id"], r["completion_id"])  # noqa: E731
    assert sorted(_lines(out / "samples.jsonl"), key=key) == sorted(_lines(clean / "samples.jsonl"), key=key)
