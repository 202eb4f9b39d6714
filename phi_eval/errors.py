"""One exception type for every problem a user can fix.

The CLI turns a PhiEvalError into a single line on stderr and a non-zero exit, so every message
should say what is wrong *and* what to do about it.
"""

from __future__ import annotations


class PhiEvalError(Exception):
    """A user-facing error: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PolicyFailed(PhiEvalError):
    """A CI policy (--fail-on, --min-allowed-imports-rate, ...) was violated after the run was written."""
