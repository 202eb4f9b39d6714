"""HumanEval+ and MBPP+: phi-eval's verdicts against evalplus 0.3.1's own, and the rules on their own.

The fidelity tests score canonical solutions and mutants with both phi-eval (the real Docker
sandbox) and `evalplus.evaluate` (a subprocess; PHI_EVAL_EVALPLUS_PYTHON picks its interpreter)
on the same data file and assert equal per-sample base and plus verdicts.  They skip outside CI
when evalplus is not importable and fail under CI=true.  The default run uses a subset of MBPP+
and a small HumanEval+-format file; the whole of MBPP+ runs with PHI_EVAL_EVALPLUS_FULL=1.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from evalplus_support import (
    MBPP_PLUS,
    build_humaneval_plus,
    environment_samples,
    mbpp_subset,
    read_jsonl,
    require_evalplus,
    run_evalplus,
    samples_for,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parent.parent

# Tasks with a special oracle, an atol, deserialised inputs (tuples, sets, complex, dicts) or
# outputs that only count as not-None, beside plain ones.
MBPP_TASKS = ["Mbpp/2", "Mbpp/3", "Mbpp/63", "Mbpp/115", "Mbpp/124", "Mbpp/164", "Mbpp/252", "Mbpp/278",
              "Mbpp/295", "Mbpp/558", "Mbpp/581", "Mbpp/722", "Mbpp/786", "Mbpp/787", "Mbpp/17"]
HUMANEVAL_TASKS = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/12", "HumanEval/13", "HumanEval/22",
                   "HumanEval/29", "HumanEval/32", "HumanEval/35", "HumanEval/53", "HumanEval/55", "HumanEval/58"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHI_EVAL_CACHE", str(tmp_path / "phi-cache"))


def _checker_ns() -> dict[str, Any]:
    """The checker's functions, run here as the sandbox's test process runs them."""
    from phi_eval.plus.checker import CHECKER

    ns: dict[str, Any] = {"_SPEC": {}}
    exec(CHECKER, ns)
    return ns


# ------------------------------------------------------------------ the rules, without Docker


def test_encode_and_decode_keep_every_type() -> None:
    from phi_eval.plus.checker import encode

    dec = _checker_ns()["_dec"]
    values = [(1, [2, (3,)]), {1, 2}, frozenset({"a"}), {(1, 2): [3j]}, 2**80, -(2**70), float("inf"),
              float("-inf"), b"\x00x", [None, True, 1.5, "s"], {"k": {}}, ()]
    for v in values:
        back = dec(json.loads(json.dumps(encode(v))))
        assert repr(back) == repr(v) and type(back) is type(v)
    nan = dec(json.loads(json.dumps(encode(float("nan")))))
    assert math.isnan(nan)
    opaque = dec(json.loads(json.dumps(encode(object()))))
    assert opaque != opaque.__class__() and opaque == opaque


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["float", "float", "int", "bool", "complex", "big", "list", "tuple", "str", "none", "ragged"])
    if depth > 2 and kind in ("list", "tuple", "ragged"):
        kind = "float"
    if kind == "float":
        return rng.choice([0.0, 1.0, -2.5, 1e-9, 1e300, float("inf"), float("nan"), rng.uniform(-5, 5)])
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "complex":
        return complex(rng.uniform(-2, 2), rng.uniform(-2, 2))
    if kind == "big":
        return rng.choice([2**63, 2**64, -(2**63) - 1, 10**400])
    if kind == "str":
        return "a"
    if kind == "none":
        return None
    n = rng.randint(0, 3)
    if kind == "ragged":
        return [_random_value(rng, depth + 1) for _ in range(n)]
    item = _random_value(rng, depth + 1)
    seq = [item if not isinstance(item, float) else rng.uniform(-3, 3) for _ in range(n)]
    return seq if kind == "list" else tuple(seq)


def _near(rng: random.Random, v: Any) -> Any:
    if isinstance(v, float) and not isinstance(v, bool):
        return v + rng.choice([0.0, 1e-7, 1e-5, 1.0]) * rng.choice([1, -1])
    if isinstance(v, list):
        return [_near(rng, e) for e in v]
    if isinstance(v, tuple):
        return tuple(_near(rng, e) for e in v)
    return v


def test_allclose_agrees_with_numpy() -> None:
    """The checker's allclose (no numpy in the sandbox) against numpy's own, on pairs that reach it in
    evalplus (same type, and same length for lists and tuples)."""
    np = pytest.importorskip("numpy")
    allclose = _checker_ns()["_allclose"]
    rng = random.Random(7)
    disagreements, tried = [], 0
    while tried < 3000:
        exp = _random_value(rng)
        out = _near(rng, exp) if rng.random() < 0.7 else _random_value(rng)
        atol = rng.choice([1e-6, 1e-4, 0.0])
        if type(out) is not type(exp) or (isinstance(exp, (list, tuple)) and len(out) != len(exp)):
            continue
        tried += 1
        try:
            with np.errstate(all="ignore"):
                want = bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
        except Exception:  # noqa: BLE001 - numpy refusing is a failed input in evalplus
            want = False
        if allclose(out, exp, atol) != want:
            disagreements.append((out, exp, atol, want))
    assert not disagreements, disagreements[:5]


def test_judge_follows_evalplus_rules() -> None:
    judge = _checker_ns()["_judge"]
    assert judge("mbpp", "f", [1], 3, 3, 0) == (True, 0)
    assert judge("mbpp", "f", [1], 1.0000001, 1.0, 0) == (True, 1e-6)  # float: atol 1e-6 from here on
    assert judge("mbpp", "f", [1], 1.1, 1.0, 0) == (False, 1e-6)
    assert judge("mbpp", "f", [1], 1, 1.0000001, 1e-6)[0] is False  # int vs float: type check
    assert judge("mbpp", "similar_elements", [1], (2, 1), (1, 2), 0)[0] is True  # set equality
    assert judge("mbpp", "are_equivalent", [1], "anything", True, 0)[0] is True
    assert judge("mbpp", "sum_div", [1], 0, 5, 0)[0] is True
    assert judge("mbpp", "check_str", ["a"], "a match", True, 0)[0] is True  # not None
    assert judge("mbpp", "check_str", ["a"], False, True, 0)[0] is False
    assert judge("humaneval", "find_zero", [[1, 1]], -1.0, -1.0, 1e-6)[0] is None  # never recorded


def _check(inputs: list, expected: list, limits: list[float], candidate: Any) -> None:
    """The checker's check() on one part, run here with `candidate` standing in for the proxy."""
    from phi_eval.plus.checker import CHECKER, encode

    spec = {"dataset": "mbpp", "entry": "f", "part": "plus", "atol": 0, "inputs": [encode(list(a)) for a in inputs],
            "expected": [encode(e) for e in expected], "limits": limits}
    ns: dict[str, Any] = {"_SPEC": spec}
    exec(CHECKER, ns)
    ns["_check_part"](candidate)


