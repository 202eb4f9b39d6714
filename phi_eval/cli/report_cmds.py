"""`report` (a leaderboard across runs) and `compare` (the CI gate): thin wrappers over the modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from phi_eval.cli.app import app, friendly
from phi_eval.errors import PhiEvalError

Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


def _console(stderr: bool = False) -> Any:
    """A rich console; wide when piped (CI logs), so a many-column table is not folded to 80 characters."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=260)


@app.command()
@friendly
def report(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders, or folders searched (recursively) for runs.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the Markdown leaderboard here.")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write one self-contained HTML page (leaderboard, every sample, run vs run)."
        ),
    ] = None,
    run_reports: Annotated[
        bool,
        typer.Option("--run-reports", help="Also (re)write each run's report.md, report.html and pass_at_k.png."),
    ] = False,
    as_json: Json = False,
) -> None:
    """A leaderboard across runs, grouped by task, best pass@1 first; unreadable runs are skipped with a warning."""
    from phi_eval.leaderboard import (
        find_runs,
        leaderboard_frame,
        leaderboard_markdown,
        leaderboard_records,
        leaderboard_rich,
    )

    run_dirs = find_runs(runs)
    records = leaderboard_records(run_dirs)  # warns about and skips unreadable runs
    readable = [Path(r["path"]) for r in records]
    if run_reports:
        from phi_eval.report import write_run_report

        for run_dir in readable:
            write_run_report(run_dir)
    if out is not None:
        _write(out, "--out", lambda: leaderboard_markdown(readable, warn=None))
    if html is not None:
        from phi_eval.html_report import render_html
        from phi_eval.runfolder import read_run

        _write(html, "--html", lambda: render_html([read_run(d) for d in readable], title="phi-eval leaderboard"))
    if as_json:
        print(json.dumps(records, indent=2))
        return
    _console().print(leaderboard_rich(leaderboard_frame(records)))
    for path, what in ((out, "leaderboard"), (html, "HTML report")):
        if path is not None:
            print(f"{what} written to {path}", file=sys.stderr)


def _write(path: Path, flag: str, text: Any) -> None:
    from phi_eval.files import write_text

    body = text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, body)
    except OSError as exc:
        raise PhiEvalError(f"cannot write {path}: {exc.strerror or exc}; choose another {flag}") from None


@app.command()
@friendly
def compare(
    baseline: Annotated[Path, typer.Argument(help="The reference run folder.")],
    candidate: Annotated[Path, typer.Argument(help="The run folder to gate.")],
    max_drop: Annotated[
        float,
        typer.Option(
            help="Largest allowed drop, absolute in the metric's 0..1 units (0.02 = 2 points); default 0: any drop fails."
        ),
    ] = 0.0,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="Repeatable: pass@1, pass@10, allowed_imports_rate, security_flag_rate, <outcome>_rate "
            "(default: every pass@k in both runs plus the import and security rates).",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Paired bootstrap resamples over shared tasks (0: off).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (the same seed gives the same intervals).")] = 0,
    require_significant: Annotated[
        bool, typer.Option(help="Fail only when a drop over --max-drop is also beyond bootstrap noise.")
    ] = False,
    allow_subset: Annotated[
        bool,
        typer.Option(
            "--allow-subset",
            help="Runs that scored different task sets: compare on the shared tasks only (default: exit 2).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Gate a candidate run on a baseline: exit 0 when it holds, 1 on a drop over --max-drop, 2 on usage errors."""
    from phi_eval.compare import compare_runs
    from phi_eval.compare_table import comparison_table, verdict_line

    try:
        cmp = compare_runs(
            baseline, candidate, metric, max_drop, bootstrap, seed, require_significant, allow_subset
        )
    except PhiEvalError as exc:
        # Exit 2 for every problem before the verdict, so CI never mistakes a broken setup for a regression.
        raise PhiEvalError(str(exc), exit_code=2) from None
    if as_json:
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        _console().print(comparison_table(cmp))
        print(verdict_line(cmp), file=sys.stderr)
    if not cmp.holds:
        raise typer.Exit(1)
