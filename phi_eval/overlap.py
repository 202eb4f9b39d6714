"""`run` executes while it generates: each finished generation batch goes straight to the sandbox.

Before, `run` generated every sample and then executed them all, so a run took generation + execution.
Here an execution thread takes whatever batches have arrived (all of them at once, so the pool is
never fed a batch at a time while more are waiting), runs them, and writes their results, while the
model (on the main thread) generates the next. A run takes about the longer of the two.

What stays as it was: samples.jsonl is written by the generation as before, results.jsonl gets each
result once (a sample already in results.jsonl is never queued), finish_run sorts it and writes
metrics.json and report.md; resume, ordering and data parallelism are the generation's own.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from phi_eval import files, runfolder
from phi_eval.execution import JobPlan, ResultWriter, check_key, execute
from phi_eval.jobs import NOT_EXECUTED
from phi_eval.samples import Sample
from phi_eval.sidecar import Sidecar

_END = None


class Overlap:
    """An execution thread fed with sample batches; `finish()` waits for it to drain."""

    def __init__(self, plan: JobPlan, run_dir: Path, executor: Any, sidecar: Sidecar, *,
                 allowed: tuple[str, ...]) -> None:
        self.plan, self.by_id, self.executor, self.sidecar = plan, plan.by_id, executor, sidecar
        self.allowed = allowed
        self.results_path = run_dir / runfolder.RESULTS
        # a sample left as sandbox_error (not executed) is not done: --resume runs it again
        self.done = {(r["task_id"], r["completion_id"]) for r in files.iter_jsonl(self.results_path)
                     if r.get("outcome") != NOT_EXECUTED}
        self.queued = 0
        self.written = 0
        self.passed = 0
        self.error: BaseException | None = None
        self._inbox: queue.SimpleQueue[list[Sample] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="phi-eval-overlap")
        self._thread.start()

    def submit(self, samples: list[Sample]) -> None:
        """Queue samples for execution (those with a result already are skipped); raises the
        execution thread's error, so a broken sandbox stops the generation too."""
        if self.error is not None:
            raise self.error
        fresh = [s for s in samples if (s.task_id, s.completion_id) not in self.done]
        self.done.update((s.task_id, s.completion_id) for s in fresh)
        if fresh:
            self.queued += len(fresh)
            self._inbox.put(fresh)

    def _count(self, record: dict[str, Any]) -> None:
        self.written += 1
        self.passed += bool(record["passed"])

    def _run(self) -> None:
        try:
            with files.JsonlAppender(self.results_path) as out:
                writer = ResultWriter(out, self.sidecar, self.by_id, self._count)
                ended, plotting = False, False
                while not ended:
                    batch = [self._inbox.get()]
                    while True:  # everything that has arrived, in one go
                        try:
                            batch.append(self._inbox.get_nowait())
                        except queue.Empty:
                            break
                    ended = _END in batch
                    samples = [s for b in batch if b is not _END for s in b]
                    if samples:
                        self.sidecar.submit_checks((check_key(self.by_id[s.task_id], s) for s in samples),
                                                   self.allowed)
                        if not plotting:  # after the first checks: the report is drawn last
                            self.sidecar.preload_report()
                            plotting = True
                        execute(self.executor, self.plan, samples, writer)
        except BaseException as exc:  # noqa: BLE001 - raised on the main thread
            self.error = exc

    def alive(self) -> bool:
        return self._thread.is_alive()

    def finish(self, progress: Any = None) -> None:
        """No more samples: wait until every queued one has its result (showing `progress`)."""
        self._inbox.put(_END)
        if progress is not None:
            bar = progress.add_task("executing", total=self.queued, status="")
            while self._thread.is_alive():
                self._thread.join(0.1)
                progress.update(bar, completed=self.written, status=f"{self.passed} passed")
            progress.update(bar, completed=self.written, status=f"{self.passed} passed")
        self._thread.join()
        if self.error is not None:
            raise self.error
