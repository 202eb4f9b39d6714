"""The trusted runner (the sandbox/runner/ package) through LocalExecutor: real processes, real benchmark data.

Run as root (CI is), the runner splits each sample into a test process and a candidate process
under two unprivileged uids; the hostile table in tests/hostile.py must never pass, and nothing
of the sandbox uids may be left running afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import CANARY, HOSTILE, HOSTILE_MBPP, HOSTILE_MBPP_BY_NAME, Hostile

from phi_eval.jobs import ExecJob, ExecResult, build_job, setup_imports
from phi_eval.paths import sandbox_dir
from phi_eval.sandbox.image import runner_sha256
from phi_eval.sandbox.local import LocalExecutor
from phi_eval.tasks import Problem, get_task

RUNNER = sandbox_dir() / "runner"  # a folder: `python3 -I -S -u <it>` runs its __main__.py
ROOT = os.geteuid() == 0
HOSTILE_TIMEOUT_S = 2.0
MBPP_TIMEOUT_S = 10.0  # tasks/mbpp.toml: Mbpp/123's reference takes several seconds


@pytest.fixture(scope="module")
def humaneval() -> tuple[object, dict[str, Problem]]:
    task = get_task("humaneval")
    problems, _ = task.load()
    return task, {p.task_id: p for p in problems}


@pytest.fixture(scope="module")
def executor():
    os.environ[CANARY] = "leaked-if-you-can-read-this"  # must not reach any sandboxed process
    try:
        with LocalExecutor(workers=2, warn=False) as ex:
            yield ex
    finally:
        os.environ.pop(CANARY, None)


def run_all(ex: LocalExecutor, jobs: list[ExecJob]) -> dict[str, ExecResult]:
    out: dict[str, ExecResult] = {}
    ex.run(jobs, lambda r: out.__setitem__(r.id, r))
    assert set(out) == {j.id for j in jobs}, "every job gets exactly one verdict"
    return out


def sandbox_processes(uids: set[int]) -> list[str]:
    """Processes whose real, effective or saved uid is one of `uids`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        m = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M)
        if m and {int(u) for u in m.groups()} & uids:
            found.append(f"{pid}: {status.splitlines()[0]}")
    return found


def sandbox_files(uids: set[int]) -> list[str]:
    left = []
    for root in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            for entry in os.scandir(root):
                if entry.stat(follow_symlinks=False).st_uid in uids:
                    left.append(entry.path)
        except OSError:
            pass
    return left


def wait_gone(uids: set[int], timeout: float = 5.0) -> list[str]:
    end = time.monotonic() + timeout
    while True:
        left = sandbox_processes(uids)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ data sets


def test_humaneval_canonical_solutions_all_pass(executor: LocalExecutor, humaneval) -> None:
    task, problems = humaneval
    jobs = [build_job(task, p, p.reference, 0) for p in problems.values()]
    results = run_all(executor, jobs)
    bad = {k: (r.outcome, r.detail) for k, r in results.items() if not r.passed}
    assert not bad
    assert len(results) == 164


def test_mbpp_references_all_pass(executor: LocalExecutor, mbpp_path: Path) -> None:
    """All 974, including the setups that build trees of the candidate's own Node class (367,
    927) and the asserts that build the candidate's Pair objects (601)."""
    task = get_task("mbpp")
    problems, _ = task.load(mbpp_path, split="all")
    jobs = [build_job(task, p, p.reference, 0, timeout_s=MBPP_TIMEOUT_S) for p in problems]
    results = run_all(executor, jobs)
    bad = {k: (r.outcome, r.detail) for k, r in results.items() if not r.passed}
    assert not bad
    assert len(results) == len(problems) >= 974


