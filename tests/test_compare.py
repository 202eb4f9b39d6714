"""The CI gate on real run folders: exit 1 on a drop, 0 against itself, 2 on usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.compare import compare_runs

RUNS = Path(__file__).parent / "data" / "runs"
GOOD, OLD, BAD = RUNS / "humaneval-reference", RUNS / "humaneval-phi-1-old", RUNS / "humaneval-tiny-broken"
runner = CliRunner()


def test_drop_exits_1_and_itself_exits_0() -> None:
    assert runner.invoke(app, ["compare", str(GOOD), str(BAD)]).exit_code == 1
    assert runner.invoke(app, ["compare", str(GOOD), str(GOOD)]).exit_code == 0
    assert runner.invoke(app, ["compare", str(BAD), str(GOOD)]).exit_code == 0  # an improvement holds


def test_max_drop_is_in_metric_units() -> None:
    # phi-1-old vs reference: pass@1 67.5% vs 100% -> a drop of 0.325
    args = ["compare", str(GOOD), str(OLD), "--metric", "pass@1"]
    assert runner.invoke(app, [*args, "--max-drop", "0.3"]).exit_code == 1
    assert runner.invoke(app, [*args, "--max-drop", "0.33"]).exit_code == 0


def test_bootstrap_says_a_large_drop_is_beyond_noise() -> None:
    diffs = {d.metric: d for d in compare_runs(GOOD, BAD, seed=1)}
    d = diffs["pass@1"]
    assert d.delta == pytest.approx(0.7 / 12 - 1.0)
    assert d.shared_tasks == 12 and d.beyond_noise is True and d.ci_high < 0
    assert d.p_not_worse == 0.0
    assert diffs["security_flag_rate"].drop > 0  # a rise of the flag rate is a drop
    same = {d.metric: d for d in compare_runs(GOOD, GOOD)}
    assert same["pass@1"].beyond_noise is False and same["pass@1"].delta == 0


def test_json_output() -> None:
    result = runner.invoke(app, ["compare", str(GOOD), str(BAD), "--json", "--metric", "pass@1"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["holds"] is False and doc["metrics"][0]["metric"] == "pass@1"


@pytest.mark.parametrize("args,needle", [
    ([str(GOOD), "/nonexistent/run"], "does not exist"),
    ([str(GOOD), str(OLD), "--metric", "allowed_imports_rate"], "not in both runs"),
    ([str(GOOD), str(BAD), "--max-drop", "-0.1"], "must lie in [0, 1]"),
    ([str(GOOD), str(BAD), "--metric", "pass@3"], "not in both runs"),
])
def test_usage_errors_exit_2(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2 and needle in result.output
