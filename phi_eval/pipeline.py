"""The only module that wires stages together: tasks -> prompts -> generation -> sandbox -> metrics.

It owns the run folder and resume: samples and results are appended as they finish, so an
interrupted run loses at most what was in flight, and --resume never redoes or rewrites them.
The stages it wires: phi_eval.draw (draw the samples), the evaluation stage here (samples -> jobs
-> verdicts in results.jsonl), phi_eval.finish (metrics, report, summary, policies).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    TextColumn,
)

from phi_eval import __version__, files, runfolder
from phi_eval.config import (
    RESUME_KEYS,
    RunConfig,
    check_settings,
    git_commit,
    now_iso,
    package_versions,
    sha256_file,
)
from phi_eval.draw import generate_samples, get_generator, is_main_process, prompt_setup_of
from phi_eval.errors import PhiEvalError
from phi_eval.finish import finish_run
from phi_eval.generate import Generator
from phi_eval.jobs import NOT_EXECUTED
from phi_eval.progress import progress_bar
from phi_eval.prompts import PromptSetup
from phi_eval.samples import Sample, read_samples
from phi_eval.tasks import DataSource, Problem, Task, get_task

console = Console(stderr=True)


def _progress() -> Any:

    return progress_bar(TextColumn("{task.fields[status]}"))


# ---------------------------------------------------------------- set-up


def load_problems(cfg: RunConfig) -> tuple[Task, list[Problem], DataSource]:
    task = get_task(cfg.task)
    problems, source = task.load(cfg.data, cfg.split)
    source = dataclasses.replace(source, num_problems=len(problems))
    if cfg.limit is not None:
        problems = problems[: cfg.limit]
    return task, problems, source


def _config_record(cfg: RunConfig, task: Task, source: DataSource, generator: Generator | None,
                   setup: PromptSetup | None = None) -> dict[str, Any]:
    record = {
        "phi_eval_version": __version__,
        "git_commit": git_commit(),
        "created_at": now_iso(),
        "command": sys.argv,
        **cfg.to_json(),
        "benchmark_tasks": source.num_problems,
        "timeout_s": cfg.timeout_s if cfg.timeout_s is not None else task.timeout_s,
        "max_new_tokens": cfg.max_new_tokens or task.max_new_tokens,
        "allowed_imports": list(cfg.allowed_imports or task.allowed_imports),
        "stop": list(task.stop),
        "data": {"kind": source.kind, "location": source.location, "sha256": source.sha256,
                 "revision": source.revision, "split": source.split,
                 **({"version": source.revision} if task.loader == "evalplus" else {})},
        "model_info": generator.info() if generator else None,
        "packages": package_versions(),
    }
    if setup is not None:  # what the prompts were: format, stops, the chat template's hash
        record.update(stop=list(setup.stop), prompt=setup.record(),
                      chat_template_sha256=setup.chat_template_sha256)
    return record


def _run_dir(cfg: RunConfig) -> Path:
    return cfg.out or runfolder.default_run_dir(cfg.task, cfg.model or "samples")


def _open_run(cfg: RunConfig, record: dict[str, Any], run_dir: Path, lock: runfolder.RunLock) -> Path:
    """Create the run folder (or reopen it with --resume after checking the settings and inputs match)."""
    config_path = run_dir / runfolder.CONFIG
    if cfg.resume and config_path.exists():
        old = files.read_json(config_path)
        changed = [k for k in RESUME_KEYS if k in old and old.get(k) != record.get(k)]
        if changed:
            raise PhiEvalError(
                f"cannot resume {run_dir}: it was made with different settings ({', '.join(changed)}); "
                "use the same flags or a new --out"
            )
        if old.get("samples_sha256") and old["samples_sha256"] != record.get("samples_sha256"):
            raise PhiEvalError(
                f"cannot resume {run_dir}: it was started from another samples file ({old.get('samples_file')}, "
                f"sha256 {old['samples_sha256'][:12]}); resume with that file, or score this one with a new --out"
            )
        record = {**old, "resumed_at": now_iso()}
    runfolder.prepare(run_dir, lock, resume=cfg.resume, force=cfg.force)
    files.write_json(config_path, record)
    return run_dir


# ---------------------------------------------------------------- evaluation


def _plus_expected(cfg: RunConfig, problems: Sequence[Problem], run_dir: Path) -> dict[str, dict[str, Any]]:
    """EvalPlus tasks: the expected outputs of the problems to run, cached per data file hash."""
    from phi_eval.plus.groundtruth import expected_outputs

    sha = (files.read_json(run_dir / runfolder.CONFIG).get("data") or {}).get("sha256")
    items = [(p.task_id, p.entry_point or "", p.plus) for p in problems]
    return expected_outputs(items, sha, say=console.print)


def job_plan(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
             to_run: Iterable[str] = ()) -> Any:
    """How this run's samples become jobs (EvalPlus tasks: with the expected outputs of the tasks
    in `to_run`, computed or read from their cache first)."""
    from phi_eval.execution import JobPlan

    by_id = {p.task_id: p for p in problems}
    expected = {}
    if task.loader == "evalplus":
        wanted = [by_id[t] for t in dict.fromkeys(to_run)]
        expected = _plus_expected(cfg, wanted, run_dir) if wanted else {}
    return JobPlan(task, by_id, timeout_s=cfg.timeout_s, expected=expected)


def evaluate_samples(cfg: RunConfig, task: Task, problems: Sequence[Problem], samples: Sequence[Sample],
                     run_dir: Path, *, executor: Any = None, warm: Any = None, sidecar: Any = None) -> dict[str, Any]:
    """Execute every sample in the sandbox, write results.jsonl, metrics.json and report.md.

    The model-card checks and the report run in a sidecar process while the sandbox executes
    (phi_eval/sidecar.py); `executor` may be one already started, `warm` a WarmStart still starting
    one (evaluate starts it while reading): the checks are queued and the jobs built before waiting
    for it, so that neither the sidecar nor this process idles while the containers start.
    A sample with two jobs (EvalPlus: base, then extra inputs) runs them in two waves over the pool:
    the extra inputs only for samples that passed the base ones."""
    import contextlib

    from phi_eval.execution import ResultWriter, check_key, execute
    from phi_eval.sandbox import get_executor
    from phi_eval.sidecar import Sidecar

    by_id = {p.task_id: p for p in problems}
    results_path = run_dir / runfolder.RESULTS
    # A sample that could not be executed (sandbox_error, from this run's executor or an older one)
    # is not done: resume runs it again.
    done = {(r["task_id"], r["completion_id"]) for r in files.iter_jsonl(results_path)
            if r.get("outcome") != NOT_EXECUTED}
    todo = [s for s in samples if (s.task_id, s.completion_id) not in done]
    if done or (todo and results_path.exists()):
        console.print(f"resuming: {len(done)} results already in {results_path}, {len(todo)} to run")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if sidecar is None:
            sidecar = stack.enter_context(Sidecar())
        if executor is not None:
            stack.enter_context(executor)
        if warm is not None:
            stack.callback(warm.close)  # whatever it started, should anything below fail
        if todo:
            sidecar.submit_checks((check_key(by_id[s.task_id], s) for s in todo),
                                  cfg.allowed_imports or task.allowed_imports)
            sidecar.preload_report()
            plan = job_plan(cfg, task, problems, run_dir, (s.task_id for s in todo))
            plan.prepare(todo)
            if executor is None:
                executor = stack.enter_context(
                    warm.get() if warm is not None
                    else get_executor(cfg.sandbox, workers=cfg.workers, docker_hosts=list(cfg.docker_hosts)))
            with files.JsonlAppender(results_path) as out, _progress() as progress:
                bar = progress.add_task("executing", total=len(todo), status="")
                passed = 0

                def on_record(record: dict[str, Any]) -> None:
                    nonlocal passed
                    passed += record["passed"]
                    progress.update(bar, advance=1, status=f"{passed} passed")

                execute(executor, plan, todo, ResultWriter(out, sidecar, by_id, on_record))
        if executor is not None:
            executor.close()  # the pool is not needed for the metrics and the report
        return finish_run(cfg, task, problems, run_dir, elapsed_s=time.perf_counter() - started, sidecar=sidecar)


# ---------------------------------------------------------------- the commands


def _check_policy_specs(cfg: RunConfig) -> None:
    """Reject a bad --fail-on before any work is done, not after an hour of generation."""
    if cfg.fail_on:
        from phi_eval.checks.policies import parse_fail_on

        parse_fail_on(list(cfg.fail_on))


def run(cfg: RunConfig, *, evaluate: bool = True) -> Path:
    """`phi-eval run` (generate, then evaluate, in one folder) and `phi-eval generate` (evaluate=False)."""
    check_settings(cfg)
    _check_policy_specs(cfg)
    from phi_eval.prompts import check_system_prompt

    check_system_prompt(cfg.prompt_format, cfg.system_prompt)  # before minutes of model loading
    task, problems, source = load_problems(cfg)
    run_dir = _run_dir(cfg)
    if not is_main_process():  # under accelerate launch / torchrun: generate our share, write nothing
        generate_samples(cfg, task, problems, run_dir, get_generator(cfg, problems), write=False)
        return run_dir
    lock = runfolder.claim(run_dir, resume=cfg.resume, force=cfg.force)  # before minutes of model loading
    try:
        if evaluate:
            return _generate_and_execute(cfg, task, problems, source, run_dir, lock)
        generator = get_generator(cfg, problems)
        setup = prompt_setup_of(cfg, task, generator)
        run_dir = _open_run(cfg, _config_record(cfg, task, source, generator, setup), run_dir, lock)
        samples = generate_samples(cfg, task, problems, run_dir, generator, setup=setup)
        console.print(f"{len(samples)} samples in {run_dir / runfolder.SAMPLES}")
    finally:
        lock.release()
    return run_dir


def _sandbox_cores(cfg: RunConfig) -> int:
    """The cores the sandbox's workers take on this machine while the model generates (none where
    the engines are elsewhere); the model's CPU threads get the rest, at least one."""
    if cfg.docker_hosts and all(not h.startswith("unix://") for h in cfg.docker_hosts):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, cfg.workers or cores)


