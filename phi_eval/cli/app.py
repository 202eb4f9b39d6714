"""The Typer app and the one place where user-facing errors become a line and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from phi_eval.errors import PhiEvalError

app = typer.Typer(
    name="phi-eval",
    help="Evaluate Phi code models (and any causal LM) on HumanEval and MBPP in a Docker sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(help="Build and check the Docker sandbox image.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr; return the Exit to raise."""
    print(f"phi-eval: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn PhiEvalError (and Ctrl-C) into one line and a non-zero exit instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PhiEvalError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; files written so far are kept (use --resume to continue)", 130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from phi_eval import __version__

        print(f"phi-eval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Evaluate Phi code models (and any causal LM) on HumanEval and MBPP in a Docker sandbox."""
