"""Many run folders -> one leaderboard (pandas DataFrame, Markdown, rich table or JSON).

Grouped by task (HumanEval and MBPP figures are not comparable), best pass@1 first within a task.
Each row says how much of the benchmark the run covered and whether it ran isolated, so a 20-task
or `--sandbox local` run is not read as a full, sandboxed one.  The figures are read from each run's
metrics.json as written; nothing is recomputed, so the table always agrees with the runs.  A folder
that cannot be read (corrupt, or a run still in progress) is skipped with one warning line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.files import read_json
from phi_eval.present import (
    coverage,
    coverage_text,
    dataframe_markdown,
    md_text,
    ordered_outcomes,
    pass_at_k_blocks,
    pct,
    run_name,
    sorted_ks,
    when,
)
from phi_eval.runfolder import CONFIG, METRICS, read_metrics

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"phi-eval: warning: {message}", file=sys.stderr)


def find_runs(paths: Iterable[Path], warn: Warn | None = _stderr) -> list[Path]:
    """Run folders (those holding metrics.json) given directly or found anywhere below a folder.

    A folder in a searched tree that holds a run's config.json but no metrics.json is an unfinished
    run (or a `generate`-only one): skipped, with a warning when `warn` is given."""
    found: list[Path] = []
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise PhiEvalError(f"{path} does not exist; pass run folders or a folder that contains runs")
        if path.is_file():
            path = path.parent if path.name == METRICS else path
            if not path.is_dir():
                raise PhiEvalError(f"{path} is a file; pass a run folder (one that holds {METRICS})")
        if (path / METRICS).is_file():
            found.append(path)
            continue
        runs = sorted(p.parent for p in path.rglob(METRICS) if p.is_file())
        found += runs
        if warn is not None:
            started = {p.parent for p in path.rglob(CONFIG) if p.is_file()}  # a run writes it first
            for folder in sorted(started - set(runs)):
                warn(f"skipping {folder}: no {METRICS} (not scored yet, still running, or stopped early)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        shown = ", ".join(str(p) for p in paths)
        raise PhiEvalError(
            f"no runs found under {shown}; a run folder holds {METRICS} (run `phi-eval run` first)"
        )
    return unique


def run_record(run_dir: Path) -> dict[str, Any]:
    """One run's leaderboard figures (raw 0..1, None where an old run lacks a key); raises PhiEvalError."""
    m = read_metrics(run_dir)
    cfg = read_json(run_dir / CONFIG) if (run_dir / CONFIG).exists() else {}
    cfg = cfg if isinstance(cfg, dict) else {}
    done, total = coverage(m, cfg)
    blocks = pass_at_k_blocks(m)
    return {
        "run": run_dir.name,
        "name": run_name(run_dir, m, cfg),
        "path": str(run_dir),
        "model": m.get("model") or cfg.get("model"),
        "task": m.get("task") or cfg.get("task"),
        "n": m.get("n", cfg.get("n")),
        "num_tasks": done,
        "benchmark_tasks": total,
        "coverage": coverage_text(m, cfg),
        "sandbox": cfg.get("sandbox"),
        "isolated": None if not cfg.get("sandbox") else cfg.get("sandbox") != "local",
        "pass_at_k": {k: blocks[""][k] for k in sorted_ks(blocks[""])},
        "pass_at_k_other": {label: b for label, b in blocks.items() if label},
        "allowed_imports_rate": m.get("allowed_imports_rate"),
        "security_flag_rate": m.get("security_flag_rate"),
        "outcomes": dict(m.get("outcomes") or {}),
        "created_at": m.get("created_at") or cfg.get("created_at"),
        "phi_eval_version": m.get("phi_eval_version") or cfg.get("phi_eval_version"),
    }