def _generate_and_execute(cfg: RunConfig, task: Task, problems: Sequence[Problem], source: DataSource,
                          run_dir: Path, lock: runfolder.RunLock) -> Path:
    """`run`: the sandbox starts while the model loads, and executes each generated batch while the
    next is generated (phi_eval/overlap.py); the sidecar is forked before any thread or model."""
    from phi_eval.overlap import Overlap
    from phi_eval.sandbox.warm import WarmStart
    from phi_eval.sidecar import Sidecar

    with Sidecar() as sidecar:
        warm = WarmStart(cfg.sandbox, workers=cfg.workers, docker_hosts=list(cfg.docker_hosts),
                         memory_mb=task.memory_mb)
        try:
            warm.connected()  # no engine: one line, before the model loads
            generator = get_generator(cfg, problems, spare_cores=_sandbox_cores(cfg))
            setup = prompt_setup_of(cfg, task, generator)
            run_dir = _open_run(cfg, _config_record(cfg, task, source, generator, setup), run_dir, lock)
            executor = warm.get()
        except BaseException:
            warm.close()
            raise
        with executor:
            started = time.perf_counter()
            plan = job_plan(cfg, task, problems, run_dir, (p.task_id for p in problems))
            overlap = Overlap(plan, run_dir, executor, sidecar,
                              allowed=tuple(cfg.allowed_imports or task.allowed_imports))
            earlier = [Sample(r["task_id"], r["completion_id"], r["completion"], bool(r.get("is_program")))
                       for r in files.iter_jsonl(run_dir / runfolder.SAMPLES)]
            if overlap.done and earlier:
                console.print(f"resuming: {len(overlap.done)} results already in {run_dir / runfolder.RESULTS}")
            overlap.submit(earlier)  # an earlier attempt's samples run while the rest is generated
            samples = generate_samples(cfg, task, problems, run_dir, generator, setup=setup,
                                       on_samples=overlap.submit)
            overlap.submit(samples)  # nothing new unless a batch slipped past the hook
            with _progress() as progress:
                overlap.finish(progress)
            executor.close()
            finish_run(cfg, task, problems, run_dir, elapsed_s=time.perf_counter() - started, sidecar=sidecar)
    return run_dir


