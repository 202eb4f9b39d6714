"""`phi-eval`: thin Typer commands; each module registers its own commands on the shared app."""

from __future__ import annotations

from phi_eval.cli import report_cmds as _report_cmds  # noqa: E402,F401

# Importing the command modules registers their commands.
from phi_eval.cli import run_cmds as _run_cmds  # noqa: E402,F401
from phi_eval.cli import sandbox_cmds as _sandbox_cmds  # noqa: E402,F401
from phi_eval.cli import train_cmds as _train_cmds  # noqa: E402,F401
from phi_eval.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
