"""A helper process that takes the host's CPU-only work off the evaluation's critical path.

Profiled on 1,640 HumanEval samples, the host process spent more time on its own work than on
waiting for the sandbox: the model-card checks (bandit and the AST rules, ~1.3 ms a sample, run one
by one as verdicts arrived, holding the GIL the sandbox's feeder threads need) and the report. The
sidecar is one forked process that imports the checks and the report's modules while the sandbox
executes, analyses every distinct (prompt, completion) once, ahead of execution, and finally
writes the report. It computes
nothing a verdict depends on: verdicts come only from the sandbox, and the check fields are the
same function's output as before (`phi_eval.checks.analyze`), only computed elsewhere.

Forked before any thread of the caller starts (the executor's pool is started after it), so the
child inherits no lock held by another thread.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

CHUNK = 32  # (prompt, completion) pairs per round trip: the pickling cost stays small

Key = tuple[str, str]  # (prompt the completion continues, completion)


def _analyze_chunk(keys: Sequence[Key], allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    from phi_eval.checks import analyze

    return [analyze(completion, prompt=prompt, allowed=allowed) for prompt, completion in keys]


def _preload_report() -> None:
    import PIL.Image  # noqa: F401 - imported for the report written later
    import PIL.ImageDraw  # noqa: F401

    import phi_eval.html_report  # noqa: F401
    import phi_eval.report  # noqa: F401


def _write_report(run_dir: str) -> None:
    from phi_eval.report import write_run_report

    write_run_report(Path(run_dir))


def _preload_checks() -> None:
    import phi_eval.checks

    phi_eval.checks.analyze("pass")  # bandit loads its plugins on first use


class Sidecar:
    """Checks and the report in one process beside the command; every result comes back as a Future.

    Constructing it forks the process at once (a first task is queued), so create it before
    starting any thread."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(_preload_checks)
        self._checks: dict[Key, tuple[Future, int]] = {}  # key -> (its chunk's future, place in it)
        self._uses: dict[Key, int] = {}  # samples still to take each key's fields
        self._allowed: tuple[str, ...] = ()

    def submit_checks(self, keys: Iterable[Key], allowed: Iterable[str]) -> None:
        """Queue the checks of every distinct pair, in the order given (the execution order)."""
        allowed_t = self._allowed = tuple(allowed)
        chunk: list[Key] = []
        for key in keys:
            self._uses[key] = self._uses.get(key, 0) + 1
            if self._uses[key] > 1 or key in self._checks:
                continue
            chunk.append(key)
            if len(chunk) == CHUNK:
                self._queue(chunk, allowed_t)
                chunk = []
        if chunk:
            self._queue(chunk, allowed_t)

    def _queue(self, chunk: list[Key], allowed: tuple[str, ...]) -> None:
        future = self._pool.submit(_analyze_chunk, chunk, allowed)
        for i, key in enumerate(chunk):
            self._checks[key] = (future, i)

    def preload_report(self) -> None:
        """Import the report's modules in the sidecar after the checks are queued (it comes last)."""
        self._pool.submit(_preload_report)

    def ready(self, key: Key) -> bool:
        return self._checks[key][0].done()

    def take(self, key: Key) -> dict[str, Any]:
        """The check fields of one sample's pair (waits until the sidecar has reached it); a pair
        is forgotten once every sample queued with it has taken it, so memory stays flat."""
        future, i = self._checks[key]
        try:
            fields = future.result()[i]
        except BrokenProcessPool:  # the sidecar died (killed, out of memory): check here instead
            fields = _analyze_chunk([key], self._allowed)[0]
        self._uses[key] -= 1
        if self._uses[key] <= 0:
            del self._uses[key], self._checks[key]
        return dict(fields)

    def write_report(self, run_dir: Path) -> Future:
        return self._pool.submit(_write_report, str(run_dir))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