def _samples_name(samples_path: Path) -> str:
    """A scored file's default run name: its stem, or its folder's name for a generic stem
    (results/phi2/samples.jsonl -> phi2), so a leaderboard never lists a run as "samples"."""
    path = Path(samples_path).resolve()
    stem = path.name.split(".")[0]
    generic = stem.lower() in ("samples", "completions", "generations", "results", "")
    return (path.parent.name or stem) if generic else stem


def evaluate_file(cfg: RunConfig, samples_path: Path) -> Path:
    """`phi-eval evaluate`: score a samples file made anywhere. Validates everything before writing.

    The sandbox starts on a thread while the samples are read and checked (phi_eval/sandbox/warm.py);
    the checks' sidecar is forked first, before any thread exists."""
    from phi_eval.sandbox.warm import WarmStart
    from phi_eval.sidecar import Sidecar

    check_settings(cfg)
    _check_policy_specs(cfg)
    cfg = dataclasses.replace(cfg, name=cfg.name or _samples_name(samples_path))
    task, problems, source = load_problems(cfg)
    with Sidecar() as sidecar:
        # --resume may find everything done: the pool is then started only for what is left
        warm = None if cfg.resume else WarmStart(cfg.sandbox, workers=cfg.workers,
                                                 docker_hosts=list(cfg.docker_hosts), memory_mb=task.memory_mb)
        lock = None
        try:
            by_id = {p.task_id: p for p in problems}
            samples = read_samples(samples_path, by_id)
            if cfg.ks:  # before any sample runs, not after: a k the file cannot support is refused now
                from phi_eval.metrics import check_ks, counts_by_task

                check_ks(cfg.ks, counts_by_task({"task_id": s.task_id, "passed": False} for s in samples))
            run_dir = _run_dir(cfg)
            lock = runfolder.claim(run_dir, resume=cfg.resume, force=cfg.force)
            if warm is not None:
                warm.connected()  # no engine: one line, before anything is written
            else:
                from phi_eval.sandbox import preflight

                preflight(cfg.sandbox, docker_hosts=list(cfg.docker_hosts))
            covered = {s.task_id for s in samples}
            record = _config_record(cfg, task, source, None)
            record["samples_file"] = str(samples_path)
            record["samples_sha256"] = sha256_file(samples_path)
            run_dir = _open_run(cfg, record, run_dir, lock)
            if len(covered) < len(problems):
                console.print(f"[yellow]note:[/] samples cover {len(covered)} of {len(problems)} {task.name} "
                              "tasks; pass@k is over the covered tasks")
            problems = [p for p in problems if p.task_id in covered]
            samples_out = run_dir / runfolder.SAMPLES
            if not samples_out.exists():  # whole or not at all
                files.write_jsonl(samples_out, (s.to_json() for s in samples))
        except BaseException:
            if warm is not None:
                warm.close()
            if lock is not None:
                lock.release()
            raise
        try:
            evaluate_samples(cfg, task, problems, samples, run_dir, warm=warm, sidecar=sidecar)
        finally:
            lock.release()
    return run_dir
