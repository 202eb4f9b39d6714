"""Finishing a run: its results settled, its metrics computed and written, its report and summary, its policies.

The steps, in order: results.jsonl rewritten with one result per sample in problem order; the
metrics (pass@k over the executed samples, outcomes, the checks' summary) written to metrics.json;
report.md rendered (a report problem never hides the numbers); the summary printed; then a run
with samples the sandbox could not execute ends with exit 3, and the --fail-on policies are enforced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from phi_eval import __version__, files, runfolder
from phi_eval.config import RunConfig, now_iso
from phi_eval.errors import PhiEvalError, PolicyFailed
from phi_eval.jobs import NOT_EXECUTED
from phi_eval.metrics import default_ks, outcome_counts, run_pass_at_k
from phi_eval.tasks import Problem, Task

console = Console(stderr=True)


def finish_run(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
               elapsed_s: float, sidecar: Any = None) -> dict[str, Any]:
    """Settle the results, write metrics.json and report.md, print the summary, then enforce the policies.

    Samples the sandbox could not execute (sandbox_error: the machine failed, not the model) are
    not scored: pass@k is over the executed ones, metrics.json counts and names the others, and the
    command ends non-zero (exit 3) so that an incomplete run never passes for a finished one.
    """
    records = settle_results(run_dir, problems)
    metrics = compute_metrics(cfg, task, records, elapsed_s)
    files.write_json(run_dir / runfolder.METRICS, metrics)
    _write_report(run_dir, sidecar)
    print_summary(metrics, run_dir)
    _refuse_incomplete(records)
    _apply_policies(cfg, metrics, records)
    return metrics


def settle_results(run_dir: Path, problems: Sequence[Problem]) -> list[dict]:
    """results.jsonl rewritten whole: one result per sample (unique_results), in problem order."""
    order = {p.task_id: i for i, p in enumerate(problems)}
    results_path = run_dir / runfolder.RESULTS
    records = sorted(unique_results(files.iter_jsonl(results_path)),
                     key=lambda r: (order.get(r["task_id"], len(order)), r["completion_id"]))
    files.write_jsonl(results_path, records)
    return records


def compute_metrics(cfg: RunConfig, task: Task, records: Sequence[dict], elapsed_s: float) -> dict[str, Any]:
    """metrics.json's content: pass@k over the executed samples (the k's every task can support),
    the outcomes, what was not executed, and the checks' summary."""
    from phi_eval.checks.summary import summarize

    missing = [r for r in records if r["outcome"] == NOT_EXECUTED]
    counts = _counts(records)  # executed samples only
    n_max = max((n for n, _ in counts.values()), default=0)
    n_min = min((n for n, _ in counts.values()), default=0)
    ks = list(cfg.ks) if cfg.ks else default_ks(max(n_min, 1))
    skipped = [k for k in ks if k > n_min] if missing else []
    ks = [k for k in ks if k not in skipped]
    return {
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


def _write_report(run_dir: Path, sidecar: Any) -> None:
    """report.md, in the sidecar when there is one; a failure is a warning (the numbers are written)."""
    try:
        if sidecar is not None:
            sidecar.write_report(run_dir).result()
        else:
            from phi_eval.report import write_run_report

            write_run_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the numbers are written; a report problem must not hide them
        console.print(f"[yellow]warning:[/] report.md not written: {exc}")


def _refuse_incomplete(records: Sequence[dict]) -> None:
    """Exit 3 in one line when samples could not be executed: they are retried with --resume."""
    missing = [r for r in records if r["outcome"] == NOT_EXECUTED]
    if missing:
        first = missing[0]
        raise PhiEvalError(
            f"{len(missing)} of {len(records)} samples could not be executed (the sandbox failed, not the "
            f"model; first: {first['task_id']} #{first['completion_id']}: {str(first.get('detail', ''))[:120]}); "
            "they are left out of pass@k and listed in metrics.json: run the same command with --resume "
            "to retry them",
            exit_code=3,
        )


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
