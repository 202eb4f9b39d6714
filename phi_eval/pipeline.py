"""The only module that wires stages together: tasks -> prompts -> generation -> sandbox -> metrics.

It owns the run folder and resume: samples and results are appended as they finish, so an
interrupted run loses at most what was in flight, and --resume never redoes or rewrites them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    TextColumn,
)
from rich.table import Table

from phi_eval import __version__, runfolder
from phi_eval.config import (
    RESUME_KEYS,
    RunConfig,
    check_settings,
    git_commit,
    now_iso,
    package_versions,
    sha256_file,
)
from phi_eval.errors import PhiEvalError, PolicyFailed
from phi_eval.generate import Generator, GenOutput, GenRequest, SamplingParams
from phi_eval.jobs import NOT_EXECUTED
from phi_eval.metrics import default_ks, outcome_counts, run_pass_at_k
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
        old = runfolder.read_json(config_path)
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
    runfolder.write_json(config_path, record)
    return run_dir


# ---------------------------------------------------------------- generation


def get_generator(cfg: RunConfig, problems: Sequence[Problem]) -> Generator:
    """The model backend, imported only when chosen."""
    if cfg.model == "reference":
        from phi_eval.generate.reference import ReferenceGenerator

        return ReferenceGenerator(problems)
    if cfg.backend == "vllm":
        from phi_eval.generate.vllm import VLLMGenerator

        return VLLMGenerator(cfg.model, dtype=cfg.dtype, revision=cfg.revision)
    if cfg.backend != "hf":
        raise PhiEvalError(f"unknown backend {cfg.backend!r}; choose hf or vllm")
    from phi_eval.generate.hf import HFGenerator

    return HFGenerator(cfg.model, dtype=cfg.dtype, revision=cfg.revision)


def _prompts(cfg: RunConfig, task: Task, problems: Sequence[Problem], setup: PromptSetup) -> dict[str, str]:
    from phi_eval.prompts import build_prompt, load_mbpp_shots, render_prompt

    shots = None
    if cfg.mbpp_prompt == "3-shot" and task.loader == "mbpp" and not setup.is_chat:
        shots = load_mbpp_shots(task, cfg.data)
    return {
        p.task_id: render_prompt(setup, build_prompt(task, p, setup.fmt, mbpp_style=cfg.mbpp_prompt, shots=shots))
        for p in problems
    }


def _trained_prompt(cfg: RunConfig) -> tuple[str | None, str | None]:
    """A checkpoint from `phi-eval train` is evaluated in the prompt format (and system prompt) it
    was trained with: (format, system prompt), each None when not known or set on the command line."""
    if cfg.prompt_format != "auto" or not cfg.model:
        return None, None
    path = Path(cfg.model) / "train_config.json"
    if not path.is_file():
        return None, None
    trained = runfolder.read_json(path)
    fmt, system = trained.get("prompt_format"), trained.get("system_prompt")
    return (fmt if isinstance(fmt, str) and fmt != "auto" else None,
            system if isinstance(system, str) and cfg.system_prompt is None else None)


def prompt_setup_of(cfg: RunConfig, task: Task, generator: Generator) -> PromptSetup:
    """The run's prompt format, resolved with the model's tokenizer (its chat template) at hand."""
    from phi_eval.prompts import prompt_setup

    fmt, system = _trained_prompt(cfg)
    return prompt_setup(task, fmt or cfg.prompt_format, cfg.model or "", getattr(generator, "tokenizer", None),
                        system or cfg.system_prompt)


def is_main_process() -> bool:
    """Rank 0 (or a plain single process) owns the run folder and the sandbox; the launchers
    (accelerate launch, torchrun) set RANK for every process they start."""
    return int(os.environ.get("RANK", "0")) == 0


def generate_samples(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
                     generator: Generator, *, write: bool = True, setup: PromptSetup | None = None,
                     on_samples: Callable[[list[Sample]], None] | None = None) -> list[Sample]:
    """Draw n samples per problem into samples.jsonl, skipping what an earlier attempt finished.

    With write=False (a non-main process of a multi-process launch) only this process's share is
    generated; the main process gathers and writes everything. A chat format's sample is the
    program extracted from the answer, marked is_program (scored whole, not after the prompt).
    `on_samples` gets each batch once it is written (`run` executes it while the next is generated)."""
    from phi_eval.postprocess import chat_program, postprocess

    setup = setup or prompt_setup_of(cfg, task, generator)
    fmt = setup.fmt
    prompt_of = _prompts(cfg, task, problems, setup)
    prompts_path = run_dir / runfolder.PROMPTS
    if write:  # every prompt the run renders, including those a resume with a larger --limit adds
        recorded = {r["task_id"] for r in runfolder.iter_jsonl(prompts_path)}
        fresh = [p for p in problems if p.task_id not in recorded]
        if fresh:
            with runfolder.JsonlAppender(prompts_path) as out:
                out.write({"task_id": p.task_id, "prompt": prompt_of[p.task_id], "format": fmt} for p in fresh)

    samples_path = run_dir / runfolder.SAMPLES
    # Only the main process reads the folder (it may be clearing it under --force, or appending to
    # it); the others take the main process's request list from the generator (phi_eval/generate/hf.py).
    done = {(r["task_id"], r["completion_id"]) for r in runfolder.iter_jsonl(samples_path)} if write else set()
    requests = [
        GenRequest(p.task_id, cid, prompt_of[p.task_id])
        for p in problems
        for cid in range(cfg.n)
        if (p.task_id, cid) not in done
    ]
    if done and write:
        console.print(f"resuming: {len(done)} samples already in {samples_path}, {len(requests)} to draw")
    params = SamplingParams(
        n=cfg.n,
        temperature=cfg.effective_temperature(),
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens or task.max_new_tokens,
        seed=cfg.seed,
        stop=setup.stop,
        stop_tokens=setup.stop_tokens,
        templated=fmt == "chat",
        batch_size=cfg.batch_size,
    )
    if not write:
        generator.generate(requests, params, lambda outputs: None)
        return []
    is_reference = cfg.model == "reference"
    by_id = {p.task_id: p for p in problems}
    if requests:
        with runfolder.JsonlAppender(samples_path) as out:

            def on_outputs(outputs: list[GenOutput]) -> None:
                records = []
                for o in outputs:
                    if (o.task_id, o.completion_id) in done:
                        continue  # a backend may hand back padding duplicates; keep the first
                    done.add((o.task_id, o.completion_id))
                    problem = by_id[o.task_id]
                    echo = problem.prompt if problem.entry_point is not None else None
                    if is_reference:
                        completion = o.raw
                    elif setup.is_chat:
                        completion = chat_program(o.raw, setup.stop, problem.entry_point,
                                                  (*problem.test_list, problem.setup), context=echo or "")
                    else:
                        completion = postprocess(o.raw, setup.stop, fmt, echo=echo)
                        if problem.plus is not None:
                            completion = _plus_completion(problem.prompt, completion)
                    record = {"task_id": o.task_id, "completion_id": o.completion_id, "completion": completion}
                    if setup.is_chat and not is_reference:
                        record["is_program"] = True
                    if completion != o.raw:
                        record["raw"] = o.raw
                    records.append(record)
                out.write(records)
                if on_samples is not None:
                    on_samples([Sample(r["task_id"], r["completion_id"], r["completion"], bool(r.get("is_program")))
                                for r in records])

            generator.generate(requests, params, on_outputs)
    return _unique([Sample(r["task_id"], r["completion_id"], r["completion"], bool(r.get("is_program")))
                    for r in runfolder.iter_jsonl(samples_path)])


def _unique(samples: Sequence[Sample]) -> list[Sample]:
    """The first sample of each (task_id, completion_id): a folder is written by one phi-eval at a
    time (its lock), but a folder from before the lock may hold duplicates."""
    seen: set[tuple[str, int]] = set()
    out = []
    for s in samples:
        if (s.task_id, s.completion_id) not in seen:
            seen.add((s.task_id, s.completion_id))
            out.append(s)
    return out


def _plus_completion(prompt: str, completion: str) -> str:
    """EvalPlus prompts the model with its prompt stripped plus a newline, but joins a `completion`
    to the prompt as it is in the file (MBPP+'s ends without one): so the newline goes into the
    completion, and `prompt + completion` is the program the model saw and wrote."""
    return completion if prompt.endswith("\n") else "\n" + completion


# ---------------------------------------------------------------- evaluation


def _plus_expected(cfg: RunConfig, problems: Sequence[Problem], run_dir: Path) -> dict[str, dict[str, Any]]:
    """EvalPlus tasks: the expected outputs of the problems to run, cached per data file hash."""
    from phi_eval.plus.groundtruth import expected_outputs

    sha = (runfolder.read_json(run_dir / runfolder.CONFIG).get("data") or {}).get("sha256")
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
                     run_dir: Path, *, executor: Any = None, sidecar: Any = None) -> dict[str, Any]:
    """Execute every sample in the sandbox, write results.jsonl, metrics.json and report.md.

    The model-card checks and the report run in a sidecar process while the sandbox executes
    (phi_eval/sidecar.py); `executor` may be one already started (evaluate starts it while reading).
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
    done = {(r["task_id"], r["completion_id"]) for r in runfolder.iter_jsonl(results_path)
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
        if todo:
            sidecar.submit_checks((check_key(by_id[s.task_id], s) for s in todo),
                                  cfg.allowed_imports or task.allowed_imports)
            sidecar.preload_plotting()
            if executor is None:
                executor = stack.enter_context(
                    get_executor(cfg.sandbox, workers=cfg.workers, docker_hosts=list(cfg.docker_hosts)))
            plan = job_plan(cfg, task, problems, run_dir, (s.task_id for s in todo))
            with runfolder.JsonlAppender(results_path) as out, _progress() as progress:
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


def finish_run(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
               elapsed_s: float, sidecar: Any = None) -> dict[str, Any]:
    """Sort results, compute metrics, write metrics.json and report.md, print the summary, apply policies.

    Samples the sandbox could not execute (sandbox_error: the machine failed, not the model) are
    not scored: pass@k is over the executed ones, metrics.json counts and names the others, and the
    command ends non-zero (exit 3) so that an incomplete run never passes for a finished one.
    """
    from phi_eval.checks.summary import summarize

    order = {p.task_id: i for i, p in enumerate(problems)}
    results_path = run_dir / runfolder.RESULTS
    records = sorted(unique_results(runfolder.iter_jsonl(results_path)),
                     key=lambda r: (order.get(r["task_id"], len(order)), r["completion_id"]))
    runfolder.write_jsonl(results_path, records)

    missing = [r for r in records if r["outcome"] == NOT_EXECUTED]
    counts = _counts(records)  # executed samples only
    n_max = max((n for n, _ in counts.values()), default=0)
    n_min = min((n for n, _ in counts.values()), default=0)
    ks = list(cfg.ks) if cfg.ks else default_ks(max(n_min, 1))
    skipped = [k for k in ks if k > n_min] if missing else []
    ks = [k for k in ks if k not in skipped]
    metrics: dict[str, Any] = {
        "task": task.name,
        "model": cfg.model or "samples",
        "name": cfg.name or cfg.model,
        "num_tasks": len(counts),
        "num_samples": len(records) - len(missing),
        "n": n_max,
        "pass_at_k": run_pass_at_k(records, ks) if counts and ks else {},
        **(_base_metrics(task, records, ks) if counts and ks else {}),
        "outcomes": outcome_counts(records),
        "not_executed": len(missing),
        "not_executed_samples": [
            {"task_id": r["task_id"], "completion_id": r["completion_id"], "detail": r.get("detail", "")}
            for r in missing[:100]
        ],
        **({"pass_at_k_not_computed": skipped} if skipped else {}),
        **summarize(records, allowed=cfg.allowed_imports or task.allowed_imports),
        "created_at": now_iso(),
        "phi_eval_version": __version__,
        "duration_s": round(elapsed_s, 2),
    }
    runfolder.write_json(run_dir / runfolder.METRICS, metrics)
    try:
        if sidecar is not None:
            sidecar.write_report(run_dir).result()
        else:
            from phi_eval.report import write_run_report

            write_run_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the numbers are written; a report problem must not hide them
        console.print(f"[yellow]warning:[/] report.md not written: {exc}")
    print_summary(metrics, run_dir)
    if missing:
        first = missing[0]
        raise PhiEvalError(
            f"{len(missing)} of {len(records)} samples could not be executed (the sandbox failed, not the "
            f"model; first: {first['task_id']} #{first['completion_id']}: {str(first.get('detail', ''))[:120]}); "
            "they are left out of pass@k and listed in metrics.json: run the same command with --resume "
            "to retry them",
            exit_code=3,
        )
    _apply_policies(cfg, metrics, records)
    return metrics


def unique_results(records: Iterable[dict]) -> list[dict]:
    """One result per (task_id, completion_id): an executed verdict beats a sandbox_error, and
    otherwise the first one written stands (later copies come only from before the folder lock)."""
    best: dict[tuple[str, int], dict] = {}
    for r in records:
        key = (r["task_id"], r["completion_id"])
        if key not in best or (best[key]["outcome"] == NOT_EXECUTED and r["outcome"] != NOT_EXECUTED):
            best[key] = r
    return list(best.values())


def _base_metrics(task: Task, records: Sequence[dict], ks: Sequence[int]) -> dict[str, Any]:
    """EvalPlus tasks: pass@k on the base tests too, and both tables' names as EvalPlus prints them."""
    if task.loader != "evalplus":
        return {}
    base = [{"task_id": r["task_id"], "passed": r.get("passed_base", r["passed"])} for r in records
            if r["outcome"] != NOT_EXECUTED]
    name = task.source.get("dataset", task.name)
    return {
        "pass_at_k_base": run_pass_at_k(base, ks),
        "pass_at_k_names": {"pass_at_k": f"{name}+ (base + extra tests)", "pass_at_k_base": f"{name} (base tests)"},
    }


def _counts(records: Sequence[dict]) -> dict[str, tuple[int, int]]:
    from phi_eval.metrics import counts_by_task

    return counts_by_task(records)


def _apply_policies(cfg: RunConfig, metrics: dict[str, Any], records: list[dict]) -> None:
    if not (cfg.fail_on or cfg.min_allowed_imports_rate is not None or cfg.max_security_flag_rate is not None):
        return
    from phi_eval.checks.policies import evaluate_policies, parse_fail_on

    violations = evaluate_policies(
        metrics, records, parse_fail_on(list(cfg.fail_on)), cfg.min_allowed_imports_rate, cfg.max_security_flag_rate
    )
    if violations:
        raise PolicyFailed("policy failed: " + "; ".join(violations))


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    table = Table(title=f"{metrics['task']} · {metrics['model']} · {metrics['num_tasks']} tasks, "
                        f"{metrics['num_samples']} samples")
    table.add_column("metric")
    table.add_column("value", justify="right")
    names = metrics.get("pass_at_k_names") or {}
    for key in ("pass_at_k_base", "pass_at_k"):
        for k, v in (metrics.get(key) or {}).items():
            label = f"{names[key]} pass@{k}" if key in names else f"pass@{k}"
            table.add_row(label, f"{100 * v:.1f}%")
    for outcome, count in metrics["outcomes"].items():
        table.add_row(outcome + (" (not executed: not scored)" if outcome == NOT_EXECUTED else ""), str(count))
    for r in metrics.get("not_executed_samples", [])[:10]:
        table.add_row(f"  not executed: {r['task_id']} #{r['completion_id']}", str(r["detail"])[:60])
    if metrics.get("not_executed", 0) > 10:
        table.add_row(f"  ... and {metrics['not_executed'] - 10} more", "see metrics.json")
    if "allowed_imports_rate" in metrics:
        table.add_row("allowed imports only", f"{100 * metrics['allowed_imports_rate']:.1f}%")
    if "security_flag_rate" in metrics:
        table.add_row("security flagged", f"{100 * metrics['security_flag_rate']:.1f}%")
    Console().print(table)
    console.print(f"run folder: {run_dir}")


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
            generator = get_generator(cfg, problems)
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
                       for r in runfolder.iter_jsonl(run_dir / runfolder.SAMPLES)]
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
                runfolder.write_jsonl(samples_out, (s.to_json() for s in samples))
            executor = warm.get() if warm is not None else None
        except BaseException:
            if warm is not None:
                warm.close()
            if lock is not None:
                lock.release()
            raise
        try:
            evaluate_samples(cfg, task, problems, samples, run_dir, executor=executor, sidecar=sidecar)
        finally:
            lock.release()
    return run_dir