def test_time_limit_bounds_the_call_not_carrying_its_answer() -> None:
    """evalplus times the call in the process that makes it; here a call is a round trip that also
    carries the answer back, and that part is not held against the candidate."""
    import time

    ns = _checker_ns()
    big = [[i, i + 1, i + 2] for i in range(150_000)]  # MBPP+ 630's answers are this large

    def carries(*args: Any) -> Any:  # answers at once; carrying the answer takes a while
        ns["_transport"]([1], big)
        return big

    carry = min(ns["_transport"]([1], big) for _ in range(2))
    assert carry > 0.1
    _check([[1]], [big], [carry / 3], carries)  # the round trip is over the limit, the call is not

    def slow(*args: Any) -> Any:  # the control: a call that is itself over its limit
        time.sleep(carry)
        return 3

    with pytest.raises(AssertionError, match="ran past its time limit"):
        _check([[1]], [3], [carry / 2], slow)

    def hangs(*args: Any) -> Any:
        time.sleep(30)

    start = time.perf_counter()
    with pytest.raises(AssertionError, match="ran past its time limit of 0.20s"):
        _check([[1]], [3], [0.2], hangs)
    assert time.perf_counter() - start < 0.2 + 0.1 + 0.15  # the alarm: the limit and a small allowance


def test_part_timeout_is_evalplus_with_carrying() -> None:
    from phi_eval.plus.checker import encode, part_timeout

    small = [encode(1)] * 3
    assert part_timeout([1.0, 1.0, 1.0], small) == pytest.approx(5.0, abs=0.01)  # min(60, 3) + 2
    assert part_timeout([1.0] * 100, [encode(1)] * 100) == pytest.approx(62.0, abs=0.3)  # capped at 60
    assert part_timeout([1.0] * 100, [encode(1)] * 100, cap_s=10) == pytest.approx(12.0, abs=0.3)
    big = [encode([[i] * 3 for i in range(60_000)])]
    assert 62.5 < part_timeout([80.0], big) < 65  # and what carrying a 1 MB answer costs


