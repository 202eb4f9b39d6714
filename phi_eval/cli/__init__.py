"""`phi-eval`: thin Typer commands; each module registers its own commands on the shared app."""

from __future__ import annotations

import os
import sys

from phi_eval.cli import report_cmds as _report_cmds  # noqa: E402,F401

# Importing the command modules registers their commands.
from phi_eval.cli import run_cmds as _run_cmds  # noqa: E402,F401
from phi_eval.cli import sandbox_cmds as _sandbox_cmds  # noqa: E402,F401
from phi_eval.cli import train_cmds as _train_cmds  # noqa: E402,F401
from phi_eval.cli.app import app


def main() -> None:
    """Run the app, then leave without the interpreter's teardown once torch is loaded.

    Tearing down torch and transformers' thousands of modules takes ~0.7 s on a 2-core machine
    and does nothing for the user: every file is written and closed by then. So after the
    command returns, stdout/stderr are flushed and atexit handlers run as usual, then the process
    exits. Not under torchrun/accelerate (their process groups tear down on their own) and not
    while a non-daemon thread is alive; then Python exits the ordinary way.
    """
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if "torch" not in sys.modules or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.exit(code)
    import atexit
    import threading

    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)  # someone's work is still running: let Python wait for it as usual
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


__all__ = ["app", "main"]
