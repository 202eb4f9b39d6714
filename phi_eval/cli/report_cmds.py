"""`report` (a leaderboard across runs) and `compare` (the CI gate): thin wrappers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from phi_eval.cli.app import app, friendly

Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


@app.command()
@friendly
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders searched for runs.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the Markdown leaderboard here.")] = None,
    as_json: Json = False,
) -> None:
    """A Markdown leaderboard across runs, one row per run, sorted by pass@1."""
    from rich.console import Console
    from rich.table import Table

    from phi_eval.leaderboard import leaderboard_frame, leaderboard_markdown, leaderboard_rows
    from phi_eval.runfolder import write_text

    rows = leaderboard_rows(runs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, leaderboard_markdown(rows))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    frame = leaderboard_frame(rows)
    table = Table(title=f"phi-eval leaderboard ({len(rows)} runs)")
    for column in frame.columns:
        table.add_column(str(column), justify="right" if column in ("#", "n") or str(column).startswith("pass@") else "left")
    for record in frame.itertuples(index=False, name=None):
        table.add_row(*(str(v) for v in record))
    Console().print(table)
    if out is not None:
        Console(stderr=True).print(f"leaderboard written to {out}")


@app.command()
@friendly
def compare(
    baseline: Annotated[Path, typer.Argument(help="The reference run folder.")],
    candidate: Annotated[Path, typer.Argument(help="The run folder to gate.")],
    max_drop: Annotated[float, typer.Option(help="Largest allowed drop, in the metric's 0..1 units (0.02 = 2 points).")] = 0.0,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="pass@1, pass@10, allowed_imports_rate, security_flag_rate (default: all in both runs).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Paired bootstrap resamples over shared tasks (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    require_significant: Annotated[bool, typer.Option(help="Fail only when a drop is also beyond bootstrap noise.")] = False,
    as_json: Json = False,
) -> None:
    """Exit 0 when the candidate holds, 1 when a metric dropped by more than --max-drop, 2 on usage errors."""
    from rich.console import Console
    from rich.table import Table

    from phi_eval.compare import compare_runs, gate_exit_code, to_json

    diffs = compare_runs(baseline, candidate, metrics=metric or (), max_drop=max_drop, resamples=bootstrap, seed=seed)
    code = gate_exit_code(diffs, require_significant=require_significant)
    if as_json:
        print(json.dumps(to_json(diffs, code, baseline, candidate, max_drop), indent=2))
    else:
        table = Table(title=f"compare: {baseline} -> {candidate} (max drop {max_drop:g})")
        for col in ("metric", "baseline", "candidate", "delta", "95% CI of delta", "noise", "verdict"):
            table.add_column(col, justify="right" if col in ("baseline", "candidate", "delta") else "left")
        for d in diffs:
            ci = f"[{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]" if d.ci_low is not None else "n/a"
            noise = {None: "n/a", True: "beyond noise", False: "within noise"}[d.beyond_noise]
            verdict = "[red]DROP[/]" if d.failed else "[green]holds[/]"
            table.add_row(d.metric, f"{100 * d.baseline:.1f}%", f"{100 * d.candidate:.1f}%",
                          f"{100 * d.delta:+.1f}", ci, noise, verdict)
        Console().print(table)
        Console(stderr=True).print("candidate holds" if code == 0 else "regression: candidate dropped beyond --max-drop")
    if code:
        raise typer.Exit(code)
