"""The Typer app and the one place where user-facing errors become a line and an exit code."""

from __future__ import annotations

import functools
import signal
import sys
import threading
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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that it unwinds exactly like Ctrl-C: every
    `finally` and executor close() runs (this run's containers are removed), written files are kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a second one must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def _on_termination_signals() -> dict[int, Any]:
    """Install the handlers; returns the previous ones (restored when the command returns)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _disk_error(exc: OSError) -> str | None:
    """One line for a write the machine refused (full disk, read-only, quota), else None."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" holding {exc.filename}" if exc.filename else ""
        return f"no space left on the device{where}; free some space and run the same command again with --resume"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return None


def friendly(fn: F) -> F:
    """Turn PhiEvalError, Ctrl-C, SIGTERM/SIGHUP and a full disk into one line and a non-zero exit
    instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = _on_termination_signals()
        try:
            return fn(*args, **kwargs)
        except PhiEvalError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except Terminated as exc:
            raise fail(
                f"stopped by {exc}; files written so far are kept (use --resume to continue)", 128 + exc.signum
            ) from None
        except KeyboardInterrupt:
            raise fail("interrupted; files written so far are kept (use --resume to continue)", 130) from None
        except OSError as exc:
            line = _disk_error(exc)
            if line is None:
                raise
            raise fail(line) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

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