def _mutants(p: Problem) -> dict[str, str]:
    lines = p.reference.rstrip("\n").split("\n")
    return {
        "return_none": "    return None\n",
        "cut_short": "\n".join(lines[: max(1, len(lines) // 2)]) + "\n" if len(lines) > 2 else "    pass\n",
        "pass": "    pass\n",
    }


def test_mutants_fail(executor: LocalExecutor, humaneval) -> None:
    task, problems = humaneval
    jobs = []
    for i, p in enumerate(problems.values()):
        for j, (kind, text) in enumerate(_mutants(p).items()):
            if kind == "pass" or i % 4 == 0:  # every problem once, a quarter of them with all three
                jobs.append(build_job(task, p, text, j))
    results = run_all(executor, jobs)
    passed = [k for k, r in results.items() if r.passed]
    assert not passed
    outcomes = {r.outcome for r in results.values()}
    assert "failed" in outcomes and "runtime_error" in outcomes


def test_mbpp_setup_runs_after_the_program_and_only_its_imports_in_the_tests(mbpp_path: Path) -> None:
    task = get_task("mbpp")
    problems, _ = task.load(mbpp_path, split="all")
    p = next(p for p in problems if p.task_id == "Mbpp/927")
    job = build_job(task, p, p.reference, 0)
    assert job.candidate.startswith(p.reference) and job.candidate.rstrip().endswith(p.setup.rstrip())
    assert job.prelude == ""  # `root = Node(1)` ... needs the candidate's class: it runs in C only
    setup = "import math\nfrom collections import Counter as C\nroot = Node(1)\nif True:\n    import os\n"
    assert setup_imports(setup) == "import math\nfrom collections import Counter as C\n"
    assert setup_imports("") == setup_imports("def (") == ""


def test_mbpp_setup_imports_reach_the_tests(executor: LocalExecutor) -> None:
    """A setup that only imports what the asserts use (sanitized MBPP's test_imports) still works,
    with T's own module, even where the program never imports it."""
    task = get_task("mbpp")
    p = Problem(
        task_id="Mbpp/9001",
        prompt="",
        tests="assert math.isclose(area(1.0), math.pi)\nassert dq(deque([1, 2])) == [1, 2]\n",
        entry_point=None,
        reference="def area(r):\n    pass\ndef dq(x):\n    pass\n",
        setup="import math\nfrom collections import deque",
        completion_is_program=True,
    )
    program = "def area(r):\n    return 3.141592653589793 * r * r\ndef dq(x):\n    return list(x)\n"
    job = build_job(task, p, program, 0)
    assert job.candidate_names == ("area", "dq")
    assert job.prelude.split() == ["import", "math", "from", "collections", "import", "deque"]
    result = run_all(executor, [job])[job.id]
    assert result.passed, result.detail


def test_mbpp_wrong_program_fails(executor: LocalExecutor, mbpp_path: Path) -> None:
    task = get_task("mbpp")
    problems, _ = task.load(mbpp_path, split="prompt")
    jobs = [build_job(task, p, re.sub(r"return .*", "return None", p.reference), 0) for p in problems]
    results = run_all(executor, jobs)
    assert not [k for k, r in results.items() if r.passed]


# ------------------------------------------------------------------------------------ hostile


def _hostile_job(task, problems: dict[str, Problem], h: Hostile, n: int) -> ExecJob:
    return build_job(task, problems[h.task_id], h.completion, 1000 + n, timeout_s=HOSTILE_TIMEOUT_S)


def test_hostile_completions_never_pass(executor: LocalExecutor, humaneval) -> None:
    task, problems = humaneval
    hostile_jobs = {(_j := _hostile_job(task, problems, h, n)).id: (h, _j) for n, h in enumerate(HOSTILE)}
    honest = [build_job(task, p, p.reference, 0) for p in list(problems.values())[::4]]
    jobs: list[ExecJob] = []
    for i, (_, job) in enumerate(hostile_jobs.values()):  # interleave: hostile next to honest work
        jobs.append(job)
        jobs.extend(honest[i * 2 : i * 2 + 2])
    jobs.extend(honest[len(hostile_jobs) * 2 :])
    results = run_all(executor, jobs)

    wrong = []
    for job_id, (h, _) in hostile_jobs.items():
        r = results[job_id]
        if not h.allows(r.outcome):
            wrong.append(
                f"{h.name}: {r.outcome} ({r.detail}) - expected {sorted(h.outcomes or ['not passed'])}"
            )
    assert not wrong, "\n".join(wrong)
    honest_bad = {
        j.id: (results[j.id].outcome, results[j.id].detail) for j in honest if not results[j.id].passed
    }
    assert not honest_bad, "hostile neighbours must not disturb honest samples"
    if ROOT:
        uids = executor.all_uids()
        assert not wait_gone(uids), "the sweep left sandbox processes behind"
        assert not sandbox_files(uids), "the sweep left sandbox files behind"


def test_memory_scan_detector_would_see_a_planted_copy(executor: LocalExecutor, humaneval) -> None:
    """Control for find_tests_in_memory: with the text planted in its own memory, it does pass."""
    task, problems = humaneval
    h = next(h for h in HOSTILE if h.name == "find_tests_in_memory")
    planted = "    planted = b'candidate(144, 60) ' + b'== 12'\n" + h.completion
    result = run_all(executor, [build_job(task, problems[h.task_id], planted, 7)])
    assert next(iter(result.values())).passed


def test_mbpp_hostile_objects_never_pass(executor: LocalExecutor) -> None:
    """Objects of the candidate's classes come back as T's own handles: rigged __eq__, __bool__,
    __len__, __getattr__... are never asked."""
    jobs = {
        h.name: ExecJob(
            id=f"{h.name}#0",
            candidate=h.program,
            prelude="",
            tests=h.tests,
            entry_point=None,
            timeout_s=HOSTILE_TIMEOUT_S,
            memory_mb=512,
            candidate_names=("f", "n"),  # what each program defines for its tests to call
        )
        for h in HOSTILE_MBPP
    }
    honest = ExecJob(  # control: the same kinds of asserts pass where f returns the real value
        id="honest#0",
        candidate="def f(x):\n    return 2\n",
        prelude="",
        tests="".join(
            HOSTILE_MBPP_BY_NAME[n].tests
            for n in ("mbpp_rigged_eq", "mbpp_rigged_bool", "mbpp_rigged_isclose")
        ),
        entry_point=None,
        timeout_s=HOSTILE_TIMEOUT_S,
        memory_mb=512,
        candidate_names=("f",),
    )
    results = run_all(executor, [*jobs.values(), honest])
    assert results["honest#0"].passed, results["honest#0"].detail
    wrong = [
        f"{h.name}: {r.outcome} ({r.detail}) - expected {sorted(h.outcomes)}"
        for h in HOSTILE_MBPP
        if not h.allows((r := results[jobs[h.name].id]).outcome)
    ]
    assert not wrong, "\n".join(wrong)
    assert "not trusted" in results["mbpp_rigged_bool#0"].detail


_OBJECTS_PROGRAM = """\
class Node:
    made = 0
    def __init__(self, data):
        Node.made += 1
        self.data = data
        self.left = self.right = None
    def __eq__(self, other):
        return True
    def __len__(self):
        return 99
    def total(self):
        return self.data + sum(c.total() for c in (self.left, self.right) if c is not None)
def height(node):
    return 0 if node is None else 1 + max(height(node.left), height(node.right))
def total_of(nodes):
    return sum(n.total() for n in nodes)
def by_key(d):
    return sorted(k for k, v in d.items() if v.data > 1)
def pair(a, b):
    return (a, [b, {"k": a}])
def same(a, b):
    return a is b
def gen(n):
    return (i for i in range(n))
def count(it):
    return sum(1 for _ in it)
def make_class():
    return Node
"""

_OBJECTS_TESTS = """\
root = Node(1)
root.left = Node(2)
root.right = Node(3)
root.left.left = Node(4)
assert height(root) == 3 and root.total() == 10 and root.left.left.data == 4
assert root.left.right is None and Node.made == 4
assert root.left == root.left and root.left != root.right and root != 1
assert len({root, root, root.left}) == 2
assert total_of([root.left, root.right]) == 9 and total_of((root.right,)) == 3
assert by_key({"a": root, "b": root.left}) == ["b"]
a, (b, d) = pair(root, 5)[0], pair(root, 5)[1]
assert same(a, root) and not same(a, root.left) and b == 5 and same(d["k"], root)
g = gen(3)  # materialised in C: T iterates its own generator over the values
assert g != [0, 1, 2] and list(g) == [0, 1, 2] and list(g) == []
assert count(gen(4)) == 4 and count(x * 2 for x in range(5)) == 5
try:
    bool(root)
    raise AssertionError("a handle must have no truth value")
except TypeError as exc:
    assert "not trusted" in str(exc)
for probe in (lambda: len(root), lambda: root < root, lambda: root + 1, lambda: float(root), lambda: 2 in root):
    try:
        probe()
        raise AssertionError("probe must raise")
    except TypeError:
        pass
cls = make_class()
assert cls(7).data == 7 and hasattr(root, "total") and not hasattr(root, "nope")
try:
    del root.left
    raise AssertionError("delattr must raise")
except TypeError:
    pass
"""


def test_candidate_objects_are_remote_handles(executor: LocalExecutor) -> None:
    """MBPP 367/601/927-style use: build the candidate's objects, set and read attributes, pass
    them back (also inside containers); T compares only handle identities."""
    job = ExecJob(
        id="objects#0",
        candidate=_OBJECTS_PROGRAM,
        prelude="",
        tests=_OBJECTS_TESTS,
        entry_point=None,
        timeout_s=5.0,
        memory_mb=512,
        candidate_names=("Node", "height", "total_of", "by_key", "pair", "same", "gen", "count", "make_class"),
    )
    wrong = ExecJob(**{**job.to_json(), "id": "objects#1", "tests": "assert height(Node(1)) == 2\n"})
    results = run_all(executor, [job, wrong])
    assert results["objects#0"].passed, results["objects#0"].detail
    assert results["objects#1"].outcome == "failed"


# ------------------------------------------------------------------------------------ protocol


def _raw_runner(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-u", str(RUNNER), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_runner_protocol_bad_lines_and_eof(humaneval) -> None:
    task, problems = humaneval
    p = problems["HumanEval/23"]
    good = json.dumps(build_job(task, p, p.reference, 0).to_json())
    bad_id = json.dumps({"id": "x#1", "candidate": 5})
    proc = _raw_runner("--uids", "2099990001,2099990002") if ROOT else _raw_runner()
    out, err = proc.communicate(("\n".join(["{not json", bad_id, "[1, 2]", good, ""])).encode(), timeout=60)
    assert proc.returncode == 0, err.decode()[-500:]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    ready = lines[0]
    assert ready["ready"] is True and re.fullmatch(r"[0-9a-f]{12}", ready["runner"])
    assert ready["runner"] == runner_sha256()[:12]  # the hash of every file of the package, as the image's
    assert ready["isolation"] == ("uid" if ROOT else "same-uid")
    assert [r["outcome"] for r in lines[1:]] == ["sandbox_error", "sandbox_error", "sandbox_error", "passed"]
    assert lines[2]["id"] == "x#1" and lines[4]["id"] == "HumanEval/23#0"
    assert all(set(r) == {"id", "outcome", "duration_s", "detail"} for r in lines[1:])


def test_the_zygote_imports_nothing_of_the_test_side() -> None:
    """The zygote is exec'd as `runner --zygote FD`, which loads runner.zygote: its whole import
    closure holds no test-side module, so it never held a test by construction.  The control: the
    orchestrator's closure does hold them (the check would see an import that crept in)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.dont_write_bytecode = True; "
        "__import__('runner.' + sys.argv[2]); print(sorted(m for m in sys.modules if m.startswith('runner')))"
    )

    def closure(module: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code, str(sandbox_dir()), module],
            capture_output=True, text=True, check=True, timeout=60,
        )
        return set(json.loads(out.stdout.replace("'", '"')))

    test_side = {"runner.channel", "runner.proxies", "runner.decode", "runner.testproc", "runner.orchestrator"}
    assert not closure("zygote") & test_side, closure("zygote")
    assert test_side <= closure("orchestrator")
    main = (RUNNER / "__main__.py").read_text().split("def main(")[1]
    before_zygote = main.split("if zygote_fd is not None:")[0]  # what `--zygote` loads before it branches
    loaded = {f"runner.{name}" for name in re.findall(r'_load\("(\w+)"\)', before_zygote)}
    assert "runner.preload" in loaded and not loaded & test_side, loaded


def test_outcome_classes(executor: LocalExecutor, humaneval) -> None:
    task, problems = humaneval
    p = problems["HumanEval/13"]
    cases = {
        "syntax_error": "    return (\n",
        "runtime_error": "    return 1 // 0\n",
        "failed": "    return a\n",
        "oom": "    return len(bytearray(1 << 40))\n",
        "timeout": "    import time\n    time.sleep(30)\n",
    }
    jobs = {kind: build_job(task, p, text, n, timeout_s=1.5) for n, (kind, text) in enumerate(cases.items())}
    results = run_all(executor, list(jobs.values()))
    assert {kind: results[j.id].outcome for kind, j in jobs.items()} == {k: k for k in cases}
    assert "ZeroDivisionError" in results[jobs["runtime_error"].id].detail


def test_mbpp_names_resolve_across_processes(executor: LocalExecutor) -> None:
    """MBPP asserts call the solution by name; values, modules and builtin-shadowing names work."""
    program = (
        "import math\nfrom collections import Counter\nLIMIT = 10\n"
        "def sum(a, b):\n    return a * b\n"
        "def counts(s):\n    return Counter(s)\n"
        "def twice(f, x):\n    return f(f(x))\n"
        "def inc(x):\n    return x + 1\n"
        "def weird():\n    return (1 << 80, float('nan'), -0.0, 1j, b'\\x00', {1: {2}}, frozenset([3]))\n"
    )
    tests = (
        "assert sum(3, 4) == 12\nassert counts('aab') == {'a': 2, 'b': 1}\nassert LIMIT == 10\n"
        "assert math.isclose(math.pi, 3.14159, rel_tol=1e-3)\nassert twice(inc, 1) == 3\n"
        "big, nan, negz, c, by, d, fs = weird()\n"
        "assert big == 1 << 80 and nan != nan and str(negz) == '-0.0' and c == 1j and by == b'\\x00'\n"
        "assert d == {1: {2}} and fs == frozenset([3])\nassert abs(-2) == 2\n"
    )
    task = get_task("mbpp")
    problem = Problem("Mbpp/9002", "", tests, None, reference=program, completion_is_program=True)
    job = build_job(task, problem, program, 0)  # the reference defines `sum`, imports `math`
    assert set(job.candidate_names) == {"sum", "counts", "LIMIT", "twice", "inc", "weird"}
    assert "import math" in job.prelude
    result = run_all(executor, [job])[job.id]
    assert result.passed, result.detail


# ------------------------------------------------------------------------------------ lifecycle


def test_hung_runner_is_replaced_and_the_job_rerun(humaneval) -> None:
    task, problems = humaneval
    p = problems["HumanEval/23"]
    job = build_job(task, p, p.reference, 0, timeout_s=1.0)
    with LocalExecutor(workers=1, warn=False, grace_s=1.0) as ex:
        (first, _), = ex.runner_pids()
        os.kill(first, signal.SIGSTOP)  # a runner that stops answering
        results = run_all(ex, [job])
        assert results[job.id].passed
        assert ex.runner_pids()[0][0] != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


def test_close_leaves_no_process(humaneval) -> None:
    task, problems = humaneval
    p = problems["HumanEval/13"]
    daemon = next(h for h in HOSTILE if h.name == "setsid_daemon")
    ex = LocalExecutor(workers=2, warn=False)
    pids = [pid for pair in ex.runner_pids() for pid in pair]
    uids = ex.all_uids()
    try:
        run_all(
            ex, [build_job(task, p, daemon.completion, 1, timeout_s=2.0), build_job(task, p, p.reference, 0)]
        )
    finally:
        ex.close()
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
        time.sleep(0.05)
    assert not alive, "runner or zygote still running after close()"
    if ROOT:
        assert not wait_gone(uids)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_local_executor_warns_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalExecutor(workers=1):
        pass
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "NOT in a container" in err and "--sandbox docker" in err


# ------------------------------------------------------------------ persistent test process, sweeps


class _Session:
    """A raw runner driven one line at a time (the protocol LocalExecutor speaks)."""

    def __init__(self, *extra: str) -> None:
        self.proc = _raw_runner(*extra)
        self.ready = json.loads(self.proc.stdout.readline())

    def ask(self, job: ExecJob | dict) -> dict:
        line = json.dumps(job.to_json() if isinstance(job, ExecJob) else job)
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


_SESSION_UIDS = (2099990011, 2099990012)


def _session() -> _Session:
    return _Session("--uids", ",".join(map(str, _SESSION_UIDS))) if ROOT else _Session()


def _job(
    n: int, candidate: str, tests: str, entry: str | None = "f", timeout_s: float = 3.0, names: tuple = ()
) -> ExecJob:
    return ExecJob(
        id=f"s#{n}",
        candidate=candidate,
        prelude="",
        tests=tests,
        entry_point=entry,
        timeout_s=timeout_s,
        memory_mb=512,
        candidate_names=names,
    )


_INC = "def f(x):\n    return x + 1\n"


def test_each_job_gets_a_fresh_test_namespace() -> None:
    """One T serves many jobs: nothing the tests of one job define is seen by the next."""
    s = _session()
    try:
        first = s.ask(
            _job(1, _INC, "LEAK = 41\nimport math\nmath.LEAK = 1\ndef check(c):\n    assert c(LEAK) == 42\n")
        )
        assert first["outcome"] == "passed", first
        # `LEAK` is no longer T's: the name goes to the candidate, which does not define it
        second = s.ask(_job(2, _INC, "def check(c):\n    assert c(LEAK) == 42\n", names=("LEAK",)))
        assert second["outcome"] == "runtime_error" and "LEAK" in second["detail"], second
        third = s.ask(_job(3, "LEAK = 41\n" + _INC, "def check(c):\n    assert c(LEAK) == 42\n", names=("LEAK",)))
        assert third["outcome"] == "passed", third  # ...and from the candidate it is a plain value
        unlisted = s.ask(_job(4, "LEAK = 41\n" + _INC, "def check(c):\n    assert c(LEAK) == 42\n"))
        assert unlisted["outcome"] == "runtime_error" and "NameError" in unlisted["detail"], unlisted
    finally:
        s.close()


def test_a_hung_test_process_is_replaced() -> None:
    """Tests that never finish time out; T is killed and the next job runs on a fresh one."""
    s = _session()
    try:
        hung = s.ask(_job(1, _INC, "def check(c):\n    while True:\n        pass\n", timeout_s=1.0))
        assert hung["outcome"] == "timeout", hung
        after = s.ask(_job(2, _INC, "def check(c):\n    assert c(1) == 2\n"))
        assert after["outcome"] == "passed", after
        wrong = s.ask(_job(3, _INC, "def check(c):\n    assert c(1) == 3\n"))
        assert wrong["outcome"] == "failed", wrong
    finally:
        s.close()


def test_random_state_is_the_same_for_every_job() -> None:
    """HumanEval/38 and /50 draw test inputs from the shared `random`: each job starts from the
    state the first one saw, as a fresh test process per job would."""
    tests = "import random\ndef check(c):\n    assert c(random.random()) == 'x'\n"
    draws = "def f(x):\n    raise ValueError(repr(x))\n"
    s = _session()
    try:
        seen = [s.ask(_job(n, draws, tests))["detail"] for n in range(3)]
    finally:
        s.close()
    assert len(set(seen)) == 1 and "ValueError" in seen[0], seen


@pytest.mark.skipif(not ROOT, reason="the uid sweep needs root")
def test_sweep_between_jobs_while_the_runner_waits() -> None:
    """A daemon and files the candidate leaves are gone soon after the verdict, while the runner is
    still alive and waiting for work (not only at shutdown); the idle T goes too."""
    daemon = next(h for h in HOSTILE if h.name == "setsid_daemon")
    litter = (
        "import os\n"
        "def f(x):\n"
        "    for root in ('/tmp', '/var/tmp', '/dev/shm'):\n"
        "        p = f'{root}/phi-eval-litter-{os.getpid()}'\n"
        "        open(p + '.a', 'w').write('x')\n"
        "        os.rename(p + '.a', p + '.b')\n"
        "        os.makedirs(p + '.d/sub')\n"
        "        open(p + '.d/sub/f', 'w').write('x')\n"
        "        os.chmod(p + '.d/sub', 0)\n"
        "        os.symlink('/etc/passwd', p + '.l')\n"
        "    return x + 1\n"
    )
    uid_c = {_SESSION_UIDS[1]}
    s = _session()
    try:
        d = s.ask(_job(1, "def f(x):\n" + daemon.completion, "def check(c):\n    assert c(1) == 2\n"))
        assert d["outcome"] == "failed", d
        assert not wait_gone(uid_c, timeout=3.0), "a daemon of the candidate outlived its job"
        before: set[str] = set()
        for n in range(2, 6):
            r = s.ask(_job(n, litter, "def check(c):\n    assert c(1) == 2\n"))
            assert r["outcome"] == "passed", r
            # the last job's files went before this job's candidate started (they may be the only
            # ones left here, when this job's sweep has not run yet)
            pids = {re.sub(r"^.*phi-eval-litter-(\d+).*$", r"\1", p) for p in sandbox_files(uid_c)}
            assert not pids & before, f"files of an earlier job survived: {sandbox_files(uid_c)}"
            before |= pids
        end = time.monotonic() + 3
        while sandbox_files(uid_c) and time.monotonic() < end:
            time.sleep(0.05)
        assert not sandbox_files(uid_c), "the sweep left the candidate's files behind"
        assert not wait_gone(set(_SESSION_UIDS), timeout=5.0), "an idle runner kept sandbox processes"
        assert s.proc.poll() is None
        again = s.ask(_job(9, _INC, "def check(c):\n    assert c(1) == 2\n"))  # a new T starts
        assert again["outcome"] == "passed", again
    finally:
        s.close()
    assert not wait_gone(set(_SESSION_UIDS))