def leaderboard_records(run_dirs: Sequence[Path], warn: Warn | None = _stderr) -> list[dict[str, Any]]:
    """One dict per readable run, grouped by task, best pass@1 first within a task.

    A run whose files cannot be read is skipped with one warning naming it (raised instead when
    `warn` is None); no readable run at all is an error."""
    records = []
    for run_dir in run_dirs:
        try:
            records.append(run_record(Path(run_dir)))
        except (PhiEvalError, OSError, ValueError, TypeError, KeyError) as exc:
            if warn is None:
                raise
            warn(f"skipping {run_dir}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if not records:
        raise PhiEvalError("no readable runs: every run folder given was skipped (see the warnings above)")

    def key(r: dict[str, Any]) -> tuple:
        p1 = r["pass_at_k"].get("1")
        return (str(r["task"]), -(p1 if isinstance(p1, int | float) else -1.0), r["name"], r["path"])

    return sorted(records, key=key)


def leaderboard_frame(records: Sequence[dict[str, Any]]) -> Any:
    """The display table: percentages with one decimal, one column per pass@k and per outcome seen."""
    import pandas as pd

    ks = sorted({k for r in records for k in r["pass_at_k"]}, key=lambda k: int(k) if k.isdigit() else 10**9)
    others = sorted({(label, k) for r in records for label, b in r["pass_at_k_other"].items() for k in b})
    outcomes = ordered_outcomes({o for r in records for o in r["outcomes"]})
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "task": r["task"],
            "name": r["name"],
            "run": r["run"],
            "coverage": r["coverage"],
            "n": r["n"],
        }
        row |= {f"pass@{k}": pct(r["pass_at_k"].get(k)) for k in ks}
        row |= {f"pass@{k} ({label})": pct(r["pass_at_k_other"].get(label, {}).get(k)) for label, k in others}
        row["allowed imports"] = pct(r["allowed_imports_rate"])
        row["security flags"] = pct(r["security_flag_rate"])
        row |= {o: r["outcomes"].get(o, 0) for o in outcomes}
        row["sandbox"] = "local (UNISOLATED)" if r["sandbox"] == "local" else (r["sandbox"] or "n/a")
        row["date (UTC)"] = when(r["created_at"])
        row["phi-eval"] = r["phi_eval_version"] or "n/a"
        rows.append(row)
    return pd.DataFrame(rows).fillna("n/a")


TEXT_COLUMNS = ("task", "name", "run", "coverage", "sandbox", "date (UTC)", "phi-eval")


def _numeric_columns(df: Any) -> list[str]:
    return [c for c in df.columns if c not in TEXT_COLUMNS]


def leaderboard_markdown(run_dirs: Sequence[Path], warn: Warn | None = _stderr) -> str:
    """A table per task, best pass@1 first; every name and path escaped so none renders as markup."""
    records = leaderboard_records(run_dirs, warn)
    out = ["# Leaderboard", ""]
    tasks = list(dict.fromkeys(str(r["task"]) for r in records))
    for task in tasks:
        group = [r for r in records if str(r["task"]) == task]
        df = leaderboard_frame(group).drop(columns=["task"])
        for col in ("name", "run"):
            df[col] = df[col].map(md_text)
        out += [f"## {md_text(task)}", "", dataframe_markdown(df, right=_numeric_columns(df)), ""]
    if any(r["sandbox"] == "local" for r in records):
        out += ["`local (UNISOLATED)`: executed with `--sandbox local`, without the Docker sandbox.", ""]
    if any("base tests" in r["pass_at_k_other"] for r in records):
        out += ["EvalPlus tasks (humaneval-plus, mbpp-plus): pass@k is on base + extra tests (\"humaneval+\", "
                "\"mbpp+\"), pass@k (base tests) on the base tests alone (\"humaneval\", \"mbpp\").", ""]
    return "\n".join(out).rstrip() + "\n"


def leaderboard_rich(df: Any) -> Any:
    """A rich Table of the same frame, for the terminal (a line between tasks)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="phi-eval leaderboard (grouped by task)", show_lines=False)
    numeric = set(_numeric_columns(df))
    for col in df.columns:
        table.add_column(str(col), justify="right" if col in numeric else "left", overflow="fold")
    previous = None
    for row in df.itertuples(index=False, name=None):
        if previous is not None and row[0] != previous:
            table.add_section()
        previous = row[0]
        table.add_row(*(escape(str(v)) for v in row))
    return table