def test_evalplus_jobs_are_never_parked() -> None:
    """A parked container runs at a low CPU weight; an EvalPlus part's calls are timed against
    limits of their own, so parking one (MBPP+ 599's extra inputs take 40 s) failed them."""
    from phi_eval.plus.checker import encode, plus_jobs
    from phi_eval.sandbox.parking import park_after_s

    jobs = plus_jobs(task_id="Mbpp/599", completion_id=0, candidate="def f(n):\n    return n\n", entry_point="f",
                     dataset="mbpp", base_input=([1],), plus_input=tuple([n] for n in range(100)), atol=0,
                     expected={"base": [encode(1)], "base_time": [0.1], "plus": [encode(n) for n in range(100)],
                               "plus_time": [2.0] * 100},
                     memory_mb=4096)
    assert [j.parkable for j in jobs] == [False, False]
    assert all(park_after_s(j, {"Mbpp/599": 0.004}) >= j.timeout_s for j in jobs)


def test_candidate_starts_in_evalplus_environment(tmp_path: Path) -> None:
    """The sandbox's `evalplus` environment (which EvalPlus jobs name) gives the program what
    evalplus's reliability_guard and swallow_io give a sample (stdin that raises, no open(), stdout
    dropped, the recursion depth evalplus allows) and leaves no name in its globals."""
    from phi_eval.plus.checker import plus_jobs

    runner_dir = Path(__file__).resolve().parent.parent / "sandbox"
    source = ('"""Write a function."""\nfrom __future__ import annotations\nimport sys\n\n'
              'def probe() -> list:\n    out = []\n'
              '    for act in (lambda: sys.stdin.read(), lambda: input(), lambda: open("x", "w"), lambda: os.getcwd(),\n'
              '                lambda: __import__("resource")):\n'
              '        try:\n            act()\n            out.append("ok")\n'
              '        except BaseException as exc:\n            out.append(type(exc).__name__)\n'
              '    return out\n\n'
              'import os\nprint("dropped")\n'
              'sys.__stdout__.write(repr([probe(), sys.getrecursionlimit(), sorted(k for k in globals() if k[0] != "_")]))\n')
    # as the candidate process runs it: the environment applied, then the program, as it is
    driver = (f"import sys; sys.path.insert(0, {str(runner_dir)!r}); from runner import envs; "
              "src = sys.stdin.read(); limit = sys.getrecursionlimit(); envs.apply('evalplus'); "
              "exec(compile(src, '<candidate>', 'exec'), {'__name__': '__candidate__'}); "
              "sys.__stdout__.write(repr(limit - envs.RECURSION_HEADROOM))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", driver], input=source, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    body, _, want_limit = proc.stdout.rpartition("]")
    probe, limit, names = eval(body + "]")  # noqa: S307 - our own subprocess's repr
    assert probe == ["OSError", "OSError", "TypeError", "TypeError", "ModuleNotFoundError"]
    assert limit == int(want_limit) and names == ["annotations", "os", "probe", "sys"]
    assert not (tmp_path / "x").exists()
    # EvalPlus's jobs ask for it; the program itself goes unchanged
    jobs = plus_jobs(task_id="Mbpp/2", completion_id=0, candidate=source, entry_point="probe", dataset="mbpp",
                     base_input=((),), plus_input=(), atol=0, memory_mb=512,
                     expected={"base": [[]], "base_time": [0.1], "plus": [], "plus_time": []})
    assert [(j.env, j.candidate) for j in jobs] == [("evalplus", source)] * 2
    # and the runner refuses an environment it does not have
    sys.path.insert(0, str(runner_dir))
    try:
        from runner.verdict import check_job
    finally:
        sys.path.remove(str(runner_dir))
    job = {"id": "x", "candidate": "", "timeout_s": 1, "memory_mb": 64}
    check_job({**job, "env": "evalplus"})
    check_job({**job, "env": None})
    with pytest.raises(ValueError, match="'env' must be one of"):
        check_job({**job, "env": "nope"})


