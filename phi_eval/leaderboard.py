"""A Markdown leaderboard across runs: one row per run folder, sorted by pass@1.

Built as a pandas DataFrame, so the same table is written as Markdown, printed with rich, or
emitted as JSON for machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.report import (
    dataframe_markdown,
    ordered_outcomes,
    pct,
    read_metrics,
    sorted_ks,
)
from phi_eval.runfolder import CONFIG, METRICS, read_json


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Each path is a run folder, or a folder searched (recursively) for run folders."""
    runs: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise PhiEvalError(f"{path} does not exist; pass run folders or a folder that holds them")
        if (path / METRICS).is_file():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p.parent for p in path.rglob(METRICS))
        else:
            raise PhiEvalError(f"{path} is not a run folder (no {METRICS})")
    unique = list(dict.fromkeys(r.resolve() for r in runs))
    if not unique:
        raise PhiEvalError(f"no runs found in {', '.join(map(str, paths))} (a run folder holds {METRICS})")
    return unique


def run_row(run: Path) -> dict[str, Any]:
    """The machine-readable facts of one run (fractions in 0..1, None where a run lacks a figure)."""
    m = read_metrics(run)
    config = read_json(run / CONFIG) if (run / CONFIG).is_file() else {}
    created = str(m.get("created_at") or config.get("created_at") or "")
    return {
        "run": str(run),
        "model": m.get("model") or config.get("model") or "?",
        "task": m.get("task") or config.get("task") or "?",
        "n": m.get("n") or config.get("n"),
        "pass_at_k": {k: float(m["pass_at_k"][k]) for k in sorted_ks(m["pass_at_k"])},
        "allowed_imports_rate": m.get("allowed_imports_rate"),
        "security_flag_rate": m.get("security_flag_rate"),
        "outcomes": dict(m.get("outcomes") or {}),
        "date": created[:10] or None,
        "phi_eval_version": m.get("phi_eval_version") or config.get("phi_eval_version"),
    }


def leaderboard_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    rows = [run_row(r) for r in find_runs(paths)]
    rows.sort(key=lambda r: (-(r["pass_at_k"].get("1") if r["pass_at_k"].get("1") is not None else -1),
                             r["model"], r["task"], r["run"]))
    return rows


def leaderboard_frame(rows: list[dict[str, Any]]) -> Any:
    """The human table: percentages with one decimal, outcome counts in one compact cell."""
    import pandas as pd

    ks = sorted({k for r in rows for k in r["pass_at_k"]}, key=int)
    records = []
    for rank, r in enumerate(rows, 1):
        outcomes = r["outcomes"]
        record: dict[str, Any] = {"#": rank, "model": r["model"], "task": r["task"], "n": r["n"] or "n/a"}
        record.update({f"pass@{k}": pct(r["pass_at_k"].get(k)) for k in ks})
        record.update({
            "allowed imports": pct(r["allowed_imports_rate"]),
            "security flags": pct(r["security_flag_rate"]),
            "outcomes": " · ".join(f"{o} {outcomes[o]}" for o in ordered_outcomes(set(outcomes))) or "n/a",
            "date": r["date"] or "n/a",
            "phi-eval": r["phi_eval_version"] or "n/a",
        })
        records.append(record)
    return pd.DataFrame.from_records(records)


NUMERIC = ("#", "n", "allowed imports", "security flags")


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    frame = leaderboard_frame(rows)
    right = [c for c in frame.columns if c in NUMERIC or c.startswith("pass@")]
    return "# phi-eval leaderboard\n\n" + dataframe_markdown(frame, right) + "\n"
