"""The CI gate on real run folders: exit 1 on a drop, 0 against itself, 2 on usage errors.

Expected figures are read from the fixture runs' metrics.json / results.jsonl (tests/data/runs),
never typed in, so the tests follow the fixtures when make_runs.py changes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.compare import compare_runs

RUNS = Path(__file__).parent / "data" / "runs"
GOOD, OLD, BAD = RUNS / "humaneval-reference", RUNS / "humaneval-phi-1-old", RUNS / "humaneval-tiny-broken"
runner = CliRunner()


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def gate(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["compare", *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture()
def one_flipped(tmp_path: Path) -> Path:
    """The reference run with a single passing sample turned into a failure: a drop within noise."""
    run = tmp_path / "one-flipped"
    shutil.copytree(GOOD, run)
    lines = (run / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec.update(passed=False, outcome="failed")
    lines[0] = json.dumps(rec)
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    from phi_eval.metrics import outcome_counts, run_pass_at_k

    records = [json.loads(line) for line in lines]
    metrics = metrics_of(run)
    metrics["pass_at_k"] = run_pass_at_k(records, [int(k) for k in metrics["pass_at_k"]])
    metrics["outcomes"] = outcome_counts(records)
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_drop_exits_1_and_itself_exits_0() -> None:
    code, doc = gate(str(GOOD), str(BAD))
    assert code == 1 and doc["holds"] is False
    code, doc = gate(str(GOOD), str(GOOD))
    assert code == 0 and doc["holds"] is True
    assert all(m["delta"] == 0 and m["noise"] == "within noise" for m in doc["metrics"])
    code, doc = gate(str(BAD), str(GOOD))  # an improvement holds
    assert code == 0
    assert {m["metric"]: m["noise"] for m in doc["metrics"]}["pass@1"] == "gain beyond noise"


def test_default_metrics_are_pass_at_k_and_check_rates_in_both_runs() -> None:
    _, doc = gate(str(GOOD), str(BAD))
    ks = [f"pass@{k}" for k in metrics_of(GOOD)["pass_at_k"]]
    assert [m["metric"] for m in doc["metrics"]] == [*ks, "allowed_imports_rate", "security_flag_rate"]
    _, doc = gate(str(GOOD), str(OLD))  # the old run has no import/security figures
    assert [m["metric"] for m in doc["metrics"]] == ks


def test_max_drop_is_absolute_in_metric_units() -> None:
    drop = metrics_of(GOOD)["pass_at_k"]["1"] - metrics_of(OLD)["pass_at_k"]["1"]
    args = [str(GOOD), str(OLD), "--metric", "pass@1"]
    assert gate(*args, "--max-drop", f"{drop - 0.005:.4f}")[0] == 1
    assert gate(*args, "--max-drop", f"{drop + 0.005:.4f}")[0] == 0


def test_a_rise_of_the_security_flag_rate_is_a_drop() -> None:
    assert metrics_of(BAD)["security_flag_rate"] > metrics_of(GOOD)["security_flag_rate"]
    code, doc = gate(str(GOOD), str(BAD), "--metric", "security_flag_rate")
    assert code == 1 and doc["metrics"][0]["drop"] > 0 and doc["metrics"][0]["higher_is_better"] is False
    assert gate(str(BAD), str(GOOD), "--metric", "security_flag_rate")[0] == 0


def test_bootstrap_says_a_large_drop_is_beyond_noise() -> None:
    diffs = {d.metric: d for d in compare_runs(GOOD, BAD, seed=1)}
    d = diffs["pass@1"]
    assert d.delta == pytest.approx(metrics_of(BAD)["pass_at_k"]["1"] - metrics_of(GOOD)["pass_at_k"]["1"])
    assert d.shared_tasks == metrics_of(GOOD)["num_tasks"]
    assert d.beyond_noise is True and d.noise == "drop beyond noise"
    assert d.ci_low <= d.shared_delta <= d.ci_high < 0
    assert d.p_not_worse == 0.0
    same = {d.metric: d for d in compare_runs(GOOD, GOOD)}
    assert same["pass@1"].beyond_noise is False and same["pass@1"].delta == 0


def test_bootstrap_is_seeded() -> None:
    a = compare_runs(GOOD, OLD, ["pass@1"], seed=7).diffs[0]
    b = compare_runs(GOOD, OLD, ["pass@1"], seed=7).diffs[0]
    c = compare_runs(GOOD, OLD, ["pass@1"], seed=8, bootstrap=200).diffs[0]
    assert (a.ci_low, a.ci_high, a.p_not_worse) == (b.ci_low, b.ci_high, b.p_not_worse)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_require_significant_spares_a_drop_within_noise(one_flipped: Path) -> None:
    code, doc = gate(str(GOOD), str(one_flipped), "--metric", "pass@1")
    assert code == 1
    m = doc["metrics"][0]
    assert 0 < m["drop"] < 0.02 and m["noise"] == "within noise" and 0 < m["p_not_worse"] < 1
    assert gate(str(GOOD), str(one_flipped), "--metric", "pass@1", "--require-significant")[0] == 0
    # A drop beyond noise still fails under --require-significant.
    assert gate(str(GOOD), str(BAD), "--metric", "pass@1", "--require-significant")[0] == 1
    # With the bootstrap off, significance cannot be shown: the threshold alone decides (fail closed).
    code, doc = gate(
        str(GOOD), str(one_flipped), "--metric", "pass@1", "--require-significant", "--bootstrap", "0"
    )
    assert code == 1 and doc["metrics"][0]["noise"] == "bootstrap off"


def test_table_output_names_the_failing_metric() -> None:
    result = runner.invoke(app, ["compare", str(GOOD), str(BAD), "--metric", "pass@1"])
    assert result.exit_code == 1
    assert "pass@1" in result.stdout and "FAIL" in result.stdout and "drop beyond noise" in result.stdout
    assert result.stderr.startswith("REGRESSION: pass@1 dropped by")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([str(GOOD), "/nonexistent/run"], "does not exist"),
        ([str(GOOD), str(RUNS)], "holds no metrics.json"),
        ([str(GOOD), str(OLD), "--metric", "allowed_imports_rate"], "not in both runs"),
        ([str(GOOD), str(BAD), "--metric", "pass@3"], "not in both runs"),
        ([str(GOOD), str(BAD), "--max-drop", "-0.1"], "must lie in [0, 1]"),
        ([str(GOOD), str(BAD), "--max-drop", "2"], "must lie in [0, 1]"),
        ([str(GOOD), str(BAD), "--bootstrap", "-1"], "--bootstrap must be"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and result.stderr.count("\n") == 1


def test_unreadable_metrics_is_a_usage_error_not_a_regression(tmp_path: Path) -> None:
    run = tmp_path / "broken"
    shutil.copytree(GOOD, run)
    (run / "metrics.json").write_text("{")
    result = runner.invoke(app, ["compare", str(GOOD), str(run)])
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


# ---------------------------------------------------------------- runs that must not be compared as they are


def test_runs_of_different_tasks_are_a_usage_error(tmp_path: Path) -> None:
    from run_variants import variant

    mbpp = variant(tmp_path / "mbpp", task="mbpp")
    result = runner.invoke(app, ["compare", str(GOOD), str(mbpp)])
    assert result.exit_code == 2, result.output
    assert "humaneval run" in result.stderr and "mbpp run" in result.stderr and result.stderr.count("\n") == 1
    assert runner.invoke(app, ["compare", str(GOOD), str(mbpp), "--allow-subset"]).exit_code == 2


@pytest.fixture()
def subset(tmp_path: Path) -> Path:
    """The broken run on its first 5 tasks only (as `--limit 5` would make it)."""
    from run_variants import variant

    return variant(tmp_path / "five", keep=lambda r: int(r["task_id"].split("/")[1]) < 5)


def test_a_candidate_on_part_of_the_tasks_is_refused_without_allow_subset(subset: Path) -> None:
    result = runner.invoke(app, ["compare", str(GOOD), str(subset)])
    assert result.exit_code == 2, result.output
    assert "scored 5 tasks and baseline humaneval-reference 12" in result.stderr
    assert "--allow-subset" in result.stderr and result.stderr.count("\n") == 1


def test_allow_subset_compares_every_figure_on_the_shared_tasks(subset: Path) -> None:
    from phi_eval.metrics import run_pass_at_k
    from phi_eval.runfolder import read_results

    code, doc = gate(str(GOOD), str(subset), "--allow-subset", "--metric", "pass@1", "--metric", "pass@10")
    assert code == 1 and doc["subset"] is True and doc["compared_tasks"] == 5
    assert (doc["baseline_tasks"], doc["candidate_tasks"]) == (12, 5)
    shared = {f"HumanEval/{i}" for i in range(5)}
    base = run_pass_at_k([r for r in read_results(GOOD) if r["task_id"] in shared], [1, 10])
    cand = run_pass_at_k(read_results(subset), [1, 10])
    for m in doc["metrics"]:
        k = m["metric"].removeprefix("pass@")
        # The baseline's figure is over the shared tasks, not its metrics.json, and the delta is the
        # very delta the bootstrap interval is about.
        assert m["baseline"] == pytest.approx(base[k]) and m["candidate"] == pytest.approx(cand[k])
        assert m["delta"] == pytest.approx(m["shared_delta"]) and m["shared_tasks"] == 5
    result = runner.invoke(app, ["compare", str(GOOD), str(subset), "--allow-subset"])
    assert "SUBSET" in result.stdout and "5 humaneval tasks both runs scored" in result.stdout
    assert result.stderr.startswith("REGRESSION (on the 5 shared tasks only)")


def test_same_tasks_say_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(GOOD), str(BAD), "--metric", "pass@1"])
    assert "both runs scored the same 12 humaneval tasks" in result.stdout
