"""Start the sandbox in the background while the command reads and checks its input.

Connecting to the engine, checking the image and starting the warm pool take ~0.5-1 s, all of it
waiting on the engine; reading the samples, building the jobs and writing config.json need none of
it. `WarmStart` does the first in a thread: `connected()` surfaces an engine error before anything is
written (as the old preflight did), `get()` hands over the started executor.
"""

from __future__ import annotations

import threading

from phi_eval.sandbox import Executor, get_executor


class WarmStart:
    """get_executor(...) and its pool start (for jobs of `memory_mb`), on a thread of their own."""

    def __init__(self, kind: str, *, workers: int | None, docker_hosts: list[str], memory_mb: int) -> None:
        self._executor: Executor | None = None
        self._error: BaseException | None = None
        self._built = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._start, args=(kind, workers, docker_hosts, memory_mb), daemon=True, name="phi-eval-warm"
        )
        self._thread.start()

    def _start(self, kind: str, workers: int | None, hosts: list[str], memory_mb: int) -> None:
        try:
            executor = get_executor(kind, workers=workers, docker_hosts=hosts)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            self._error = exc
            self._built.set()
            return
        with self._lock:
            self._executor = executor
            closed = self._closed
        self._built.set()
        if closed:
            executor.close()
            return
        warm = getattr(executor, "warm", None)
        if warm is not None:
            try:
                warm(memory_mb)
            except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
                self._error = exc

    def connected(self) -> None:
        """Wait until the executor exists (engine reachable, image ready); raise its error if not."""
        self._built.wait()
        if self._error is not None and self._executor is None:
            raise self._error

    def get(self) -> Executor:
        """The executor with its pool started; the caller owns it from here (and closes it)."""
        self._thread.join()
        if self._error is not None:
            if self._executor is not None:
                self._executor.close()
            raise self._error
        assert self._executor is not None
        return self._executor

    def close(self) -> None:
        """Give up on it (an error before the run began): remove whatever was started."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if executor is not None:
            self._thread.join()
            executor.close()
