"""report.md per run and the leaderboard across runs, against golden files and the runs' own figures.

The fixture runs under tests/data/runs/ (rebuilt by make_runs.py there) are copied into a tmp dir,
since write_run_report writes into the run folder.  PHI_EVAL_UPDATE_GOLDEN=1 rewrites the goldens.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.errors import PhiEvalError
from phi_eval.leaderboard import find_runs, leaderboard_markdown
from phi_eval.report import read_results, write_run_report

HERE = Path(__file__).resolve().parent
RUNS = HERE / "data" / "runs"
GOLDEN = HERE / "golden"
NAMES = ("humaneval-reference", "humaneval-phi-1-old", "humaneval-tiny-broken")


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    dest = tmp_path / "results"
    dest.mkdir()
    for name in NAMES:
        shutil.copytree(RUNS / name, dest / name)
    return dest


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PHI_EVAL_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing; run with PHI_EVAL_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


def table_after(text: str, heading: str) -> list[list[str]]:
    """Body rows of the first Markdown table after a heading line starting with `heading`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[2:]  # drop the header and the alignment row


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ---------------------------------------------------------------- report.md


@pytest.mark.parametrize(
    ("run", "golden"), [("humaneval-tiny-broken", "report.md"), ("humaneval-phi-1-old", "report_old.md")]
)
def test_run_report_matches_golden(runs: Path, run: str, golden: str) -> None:
    path = write_run_report(runs / run)
    assert path == runs / run / "report.md"
    check_golden(golden, path.read_text(encoding="utf-8"))


def test_run_report_plot_is_a_png_shown_by_the_report_and_stable(runs: Path) -> None:
    run = runs / "humaneval-tiny-broken"
    first = write_run_report(run).read_text()
    png = (run / "pass_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert "![pass@k](pass_at_k.png)" in first
    assert write_run_report(run).read_text() == first
    assert (run / "pass_at_k.png").read_bytes() == png


def test_report_figures_come_from_the_run(runs: Path) -> None:
    run = runs / "humaneval-tiny-broken"
    text = write_run_report(run).read_text()
    metrics = metrics_of(run)
    results = read_results(run)

    pass_rows = dict(map(tuple, table_after(text, "## pass@k")))
    assert pass_rows == {f"pass@{k}": f"{100 * v:.1f}%" for k, v in metrics["pass_at_k"].items()}

    outcome_rows = {r[0]: int(r[1]) for r in table_after(text, "## Outcomes")}
    assert outcome_rows == metrics["outcomes"]

    rates: dict[str, list[int]] = {}
    for r in results:
        rates.setdefault(r["task_id"], []).append(r["passed"])
    lowest = min(sum(v) / len(v) for v in rates.values())
    hardest = table_after(text, "## Hardest tasks")
    below = [t for t, v in rates.items() if sum(v) < len(v)]
    assert len(hardest) == min(10, len(below)) and all(float(r[3].rstrip("%")) < 100 for r in hardest)
    assert float(hardest[0][3].rstrip("%")) == pytest.approx(100 * lowest)
    assert [float(r[3].rstrip("%")) for r in hardest] == sorted(float(r[3].rstrip("%")) for r in hardest)

    slowest = table_after(text, "## Slowest samples")
    assert float(slowest[0][3]) == pytest.approx(max(r["duration_s"] for r in results))

    assert f"- Allowed-import rate: {100 * metrics['allowed_imports_rate']:.1f}%" in text
    for item in metrics["top_outside_imports"]:
        module, count = item["module"], item["count"]
        assert f"| {module} | {count} |" in text


def test_report_without_results_or_checks_says_na(runs: Path) -> None:
    run = runs / "humaneval-phi-1-old"
    (run / "results.jsonl").unlink()
    text = write_run_report(run).read_text()
    assert "n/a (no results.jsonl)" in text
    assert "- Allowed-import rate: n/a" in text
    assert (run / "pass_at_k.png").is_file()


def test_report_on_a_folder_without_metrics_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PhiEvalError, match="metrics.json is missing"):
        write_run_report(tmp_path)


def test_fixture_metrics_agree_with_the_pipeline_estimator() -> None:
    """The fixtures' figures were computed with math.comb; phi_eval.metrics must give the same."""
    from phi_eval.metrics import run_pass_at_k

    for name in NAMES:
        metrics = metrics_of(RUNS / name)
        ours = run_pass_at_k(read_results(RUNS / name), [int(k) for k in metrics["pass_at_k"]])
        assert ours == pytest.approx(metrics["pass_at_k"])


# ---------------------------------------------------------------- the leaderboard


def test_leaderboard_matches_golden(runs: Path) -> None:
    check_golden("leaderboard.md", leaderboard_markdown(find_runs([runs])))


def test_leaderboard_has_one_row_per_run_with_its_pass_at_1_best_first(runs: Path) -> None:
    text = leaderboard_markdown(find_runs([runs]))
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    col, run_col = header.index("pass@1"), header.index("run")
    assert sorted(r[run_col] for r in rows) == sorted(NAMES)
    for row in rows:
        assert row[col] == f"{100 * metrics_of(runs / row[run_col])['pass_at_k']['1']:.1f}%"
    figures = [metrics_of(runs / r[run_col])["pass_at_k"]["1"] for r in rows]
    assert figures == sorted(figures, reverse=True)
    old = next(r for r in rows if r[run_col] == "humaneval-phi-1-old")
    assert old[header.index("allowed imports")] == "n/a"


def test_find_runs_searches_folders_and_takes_run_folders(runs: Path) -> None:
    assert {p.name for p in find_runs([runs.parent])} == set(NAMES)
    assert [p.name for p in find_runs([runs / "humaneval-reference"])] == ["humaneval-reference"]
    empty = runs.parent / "empty"
    empty.mkdir()
    with pytest.raises(PhiEvalError, match="no runs found"):
        find_runs([empty])
    with pytest.raises(PhiEvalError, match="does not exist"):
        find_runs([runs / "nowhere"])


def test_cli_report_json_and_out(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "board" / "leaderboard.md"
    result = CliRunner().invoke(app, ["report", str(runs), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["run"] for r in records] == sorted(NAMES, key=lambda n: -metrics_of(runs / n)["pass_at_k"]["1"])
    for r in records:
        assert r["pass_at_k"] == metrics_of(runs / r["run"])["pass_at_k"]
    assert out.read_text() == leaderboard_markdown(find_runs([runs]))


def test_cli_report_prints_a_table_and_can_write_run_reports(runs: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", str(runs / "humaneval-reference"), str(runs), "--run-reports"]
    )
    assert result.exit_code == 0, result.output
    assert "phi-eval leaderboard" in result.stdout
    assert result.stdout.count("humaneval-tiny-broken") == 1  # a run named twice is listed once
    assert all((runs / name / "report.md").is_file() for name in NAMES)


def test_cli_report_errors_are_one_line(runs: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty)])
    assert result.exit_code == 1
    assert result.stderr.startswith("phi-eval: error: no runs found") and result.stderr.count("\n") == 1

    for name in NAMES:
        (runs / name / "metrics.json").write_text("{not json")
    result = CliRunner().invoke(app, ["report", str(runs)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("is not valid JSON") == len(NAMES)
    assert result.stderr.splitlines()[-1].startswith("phi-eval: error: no readable runs")