def test_checker_is_the_prelude_unless_the_entry_point_shares_a_name_with_it() -> None:
    """The checker goes as the job's prelude (T compiles it once); an entry point named like one of
    its helpers would lose that helper when T removes the entry point's name after the prelude, so
    then the checker goes into the tests, after that removal."""
    from phi_eval.plus.checker import CHECKER, CHECKER_NAMES, parts_of, tests_source

    data = tests_source("mbpp", "f", "base", [[1]], [2], [0.01], 0)
    assert {"_dec", "_judge", "_check_part", "_json"} <= CHECKER_NAMES and "check" not in CHECKER_NAMES
    for entry in ("f", "_dec"):
        prelude, tests = parts_of(data, entry)
        assert (prelude == CHECKER) is (entry == "f")
        ns: dict[str, Any] = {}
        exec(prelude, ns)  # as T runs a job: prelude, the entry point's name removed, the tests
        ns.pop(entry, None)
        exec(tests, ns)
        calls: list[int] = []

        def right(x: int, calls: list[int] = calls) -> int:
            calls.append(x)
            return x + 1

        ns["check"](right)  # passes: f(1) == 2
        assert calls == [1]
        with pytest.raises(AssertionError, match="returned 1, expected 2"):
            ns["check"](lambda x: x)


def test_mbpp_deserialisation_rules_cover_every_special_task() -> None:
    from phi_eval.plus.data import deserialise

    assert deserialise("mbpp", "Mbpp/124", [["1.5", "(1+2j)"]]) == ((1.5, 1 + 2j),)
    assert deserialise("mbpp", "Mbpp/115", [[[[1], [], {}]]]) == ([[{1}, {}, {}]],)
    assert deserialise("mbpp", "Mbpp/722", [[{"a": [1, 2]}, 3]]) == ([{"a": (1, 2)}, 3],)
    assert deserialise("mbpp", "Mbpp/580", [[[1, [2, [3]]]]]) == (((1, (2, (3,))),),)
    assert deserialise("mbpp", "Mbpp/11", [["a", "b"]]) == (["a", "b"],)


def test_bad_data_and_no_network_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phi_eval.errors import PhiEvalError
    from phi_eval.plus import data
    from phi_eval.tasks import get_task

    task = get_task("mbpp-plus")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"task_id": "Mbpp/2", "prompt": ""}])
    with pytest.raises(PhiEvalError, match="lacks entry_point, canonical_solution"):
        task.load(bad)
    monkeypatch.setattr(data, "RELEASE_URL", "http://127.0.0.1:9/{repo}/{version}/{name}.jsonl.gz")
    with pytest.raises(PhiEvalError, match=r"cannot download MbppPlus v0.2.0 .*pass --data"):
        task.load(None)
    assert not list((tmp_path / "phi-cache").rglob("*.part*"))  # nothing half-written is left


