"""Many run folders -> one leaderboard (pandas DataFrame, Markdown, rich table or JSON).

A row per run, sorted by pass@1 so the best run is on top.  The figures are read from each run's
metrics.json as written; nothing is recomputed, so the table always agrees with the runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.report import dataframe_markdown, ordered_outcomes, pct, read_metrics, sorted_ks
from phi_eval.runfolder import CONFIG, METRICS, read_json


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run folders (those holding metrics.json) given directly or found anywhere below a folder."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise PhiEvalError(f"{path} does not exist; pass run folders or a folder that contains runs")
        if path.is_file():
            path = path.parent if path.name == METRICS else path
            if not path.is_dir():
                raise PhiEvalError(f"{path} is a file; pass a run folder (one that holds {METRICS})")
        if (path / METRICS).is_file():
            found.append(path)
        else:
            found += sorted(p.parent for p in path.rglob(METRICS) if p.is_file())
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        shown = ", ".join(str(p) for p in paths)
        raise PhiEvalError(
            f"no runs found under {shown}; a run folder holds {METRICS} (run `phi-eval run` first)"
        )
    return unique


def leaderboard_records(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One dict per run with raw 0..1 figures (None where an old run lacks a key), best pass@1 first."""
    records = []
    for run_dir in run_dirs:
        m = read_metrics(run_dir)
        cfg = read_json(run_dir / CONFIG) if (run_dir / CONFIG).exists() else {}
        cfg = cfg if isinstance(cfg, dict) else {}
        created = m.get("created_at") or cfg.get("created_at")
        records.append(
            {
                "run": run_dir.name,
                "path": str(run_dir),
                "model": m.get("model") or cfg.get("model"),
                "task": m.get("task") or cfg.get("task"),
                "n": m.get("n", cfg.get("n")),
                "num_tasks": m.get("num_tasks"),
                "pass_at_k": {k: m["pass_at_k"][k] for k in sorted_ks(m["pass_at_k"])},
                "pass_at_k_base": dict(m.get("pass_at_k_base") or {}),  # EvalPlus tasks only
                "allowed_imports_rate": m.get("allowed_imports_rate"),
                "security_flag_rate": m.get("security_flag_rate"),
                "outcomes": dict(m.get("outcomes") or {}),
                "created_at": created,
                "phi_eval_version": m.get("phi_eval_version") or cfg.get("phi_eval_version"),
            }
        )

    def key(r: dict[str, Any]) -> tuple:
        p1 = r["pass_at_k"].get("1")
        return (-(p1 if isinstance(p1, int | float) else -1.0), r["run"], r["path"])

    return sorted(records, key=key)


def leaderboard_frame(records: Sequence[dict[str, Any]]) -> Any:
    """The display table: percentages with one decimal, one column per pass@k and per outcome seen."""
    import pandas as pd

    ks = sorted({k for r in records for k in r["pass_at_k"]}, key=lambda k: int(k) if k.isdigit() else 10**9)
    outcomes = ordered_outcomes({o for r in records for o in r["outcomes"]})
    rows = []
    for r in records:
        row: dict[str, Any] = {"run": r["run"], "model": r["model"], "task": r["task"], "n": r["n"]}
        row |= {f"pass@{k}": pct(r["pass_at_k"].get(k)) for k in ks}
        if any(rec["pass_at_k_base"] for rec in records):
            row |= {f"pass@{k} (base tests)": pct(r["pass_at_k_base"].get(k)) for k in ks}
        row["allowed imports"] = pct(r["allowed_imports_rate"])
        row["security flags"] = pct(r["security_flag_rate"])
        row |= {o: r["outcomes"].get(o, 0) for o in outcomes}
        row["date"] = str(r["created_at"])[:10] if r["created_at"] else "n/a"
        row["phi-eval"] = r["phi_eval_version"] or "n/a"
        rows.append(row)
    return pd.DataFrame(rows).fillna("n/a")


def _numeric_columns(df: Any) -> list[str]:
    return [c for c in df.columns if c not in ("run", "model", "task", "date", "phi-eval")]


def leaderboard_markdown(run_dirs: Sequence[Path]) -> str:
    records = leaderboard_records(run_dirs)
    df = leaderboard_frame(records)
    note = ""
    if any(r["pass_at_k_base"] for r in records):
        note = ("\nEvalPlus tasks (humaneval-plus, mbpp-plus): pass@k is on base + extra tests (\"humaneval+\", "
                "\"mbpp+\"), pass@k (base tests) on the base tests alone (\"humaneval\", \"mbpp\"); other tasks have "
                "no base column (n/a).\n")
    return "# Leaderboard\n\n" + dataframe_markdown(df, right=_numeric_columns(df)) + "\n" + note


def leaderboard_rich(df: Any) -> Any:
    """A rich Table of the same frame, for the terminal."""
    from rich.table import Table

    table = Table(title="phi-eval leaderboard", show_lines=False)
    numeric = set(_numeric_columns(df))
    for col in df.columns:
        table.add_column(str(col), justify="right" if col in numeric else "left", overflow="fold")
    for row in df.itertuples(index=False, name=None):
        table.add_row(*(str(v) for v in row))
    return table
