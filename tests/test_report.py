"""Per-run report.md and the leaderboard, checked against golden Markdown files.

The fixture runs under tests/data/runs are built by make_runs.py with figures computed
independently of phi-eval (math.comb). Regenerate goldens with PHI_EVAL_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.leaderboard import leaderboard_markdown, leaderboard_rows
from phi_eval.report import read_run, render_run_report, write_run_report

RUNS = Path(__file__).parent / "data" / "runs"
GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PHI_EVAL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (PHI_EVAL_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("run", ["humaneval-tiny-broken", "humaneval-phi-1-old"])
def test_run_report_matches_golden(run: str) -> None:
    _golden(f"report-{run}.md", render_run_report(read_run(RUNS / run)))


def test_write_run_report_writes_markdown_and_plot(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUNS / "humaneval-tiny-broken", run)
    path = write_run_report(run)
    text = path.read_text()
    assert "![pass@k](pass_at_k.png)" in text and "## Hardest tasks" in text and "## Slowest samples" in text
    assert (run / "pass_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_matches_golden() -> None:
    _golden("leaderboard.md", leaderboard_markdown(leaderboard_rows([RUNS])))


def test_leaderboard_is_a_markdown_table_sorted_by_pass_at_1(tmp_path: Path) -> None:
    out = tmp_path / "board.md"
    result = runner.invoke(app, ["report", str(RUNS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in out.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert "pass@1" in header and len(lines) == 2 + 3  # header, rule, one row per run
    col = header.index("pass@1")
    figures = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        figures[cells[header.index("model")]] = cells[col]
    for run in RUNS.iterdir():
        if (run / "metrics.json").is_file():
            m = json.loads((run / "metrics.json").read_text())
            assert figures[m["model"]] == f"{100 * m['pass_at_k']['1']:.1f}%"
    values = [float(f.rstrip("%")) for f in figures.values()]
    assert values == sorted(values, reverse=True)


def test_report_json_and_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(RUNS / "humaneval-reference"), "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert rows[0]["pass_at_k"]["1"] == 1.0 and rows[0]["model"] == "reference"
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "no runs found" in result.output
