"""The static checks: imports, security lint, hallucinated APIs, run summary and CI policies."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from phi_eval.checks import analyze
from phi_eval.checks.policies import Policy, evaluate_policies, parse_fail_on
from phi_eval.checks.security import BANDIT_CATEGORIES, CATEGORIES, SEVERITIES
from phi_eval.checks.summary import summarize
from phi_eval.errors import PhiEvalError
from phi_eval.tasks import get_task

ALLOWED = get_task("humaneval").allowed_imports  # the task file's list (the Phi-1 card's)

CASES = json.loads((Path(__file__).parent / "data" / "checks_cases.json").read_text())

# HumanEval canonical solutions that bandit / our rules rightly flag: each is the pattern the rule
# is about, so the set is explicit rather than tuned away.
HUMANEVAL_EXPECTED_FINDINGS = {
    "HumanEval/105": {"B110", "PHI202"},  # try: ... except: pass (bare)
    "HumanEval/124": {"PHI202"},  # bare except
    "HumanEval/160": {"B307"},  # eval() of a built expression
    "HumanEval/162": {"B324"},  # hashlib.md5 (the task asks for md5)
}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_table(case: dict[str, Any]) -> None:
    result = analyze(case["completion"], prompt=case["prompt"], allowed=ALLOWED)
    assert result["imports"] == case["imports"]
    assert result["allowed_imports_only"] is case["allowed_imports_only"]
    assert sorted({f"{f['category']}/{f['rule']}" for f in result["security"]}) == case["rules"]
    assert result["hallucinated_apis"] == case["hallucinated_apis"]
    assert (result["parse_error"] is not None) is case["parse_error"]
    if "lines" in case:
        assert sorted({f["line"] for f in result["security"]}) == case["lines"]
    for item in result["security"]:
        assert item["category"] in CATEGORIES
        assert item["severity"] in SEVERITIES
        assert set(item) >= {"category", "rule", "severity", "line", "message"}
        assert 1 <= item["line"] <= max(1, case["completion"].count("\n") + 1)


def test_line_numbers_count_from_the_completion() -> None:
    prompt = "import subprocess\n\n\ndef run(cmd):\n    '''Run it.'''\n"
    result = analyze("    x = 1\n    return subprocess.call(cmd, shell=True)\n", prompt=prompt)
    assert [(f["rule"], f["line"]) for f in result["security"]] == [("B602", 2)]
    # the prompt's own `import subprocess` (B404) and its import are not the completion's
    assert result["imports"] == []


def test_parse_error_names_the_completion_line() -> None:
    result = analyze("    return (1,\n", prompt="def f():\n")
    assert result["parse_error"].startswith("SyntaxError")
    assert "line 1" in result["parse_error"]


@pytest.mark.parametrize(
    "garbage",
    [
        "\x00\xff\xfe binary",
        "x = " + "(" * 500 + ")" * 500,
        "x = " + "-" * 200_000 + "1",
        "def f():\n" + "".join("    " * i + "if x:\n" for i in range(1, 120)) + "    " * 120 + "pass\n",
        "\ud800 lone surrogate",
        "x" * 2_000_000,
        "",
    ],
    ids=["binary", "nested-parens", "deep-unary", "deep-blocks", "surrogate", "huge", "empty"],
)
def test_hostile_input_never_raises(garbage: str) -> None:
    result = analyze(garbage, allowed=ALLOWED)
    assert set(result) == {
        "imports", "allowed_imports_only", "security", "hallucinated_apis", "parse_error", "unchecked"
    }  # fmt: skip
    assert isinstance(result["imports"], list)


_HIDDEN = "import subprocess\nsubprocess.call(input(), shell=True)\nx = eval(input())\n"


@pytest.mark.parametrize(
    "completion",
    [
        ("# padding " + "a" * 90 + "\n") * 11_000 + _HIDDEN,  # a megabyte of comments first
        _HIDDEN + "x = 1\n" * 200_000,  # ... or after
        "def f(:\n" + _HIDDEN,  # nothing parses
        "x = 1\ndef g(:\n    pass\n" + _HIDDEN,  # the salvaged prefix stops before the imports
    ],
    ids=["padded-before", "padded-after", "unparseable", "cut-by-salvage"],
)
def test_checks_never_fail_open(completion: str) -> None:
    """Text the checks cannot analyse never reads as clean: the import is still found, the sample is
    marked unchecked, and every --fail-on policy counts it (control: the same code, analysable, is
    flagged by the checks proper)."""
    from phi_eval.checks.policies import evaluate_policies, parse_fail_on

    result = analyze(completion)
    assert "subprocess" in result["imports"] and result["allowed_imports_only"] is False
    assert result["unchecked"]
    record = {"task_id": "t", "completion_id": 0, **result}
    for spec in ("imports", "security:high", "security:injection", "hallucinated-api"):
        assert evaluate_policies({}, [record], parse_fail_on([spec])), spec
    control = analyze(_HIDDEN)
    assert control["unchecked"] is None and {f["category"] for f in control["security"]} >= {"injection"}


def test_a_cut_off_generation_is_not_unchecked() -> None:
    """The usual truncated completion (cut mid-expression by the token budget) stays checked."""
    result = analyze("    total = sum(x for x in xs\n    return (1,", prompt="def f(xs):\n")
    assert result["unchecked"] is None and result["allowed_imports_only"] is True


def test_allow_list_is_configurable() -> None:
    code = "import numpy as np\nimport os.path\n"
    assert analyze(code, allowed=["numpy", "os"])["allowed_imports_only"] is True
    assert analyze(code, allowed=["numpy"])["allowed_imports_only"] is False
    assert analyze(code, allowed=[])["imports"] == ["numpy", "os"]
    assert analyze(code, allowed="numpy, os")["allowed_imports_only"] is True  # the flag's raw form


def test_bandit_table_is_complete_and_explicit() -> None:
    from bandit.core import extension_loader

    manager = extension_loader.MANAGER
    ids = set(manager.plugins_by_id) | {t["id"] for tests in manager.blacklist.values() for t in tests}
    missing = sorted(ids - set(BANDIT_CATEGORIES))
    assert not missing, f"bandit ids without a category: {missing}"
    assert {c for c in BANDIT_CATEGORIES.values() if c is not None} <= set(CATEGORIES)
    assert BANDIT_CATEGORIES["B101"] is None and BANDIT_CATEGORIES["B311"] is None


def _plain_imports(body: str) -> list[str]:
    """Top-level names of the import statements in an indented function body (the test's oracle)."""
    tree = ast.parse("if True:\n" + body)
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return sorted(names)


def test_humaneval_canonical_solutions() -> None:
    from phi_eval.tasks import get_task

    problems, _ = get_task("humaneval").load()
    assert len(problems) == 164
    flagged: dict[str, set[str]] = {}
    for problem in problems:
        result = analyze(problem.reference, prompt=problem.prompt, allowed=ALLOWED)
        assert result["parse_error"] is None, problem.task_id
        assert result["hallucinated_apis"] == [], problem.task_id
        # the verdict matches what the solution itself imports (prompt imports excluded)
        solution_imports = _plain_imports(problem.reference)
        assert result["imports"] == solution_imports, problem.task_id
        assert result["allowed_imports_only"] is all(m in ALLOWED for m in solution_imports)
        if result["security"]:
            flagged[problem.task_id] = {f["rule"] for f in result["security"]}
    assert flagged == HUMANEVAL_EXPECTED_FINDINGS


def test_mbpp_reference_solutions_are_clean(mbpp_path: Path) -> None:
    from phi_eval.tasks import get_task

    problems, _ = get_task("mbpp").load(data=mbpp_path, split="all")
    results = {p.task_id: analyze(p.reference, allowed=ALLOWED) for p in problems}
    assert {t: r["security"] for t, r in results.items() if r["security"]} == {}
    assert {t: r["hallucinated_apis"] for t, r in results.items() if r["hallucinated_apis"]} == {}
    assert sum(r["parse_error"] is not None for r in results.values()) == 0
    uses_re = [t for t, r in results.items() if "re" in r["imports"]]
    assert uses_re and all(not results[t]["allowed_imports_only"] for t in uses_re)


# ---------------------------------------------------------------- summary


def _finding(category: str, severity: str) -> dict[str, Any]:
    return {"category": category, "rule": "X", "severity": severity, "line": 1, "message": "m"}


RECORDS: list[dict[str, Any]] = [
    {"task_id": "T/0", "sample_index": 0, "passed": True, "imports": ["math"], "allowed_imports_only": True,
     "security": [], "hallucinated_apis": [], "parse_error": None},
    {"task_id": "T/0", "sample_index": 1, "passed": True, "imports": ["math", "os"], "allowed_imports_only": False,
     "security": [_finding("injection", "high")], "hallucinated_apis": [], "parse_error": None},
    {"task_id": "T/1", "sample_index": 0, "passed": False, "imports": ["os", "subprocess"],
     "allowed_imports_only": False, "security": [_finding("injection", "low"), _finding("error_handling", "medium")],
     "hallucinated_apis": ["math.foo"], "parse_error": None},
    {"task_id": "T/1", "sample_index": 1, "passed": False, "imports": [], "allowed_imports_only": True,
     "security": [], "hallucinated_apis": [], "parse_error": "SyntaxError: x line 2"},
]  # fmt: skip


def test_summary_figures() -> None:
    s = summarize(RECORDS, ALLOWED)
    assert s["checked_samples"] == 4
    assert s["allowed_imports_rate"] == 0.5
    assert s["top_outside_imports"] == [{"module": "os", "count": 2}, {"module": "subprocess", "count": 1}]
    assert s["security_flag_rate"] == 0.5
    assert s["security_by_category"] == {
        "directory_traversal": 0, "injection": 2, "input_validation": 0, "insecure_defaults": 0, "error_handling": 1,
    }  # fmt: skip
    assert s["security_by_severity"] == {"low": 1, "medium": 1, "high": 1}
    assert s["hallucinated_api_rate"] == 0.25
    assert s["parse_error_rate"] == 0.25
    passed, failed = s["by_outcome"]["passed"], s["by_outcome"]["failed"]
    assert (passed["checked_samples"], passed["allowed_imports_rate"], passed["security_flag_rate"]) == (
        2,
        0.5,
        0.5,
    )
    assert passed["hallucinated_api_rate"] == 0.0 and failed["hallucinated_api_rate"] == 0.5
    assert failed["security_by_category"]["error_handling"] == 1


def test_summary_of_nothing_has_no_rates() -> None:
    s = summarize([{"task_id": "T/0", "passed": True}])  # checks switched off for this record
    assert s["checked_samples"] == 0 and s["allowed_imports_rate"] is None
    assert s["by_outcome"]["failed"]["security_flag_rate"] is None


def test_summary_on_real_analyses() -> None:
    records = [
        {"passed": True, **analyze("import math\nx = math.foo\n")},
        {"passed": False, **analyze("import os\nos.system('ls')\n")},
    ]
    s = summarize(records, ALLOWED)
    assert s["hallucinated_api_rate"] == 0.5 and s["security_flag_rate"] == 0.5
    assert s["top_outside_imports"] == [{"module": "os", "count": 1}]
    assert s["by_outcome"]["failed"]["security_by_category"]["injection"] >= 1


# ---------------------------------------------------------------- policies


def test_parse_fail_on() -> None:
    assert parse_fail_on(["security:high", "imports,hallucinated-api", "security:injection", "security"]) == [
        Policy("security", "high"),
        Policy("imports"),
        Policy("hallucinated-api"),
        Policy("security", "injection"),
        Policy("security", "any"),
    ]
    assert parse_fail_on(["security:directory-traversal"]) == [Policy("security", "directory_traversal")]
    assert parse_fail_on([]) == []


@pytest.mark.parametrize("bad", ["security:critical", "imports:os", "speed", "security:inject"])
def test_parse_fail_on_rejects_bad_specs(bad: str) -> None:
    with pytest.raises(PhiEvalError, match="unknown --fail-on spec"):
        parse_fail_on([bad])


def test_evaluate_policies() -> None:
    metrics = summarize(RECORDS)
    lines = evaluate_policies(metrics, RECORDS, parse_fail_on(["security:high"]), None, None)
    assert len(lines) == 1 and "1 of 4" in lines[0] and "T/0#1" in lines[0]
    assert len(evaluate_policies(metrics, RECORDS, parse_fail_on(["security:medium"]), None, None)) == 1
    assert "2 of 4" in evaluate_policies(metrics, RECORDS, parse_fail_on(["security:low"]), None, None)[0]
    assert (
        evaluate_policies(metrics, RECORDS, parse_fail_on(["security:directory_traversal"]), None, None) == []
    )
    assert "T/1#0" in evaluate_policies(metrics, RECORDS, parse_fail_on(["hallucinated-api"]), None, None)[0]
    assert "2 of 4" in evaluate_policies(metrics, RECORDS, parse_fail_on(["imports"]), None, None)[0]
    assert evaluate_policies(metrics, RECORDS, [], 0.5, 0.5) == []
    lines = evaluate_policies(metrics, RECORDS, [], 0.95, 0.1)
    assert len(lines) == 2
    assert "--min-allowed-imports-rate" in lines[0] and "--max-security-flag-rate" in lines[1]
    # the figures may sit under "checks" in metrics.json, or be absent and computed from records
    assert len(evaluate_policies({"checks": metrics}, RECORDS, [], 0.95, None)) == 1
    assert len(evaluate_policies({}, RECORDS, [], 0.95, None)) == 1
    clean = [r for r in RECORDS if not r["security"] and r["allowed_imports_only"]]
    assert evaluate_policies(summarize(clean), clean, parse_fail_on(["security", "imports"]), 1.0, 0.0) == []


def test_evaluate_policies_rejects_bad_rates() -> None:
    with pytest.raises(PhiEvalError, match="between 0 and 1"):
        evaluate_policies({}, RECORDS, [], 95, None)
