"""A comparison as people read it in a CI log: the diff table, which tasks it is over, the verdict.

phi_eval.compare computes the Comparison; this only renders it (rich for the terminal, the same
rows as plain strings for anything else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi_eval.compare import Comparison


def _pts(x: float) -> str:
    return f"{100 * x:+.1f} pts"


def comparison_rows(cmp: Comparison) -> list[list[str]]:
    """The diff table as strings: shared by the rich table and plain text."""
    rows = []
    for d in cmp.diffs:
        has_ci = d.ci_low is not None and d.ci_high is not None
        rows.append(
            [
                d.metric + ("" if d.higher_is_better else " (lower is better)"),
                f"{100 * d.baseline:.1f}%",
                f"{100 * d.candidate:.1f}%",
                _pts(d.delta),
                f"[{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]" if has_ci else "n/a",  # type: ignore[operator]
                f"{d.p_not_worse:.3f}" if d.p_not_worse is not None else "n/a",
                d.noise,
                "FAIL" if d.failed else "ok",
            ]
        )
    return rows


HEADERS = ["metric", "baseline", "candidate", "delta", "95% CI (pts)", "P(not worse)", "noise", "gate"]


def comparison_table(cmp: Comparison) -> Any:
    from rich.markup import escape
    from rich.table import Table

    title = f"{Path(cmp.baseline).name} -> {Path(cmp.candidate).name} (max drop {100 * cmp.max_drop:.1f} pts)"
    shared = max((d.shared_tasks for d in cmp.diffs), default=0)
    caption = (
        f"95% CI: paired bootstrap, {cmp.bootstrap} resamples over {shared} shared tasks (seed {cmp.seed})"
        if shared
        else "no bootstrap interval (no shared tasks, or --bootstrap 0)"
    )
    caption = f"{scope_line(cmp)}\n{caption}"
    table = Table(title=escape(title), caption=caption)
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="right" if 1 <= i <= 5 else "left", overflow="fold")
    for row in comparison_rows(cmp):
        style = "bold red" if row[-1] == "FAIL" else None
        table.add_row(*row, style=style)
    return table


def scope_line(cmp: Comparison) -> str:
    """Which tasks every figure of the table is over."""
    task = f"{cmp.task} " if cmp.task else ""
    if cmp.subset:
        return (
            f"SUBSET: every figure is over the {cmp.compared_tasks} {task}tasks both runs scored "
            f"(baseline {cmp.baseline_tasks}, candidate {cmp.candidate_tasks}), not over either run's metrics.json"
        )
    return f"both runs scored the same {cmp.compared_tasks if cmp.compared_tasks is not None else '?'} {task}tasks"


def verdict_line(cmp: Comparison) -> str:
    failed = [d for d in cmp.diffs if d.failed]
    scope = f" (on the {cmp.compared_tasks} shared tasks only)" if cmp.subset else ""
    if not failed:
        return f"candidate holds{scope}: no metric dropped by more than {cmp.max_drop:g}"
    parts = [
        f"{d.metric} {'dropped' if d.higher_is_better else 'rose'} by {100 * d.drop:.1f} pts" for d in failed
    ]
    tail = ", beyond bootstrap noise" if cmp.require_significant else ""
    return f"REGRESSION{scope}: {'; '.join(parts)} (max drop {cmp.max_drop:g}{tail})"
