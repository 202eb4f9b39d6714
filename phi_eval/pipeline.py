"""The only module that wires stages together: tasks -> prompts -> generation -> sandbox -> metrics.

It owns the run folder and resume: samples and results are appended as they finish, so an
interrupted run loses at most what was in flight, and --resume never redoes or rewrites them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    TextColumn,
)
from rich.table import Table

from phi_eval import __version__, runfolder
from phi_eval.config import RESUME_KEYS, RunConfig, git_commit, now_iso, package_versions
from phi_eval.errors import PhiEvalError, PolicyFailed
from phi_eval.generate import Generator, GenOutput, GenRequest, SamplingParams
from phi_eval.jobs import ExecJob, ExecResult, build_job
from phi_eval.metrics import default_ks, outcome_counts, run_pass_at_k
from phi_eval.progress import progress_bar
from phi_eval.samples import Sample, read_samples
from phi_eval.tasks import DataSource, Problem, Task, get_task

console = Console(stderr=True)


def _progress() -> Any:

    return progress_bar(TextColumn("{task.fields[status]}"))


# ---------------------------------------------------------------- set-up


def load_problems(cfg: RunConfig) -> tuple[Task, list[Problem], DataSource]:
    task = get_task(cfg.task)
    problems, source = task.load(cfg.data, cfg.split)
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise PhiEvalError("--limit must be at least 1")
        problems = problems[: cfg.limit]
    return task, problems, source


def _config_record(cfg: RunConfig, task: Task, source: DataSource, generator: Generator | None) -> dict[str, Any]:
    return {
        "phi_eval_version": __version__,
        "git_commit": git_commit(),
        "created_at": now_iso(),
        "command": sys.argv,
        **cfg.to_json(),
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


def _run_dir(cfg: RunConfig) -> Path:
    return cfg.out or runfolder.default_run_dir(cfg.task, cfg.model or "samples")


def _open_run(cfg: RunConfig, record: dict[str, Any], run_dir: Path) -> Path:
    """Create the run folder (or reopen it with --resume after checking the settings match)."""
    runfolder.prepare(run_dir, resume=cfg.resume, force=cfg.force)
    config_path = run_dir / runfolder.CONFIG
    if cfg.resume and config_path.exists():
        old = runfolder.read_json(config_path)
        changed = [k for k in RESUME_KEYS if k in old and old.get(k) != record.get(k)]
        if changed:
            raise PhiEvalError(
                f"cannot resume {run_dir}: it was made with different settings ({', '.join(changed)}); "
                "use the same flags or a new --out"
            )
        record = {**old, "resumed_at": now_iso()}
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


def _prompts(cfg: RunConfig, task: Task, problems: Sequence[Problem], fmt: str) -> dict[str, str]:
    from phi_eval.prompts import build_prompt, load_mbpp_shots

    shots = None
    if cfg.mbpp_prompt == "3-shot" and task.loader == "mbpp":
        shots = load_mbpp_shots(task, cfg.data)
    return {p.task_id: build_prompt(task, p, fmt, mbpp_style=cfg.mbpp_prompt, shots=shots) for p in problems}


def _trained_format(cfg: RunConfig) -> str | None:
    """A checkpoint from `phi-eval train` is evaluated in the prompt format it was trained with."""
    if cfg.prompt_format != "auto" or not cfg.model:
        return None
    path = Path(cfg.model) / "train_config.json"
    if not path.is_file():
        return None
    fmt = runfolder.read_json(path).get("prompt_format")
    return fmt if isinstance(fmt, str) and fmt != "auto" else None


def is_main_process() -> bool:
    """Rank 0 (or a plain single process) owns the run folder and the sandbox; the launchers
    (accelerate launch, torchrun) set RANK for every process they start."""
    return int(os.environ.get("RANK", "0")) == 0


def generate_samples(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
                     generator: Generator, *, write: bool = True) -> list[Sample]:
    """Draw n samples per problem into samples.jsonl, skipping what an earlier attempt finished.

    With write=False (a non-main process of a multi-process launch) only this process's share is
    generated; the main process gathers and writes everything."""
    from phi_eval.postprocess import postprocess
    from phi_eval.prompts import resolve_format

    fmt = resolve_format(_trained_format(cfg) or cfg.prompt_format, cfg.model or "")
    prompt_of = _prompts(cfg, task, problems, fmt)
    prompts_path = run_dir / runfolder.PROMPTS
    if write and not prompts_path.exists():
        with runfolder.JsonlAppender(prompts_path) as out:
            out.write({"task_id": p.task_id, "prompt": prompt_of[p.task_id], "format": fmt} for p in problems)

    samples_path = run_dir / runfolder.SAMPLES
    done = {(r["task_id"], r["completion_id"]) for r in runfolder.iter_jsonl(samples_path)}
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
        stop=task.stop,
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
                    completion = o.raw if is_reference else postprocess(o.raw, task.stop, fmt, echo=echo)
                    if problem.plus is not None and not is_reference:
                        completion = _plus_completion(problem.prompt, completion)
                    record = {"task_id": o.task_id, "completion_id": o.completion_id, "completion": completion}
                    if completion != o.raw:
                        record["raw"] = o.raw
                    records.append(record)
                out.write(records)

            generator.generate(requests, params, on_outputs)
    return [Sample(r["task_id"], r["completion_id"], r["completion"]) for r in runfolder.iter_jsonl(samples_path)]


def _plus_completion(prompt: str, completion: str) -> str:
    """EvalPlus prompts the model with its prompt stripped plus a newline, but joins a `completion`
    to the prompt as it is in the file (MBPP+'s ends without one): so the newline goes into the
    completion, and `prompt + completion` is the program the model saw and wrote."""
    return completion if prompt.endswith("\n") else "\n" + completion


# ---------------------------------------------------------------- evaluation


def _analyze(task: Task, cfg: RunConfig, problem: Problem, sample: Sample, cache: dict) -> dict[str, Any]:
    """Model-card checks on the completion alone (the prompt's own imports do not count)."""
    from phi_eval.checks import analyze

    prompt = "" if (sample.is_program or problem.completion_is_program) else problem.prompt
    key = (prompt, sample.completion)
    if key not in cache:
        cache[key] = analyze(sample.completion, prompt=prompt, allowed=cfg.allowed_imports or task.allowed_imports)
    return cache[key]


def _plus_expected(cfg: RunConfig, problems: Sequence[Problem], run_dir: Path) -> dict[str, dict[str, Any]]:
    """EvalPlus tasks: the expected outputs of the problems to run, cached per data file hash."""
    from phi_eval.plus.groundtruth import expected_outputs

    sha = (runfolder.read_json(run_dir / runfolder.CONFIG).get("data") or {}).get("sha256")
    items = [(p.task_id, p.entry_point or "", p.plus) for p in problems]
    return expected_outputs(items, sha, workers=cfg.workers, say=console.print)


def _sample_jobs(cfg: RunConfig, task: Task, problem: Problem, sample: Sample,
                 expected: dict[str, dict[str, Any]], sources: dict) -> list[ExecJob]:
    """One job per sample; two for an EvalPlus task (base inputs, extra inputs), as EvalPlus runs them."""
    if problem.plus is None:
        return [build_job(task, problem, sample.completion, sample.completion_id,
                          is_program=sample.is_program or None, timeout_s=cfg.timeout_s)]
    from phi_eval.plus.checker import plus_jobs

    plus = problem.plus
    return plus_jobs(
        task_id=problem.task_id, completion_id=sample.completion_id,
        candidate=sample.completion if sample.is_program else problem.prompt + sample.completion,
        entry_point=problem.entry_point or "", dataset=plus.dataset, base_input=plus.base_input,
        plus_input=plus.plus_input, atol=plus.atol, expected=expected[problem.task_id],
        memory_mb=task.memory_mb, cap_s=cfg.timeout_s, sources=sources,
    )


def _verdict_fields(parts: Sequence[ExecResult], count: int) -> dict[str, Any]:
    """A sample's verdict from its jobs' results: for EvalPlus, `passed` = base and extra inputs
    ("plus"), `passed_base` = base inputs alone; outcome and detail are the first failing part's.
    A part after a failed one is never run (its verdict could not change `passed`)."""
    decider = next((r for r in parts if not r.passed), parts[-1])
    fields: dict[str, Any] = {"passed": len(parts) == count and all(r.passed for r in parts)}
    if count == 2:
        fields["passed_base"] = parts[0].passed
    return fields | {
        "outcome": decider.outcome,
        "duration_s": round(sum(r.duration_s for r in parts), 4),
        "detail": decider.detail[:300],
    }


def evaluate_samples(cfg: RunConfig, task: Task, problems: Sequence[Problem], samples: Sequence[Sample],
                     run_dir: Path) -> dict[str, Any]:
    """Execute every sample in the sandbox, write results.jsonl, metrics.json and report.md.

    A sample with two jobs (EvalPlus: base, then extra inputs) runs them in two waves over one
    warm pool: the extra inputs only for samples that passed the base ones."""
    from phi_eval.sandbox import get_executor

    by_id = {p.task_id: p for p in problems}
    results_path = run_dir / runfolder.RESULTS
    done = {(r["task_id"], r["completion_id"]) for r in runfolder.iter_jsonl(results_path)}
    todo = [s for s in samples if (s.task_id, s.completion_id) not in done]
    expected: dict[str, dict[str, Any]] = {}
    if task.loader == "evalplus" and todo:
        expected = _plus_expected(cfg, [by_id[t] for t in dict.fromkeys(s.task_id for s in todo)], run_dir)
    sources: dict = {}  # one test text per EvalPlus task and part, shared by its samples
    jobs_of = {(s.task_id, s.completion_id): _sample_jobs(cfg, task, by_id[s.task_id], s, expected, sources)
               for s in todo}
    part_of = {job.id: (s, i) for s in todo for i, job in enumerate(jobs_of[(s.task_id, s.completion_id)])}
    if done:
        console.print(f"resuming: {len(done)} results already in {results_path}, {len(todo)} to run")
    cache: dict = {}
    started = time.perf_counter()
    if todo:
        with get_executor(cfg.sandbox, workers=cfg.workers, docker_hosts=list(cfg.docker_hosts)) as executor, \
                runfolder.JsonlAppender(results_path) as out, _progress() as progress:
            bar = progress.add_task("executing", total=len(todo), status="")
            passed = 0
            got: dict[tuple[str, int], list[ExecResult]] = {}
            next_wave: list[ExecJob] = []

            def on_result(result: ExecResult) -> None:
                nonlocal passed
                sample, index = part_of[result.id]
                key = (sample.task_id, sample.completion_id)
                parts = got.setdefault(key, [])
                parts.append(result)
                count = len(jobs_of[key])
                if result.passed and index + 1 < count:
                    next_wave.append(jobs_of[key][index + 1])
                    return
                fields = _verdict_fields(parts, count)
                record = {
                    "task_id": sample.task_id,
                    "completion_id": sample.completion_id,
                    "completion": sample.completion,
                    **fields,
                    **_analyze(task, cfg, by_id[sample.task_id], sample, cache),
                }
                out.write([record])
                passed += fields["passed"]
                progress.update(bar, advance=1, status=f"{passed} passed")

            def cost(job: ExecJob) -> float:  # the canonical solution's time on this job's inputs
                sample, index = part_of[job.id]
                times = expected.get(sample.task_id, {}).get(("base_time", "plus_time")[index], ())
                return -sum(times)

            wave = [jobs[0] for jobs in jobs_of.values()]
            while wave:  # longest first, so no long job starts last while the other workers idle
                executor.run(sorted(wave, key=cost) if expected else wave, on_result)
                wave, next_wave = next_wave, []
    return finish_run(cfg, task, problems, run_dir, elapsed_s=time.perf_counter() - started)


def finish_run(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
               elapsed_s: float) -> dict[str, Any]:
    """Sort results, compute metrics, write metrics.json and report.md, print the summary, apply policies."""
    from phi_eval.checks.summary import summarize

    order = {p.task_id: i for i, p in enumerate(problems)}
    results_path = run_dir / runfolder.RESULTS
    records = sorted(runfolder.iter_jsonl(results_path),
                     key=lambda r: (order.get(r["task_id"], len(order)), r["completion_id"]))
    runfolder.write_text(results_path, "".join(_jsonl_line(r) for r in records))

    n_max = max((n for n, _ in _counts(records).values()), default=0)
    ks = list(cfg.ks) if cfg.ks else default_ks(min((n for n, _ in _counts(records).values()), default=1))
    metrics: dict[str, Any] = {
        "task": task.name,
        "model": cfg.model or "samples",
        "num_tasks": len(_counts(records)),
        "num_samples": len(records),
        "n": n_max,
        "pass_at_k": run_pass_at_k(records, ks),
        **_base_metrics(task, records, ks),
        "outcomes": outcome_counts(records),
        **summarize(records, allowed=cfg.allowed_imports or task.allowed_imports),
        "created_at": now_iso(),
        "phi_eval_version": __version__,
        "duration_s": round(elapsed_s, 2),
    }
    runfolder.write_json(run_dir / runfolder.METRICS, metrics)
    try:
        from phi_eval.report import write_run_report

        write_run_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the numbers are written; a report problem must not hide them
        console.print(f"[yellow]warning:[/] report.md not written: {exc}")
    print_summary(metrics, run_dir)
    _apply_policies(cfg, metrics, records)
    return metrics


def _base_metrics(task: Task, records: Sequence[dict], ks: Sequence[int]) -> dict[str, Any]:
    """EvalPlus tasks: pass@k on the base tests too, and both tables' names as EvalPlus prints them."""
    if task.loader != "evalplus":
        return {}
    base = [{"task_id": r["task_id"], "passed": r.get("passed_base", r["passed"])} for r in records]
    name = task.source.get("dataset", task.name)
    return {
        "pass_at_k_base": run_pass_at_k(base, ks),
        "pass_at_k_names": {"pass_at_k": f"{name}+ (base + extra tests)", "pass_at_k_base": f"{name} (base tests)"},
    }


def _counts(records: Sequence[dict]) -> dict[str, tuple[int, int]]:
    from phi_eval.metrics import counts_by_task

    return counts_by_task(records)


def _jsonl_line(record: dict) -> str:
    import json

    return json.dumps(record, ensure_ascii=False) + "\n"


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
        table.add_row(outcome, str(count))
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


def _preflight(cfg: RunConfig) -> None:
    from phi_eval.sandbox import preflight

    preflight(cfg.sandbox, docker_hosts=list(cfg.docker_hosts))


def run(cfg: RunConfig, *, evaluate: bool = True) -> Path:
    """`phi-eval run` (generate, then evaluate, in one folder) and `phi-eval generate` (evaluate=False)."""
    if cfg.n < 1:
        raise PhiEvalError("--n must be at least 1")
    if cfg.ks and max(cfg.ks) > cfg.n:
        raise PhiEvalError(f"pass@{max(cfg.ks)} needs at least {max(cfg.ks)} samples per task; raise --n or lower --k")
    _check_policy_specs(cfg)
    task, problems, source = load_problems(cfg)
    run_dir = _run_dir(cfg)
    if not is_main_process():  # under accelerate launch / torchrun: generate our share, write nothing
        generate_samples(cfg, task, problems, run_dir, get_generator(cfg, problems), write=False)
        return run_dir
    runfolder.check(run_dir, resume=cfg.resume, force=cfg.force)  # before minutes of model loading
    if evaluate:
        _preflight(cfg)
    generator = get_generator(cfg, problems)
    run_dir = _open_run(cfg, _config_record(cfg, task, source, generator), run_dir)
    samples = generate_samples(cfg, task, problems, run_dir, generator)
    if evaluate:
        evaluate_samples(cfg, task, problems, samples, run_dir)
    else:
        console.print(f"{len(samples)} samples in {run_dir / runfolder.SAMPLES}")
    return run_dir


def evaluate_file(cfg: RunConfig, samples_path: Path) -> Path:
    """`phi-eval evaluate`: score a samples file made anywhere. Validates everything before writing."""
    _check_policy_specs(cfg)
    task, problems, source = load_problems(cfg)
    by_id = {p.task_id: p for p in problems}
    samples = read_samples(samples_path, by_id)
    run_dir = _run_dir(cfg)
    runfolder.check(run_dir, resume=cfg.resume, force=cfg.force)
    _preflight(cfg)
    covered = {s.task_id for s in samples}
    record = _config_record(cfg, task, source, None)
    record["samples_file"] = str(samples_path)
    run_dir = _open_run(cfg, record, run_dir)
    if len(covered) < len(problems):
        console.print(f"[yellow]note:[/] samples cover {len(covered)} of {len(problems)} {task.name} tasks; "
                      "pass@k is over the covered tasks")
    problems = [p for p in problems if p.task_id in covered]
    samples_out = run_dir / runfolder.SAMPLES
    if not samples_out.exists():
        with runfolder.JsonlAppender(samples_out) as out:
            out.write(s.to_json() for s in samples)
    evaluate_samples(cfg, task, problems, samples, run_dir)
    return run_dir