def test_cli_without_network_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHI_EVAL_CACHE": str(tmp_path / "c"),
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "Mbpp/2", "completion": "x"}])
    proc = subprocess.run([sys.executable, "-m", "phi_eval", "evaluate", str(samples), "--task", "mbpp-plus",
                           "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "cannot download MbppPlus v0.2.0" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_expected_outputs_are_cached_per_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phi_eval.plus import groundtruth
    from phi_eval.tasks import get_task

    path = mbpp_subset(tmp_path / "sub.jsonl", ["Mbpp/2", "Mbpp/124"])
    problems, source = get_task("mbpp-plus").load(path)
    items = [(p.task_id, p.entry_point, p.plus) for p in problems]
    first = groundtruth.expected_outputs(items, source.sha256)
    assert groundtruth.cache_file(source.sha256).is_file()
    assert len(first["Mbpp/2"]["plus"]) == len(problems[0].plus.plus_input)

    def boom(*a: Any) -> None:
        raise AssertionError("recomputed")

    monkeypatch.setattr(groundtruth, "_run_task", boom)
    assert groundtruth.expected_outputs(items, source.sha256) == first


# ------------------------------------------------------------------ fidelity against evalplus 0.3.1


def _phi_eval(task: str, data: Path, samples: Path, out: Path) -> dict[str, list[dict[str, Any]]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "phi_eval", "evaluate", str(samples), "--task", task, "--data", str(data),
         "--out", str(out), "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl(out / "results.jsonl"):
        by_task.setdefault(r["task_id"], []).append(r)
    return by_task


def _compare(dataset: str, task: str, data: Path, rows: list[dict[str, Any]], tmp_path: Path,
             loops: set[str] = frozenset()) -> dict[str, int]:
    python = require_evalplus()
    samples = samples_for(rows, loops)
    path = write_jsonl(tmp_path / "samples.jsonl", samples)
    theirs, _ = run_evalplus(python, dataset, data, path, tmp_path / "evalplus-cache")
    ours = _phi_eval(task, data, path, tmp_path / "run")
    seen: dict[str, int] = {}
    mismatches, tally = [], {"base": 0, "plus": 0, "differ": 0}
    for s in samples:
        i = seen.get(s["task_id"], 0)
        seen[s["task_id"]] = i + 1
        t, o = theirs[s["task_id"]][i], ours[s["task_id"]][i]
        want = (t["base_status"] == "pass", t["base_status"] == t["plus_status"] == "pass")
        got = (o["passed_base"], o["passed"])
        if want != got:
            mismatches.append((s["task_id"], s["kind"], "evalplus", want, str(t["plus_fail_tests"])[:80],
                               "phi-eval", got, o["detail"][:120]))
        tally["base"] += got[0]
        tally["plus"] += got[1]
        tally["differ"] += got[0] != got[1]
    assert not mismatches, f"{len(mismatches)} of {len(samples)} differ: {mismatches[:20]}"
    return tally


@pytest.mark.docker
def test_mbpp_plus_verdicts_equal_evalplus(tmp_path: Path) -> None:
    data = mbpp_subset(tmp_path / "MbppPlus-subset.jsonl", MBPP_TASKS)
    rows = read_jsonl(data)
    tally = _compare("mbpp", "mbpp-plus", data, rows, tmp_path, loops={"Mbpp/3"})
    # The samples must tell the cases apart: some pass both, some base only, some neither.
    assert tally["plus"] >= len(rows) - 1 and tally["differ"] >= 3 and tally["base"] < 6 * len(rows)


@pytest.mark.docker
def test_environment_and_time_limits_equal_evalplus(tmp_path: Path) -> None:
    """Samples that pass or fail only by what evalplus's process gives a sample (stdin, open(),
    exit, stdout, stack and recursion depth), and MBPP+ 630's canonical solution, whose answers
    (up to 59,049 lists) take longer to carry out of the sandbox than to compute."""
    python = require_evalplus()
    data = mbpp_subset(tmp_path / "MbppPlus-env.jsonl", ["Mbpp/3", "Mbpp/630"])
    rows = {r["task_id"]: r for r in read_jsonl(data)}
    samples = environment_samples(rows["Mbpp/3"])
    samples.append({"task_id": "Mbpp/630", "kind": "canonical",
                    "solution": rows["Mbpp/630"]["prompt"] + rows["Mbpp/630"]["canonical_solution"]})
    path = write_jsonl(tmp_path / "samples.jsonl", samples)
    theirs, _ = run_evalplus(python, "mbpp", data, path, tmp_path / "evalplus-cache")
    ours = _phi_eval("mbpp-plus", data, path, tmp_path / "run")
    seen: dict[str, int] = {}
    got, want = {}, {}
    for s in samples:
        i = seen.get(s["task_id"], 0)
        seen[s["task_id"]] = i + 1
        t, o = theirs[s["task_id"]][i], ours[s["task_id"]][i]
        want[s["kind"]] = (t["base_status"] == "pass", t["base_status"] == t["plus_status"] == "pass")
        got[s["kind"]] = (o["passed_base"], o["passed"], o["detail"][:100])
    assert {k: v[:2] for k, v in got.items()} == want, got
    # the samples tell the rules apart (evalplus's verdicts, as measured)
    assert not want["reads_stdin_at_top"][0] and not want["writes_a_file"][0] and not want["recurses_970"][0]
    assert want["recurses_969"] == want["deep_cached_recursion"] == want["main_block"] == (True, True)


@pytest.mark.docker
def test_humaneval_plus_verdicts_equal_evalplus(tmp_path: Path) -> None:
    data = build_humaneval_plus(tmp_path / "HumanEvalPlus-small.jsonl.gz", HUMANEVAL_TASKS)
    rows = read_jsonl(data)
    assert len(rows) >= 10
    tally = _compare("humaneval", "humaneval-plus", data, rows, tmp_path)
    assert tally["plus"] >= len(rows) - 1 and tally["differ"] >= 2


@pytest.mark.docker
@pytest.mark.slow
def test_all_of_mbpp_plus_equals_evalplus(tmp_path: Path) -> None:
    if os.environ.get("PHI_EVAL_EVALPLUS_FULL") != "1":
        pytest.skip("the whole of MBPP+ (about 2,800 samples, minutes) runs with PHI_EVAL_EVALPLUS_FULL=1")
    assert MBPP_PLUS.is_file()
    data = mbpp_subset(tmp_path / "MbppPlus.jsonl", None)
    _compare("mbpp", "mbpp-plus", data, read_jsonl(data), tmp_path)


def test_contamination_guard_indexes_a_cached_release(tmp_path: Path) -> None:
    """`train --eval-task mbpp-plus` checks against MBPP+ from the release cache (no network here, so
    the test places a file where the download would have put it)."""
    import gzip

    from phi_eval.contamination import build_eval_index

    cached = tmp_path / "phi-cache" / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(gzip.compress(mbpp_subset(tmp_path / "sub.jsonl", ["Mbpp/2", "Mbpp/3"]).read_bytes()))
    index = build_eval_index(["mbpp-plus"])
    assert index.size == 2 and index.names == ("mbpp-plus",)


@pytest.mark.docker
def test_humaneval_plus_run_with_reference_model(tmp_path: Path) -> None:
    """`phi-eval run` end to end on a .jsonl.gz HumanEval+ file: prompts, both tables, config.json."""
    data = build_humaneval_plus(tmp_path / "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/0", "HumanEval/32",
                                                                              "HumanEval/53"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "phi_eval", "run", "--task", "humaneval-plus", "--model",
                           "reference", "--data", str(data), "--out", str(tmp_path / "run"), "--workers", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "humaneval (base tests) pass@1" in proc.stdout and "humaneval+ (base + extra tests) pass@1" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # find_zero (HumanEval/32) never passes under evalplus 0.3.1's rules, so 2 of 3
    assert metrics["pass_at_k"]["1"] == pytest.approx(2 / 3) and metrics["pass_at_k_base"]["1"] == pytest.approx(2 / 3)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["version"] == "v0.1.10" and len(config["data"]["sha256"]) == 64
    results = read_jsonl(tmp_path / "run" / "results.jsonl")
    zero = next(r for r in results if r["task_id"] == "HumanEval/32")
    assert zero["passed_base"] is False and "find_zero" in zero["detail"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| metric | humaneval+ (base + extra tests) | humaneval (base tests) |" in report


# Attacks on the checker itself.  Each passes under evalplus 0.3.1, which compares in the
# candidate's own process (the control: the attack works where the defence is missing), and must
# never pass in phi-eval, whose comparison runs in the sandbox's test process on builtin values.
ATTACKS = {
    "rigged __eq__": ("Mbpp/3", "class _A:\n    def __eq__(self, other):\n        return True\n\n"
                                "def is_not_prime(n):\n    return _A()\n"),
    "patched builtins.set": ("Mbpp/2", "import builtins\n_real = builtins.set\n"
                                       "builtins.set = lambda *a: _real()\n\n"
                                       "def similar_elements(a, b):\n    return ()\n"),
    "patched numpy.allclose": ("Mbpp/82", "import numpy\nnumpy.allclose = lambda *a, **k: True\n\n"
                                          "def volume_sphere(r):\n    return -1.0\n"),
}


@pytest.mark.docker
def test_checker_attacks_never_pass(tmp_path: Path) -> None:
    python = require_evalplus()
    data = mbpp_subset(tmp_path / "MbppPlus-attacks.jsonl", sorted({t for t, _ in ATTACKS.values()}))
    samples = [{"task_id": t, "solution": code, "kind": name} for name, (t, code) in ATTACKS.items()]
    path = write_jsonl(tmp_path / "samples.jsonl", samples)
    theirs, _ = run_evalplus(python, "mbpp", data, path, tmp_path / "evalplus-cache")
    ours = _phi_eval("mbpp-plus", data, path, tmp_path / "run")
    for s in samples:
        t, o = theirs[s["task_id"]][0], ours[s["task_id"]][0]
        assert t["base_status"] == t["plus_status"] == "pass", f"control: {s['kind']} should fool evalplus"
        assert not o["passed_base"] and not o["passed"], f"{s['kind']} passed in phi-eval: {o}"


@pytest.mark.docker
def test_mbpp_plus_generation_with_a_tiny_phi(tmp_path: Path, tiny_phi: Path) -> None:
    """`phi-eval run` with a real (tiny) model: EvalPlus's prompt in the phi-1 format, and each
    completion joined to the file's prompt as the model saw it."""
    data = mbpp_subset(tmp_path / "sub.jsonl", ["Mbpp/2", "Mbpp/3"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "phi_eval", "run", "--task", "mbpp-plus", "--model", str(tiny_phi),
                           "--data", str(data), "--out", str(tmp_path / "run"), "--workers", "1",
                           "--max-new-tokens", "16", "--prompt-format", "phi-1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["task_id"]: r for r in read_jsonl(data)}
    for p in read_jsonl(tmp_path / "run" / "prompts.jsonl"):
        assert p["prompt"] == rows[p["task_id"]]["prompt"].strip() + "\n"
    for s in read_jsonl(tmp_path / "run" / "samples.jsonl"):
        assert s["completion"].startswith("\n")  # MBPP+'s prompt ends without a newline
    results = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert len(results) == 2 and all("passed_base" in r for r in results)
