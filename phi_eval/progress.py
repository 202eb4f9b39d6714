"""One look for every long-running stage (generation, execution, training): a rich progress bar
on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

from typing import Any


def progress_bar(*extra: Any) -> Any:
    """A rich Progress: description, bar, done/total, any `extra` columns, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
