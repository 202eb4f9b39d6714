"""Execute samples and write their results: the sandbox's verdicts joined with the sidecar's checks.

Jobs are built a chunk at a time, so the host holds at most CHUNK jobs (each carries its prompt and
completion) however many samples there are; a result is written as soon as its verdict and its
check fields are both in, so results.jsonl grows while the run goes on and an interrupt loses at
most what was in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from phi_eval.jobs import ExecResult, build_job, job_id
from phi_eval.runfolder import JsonlAppender
from phi_eval.samples import Sample
from phi_eval.sidecar import Key, Sidecar
from phi_eval.tasks import Problem, Task

CHUNK = 4096  # jobs handed to the executor at once: memory stays flat, the pool never runs dry


def check_key(problem: Problem, sample: Sample) -> Key:
    """What the model-card checks look at: the completion alone (the prompt's own imports do not count)."""
    prompt = "" if (sample.is_program or problem.completion_is_program) else problem.prompt
    return prompt, sample.completion


def chunks(items: Iterable[Sample], size: int = CHUNK) -> Iterator[list[Sample]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class ResultWriter:
    """Turns verdicts into results.jsonl records, in arrival order, once their checks are ready."""

    def __init__(self, out: JsonlAppender, sidecar: Sidecar, by_id: Mapping[str, Problem],
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.out = out
        self.sidecar = sidecar
        self.by_id = by_id
        self.on_record = on_record
        self._waiting: deque[tuple[Sample, ExecResult, Key]] = deque()

    def add(self, sample: Sample, result: ExecResult) -> None:
        self._waiting.append((sample, result, check_key(self.by_id[sample.task_id], sample)))
        self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Write the waiting results whose checks are done, oldest first (all of them with wait=True).

        The sidecar checks in execution order, so stopping at the first not ready keeps this cheap."""
        batch = []
        while self._waiting and (wait or self.sidecar.ready(self._waiting[0][2])):
            batch.append(self._waiting.popleft())
        if not batch:
            return
        records = [self._record(sample, result, key) for sample, result, key in batch]
        self.out.write(records)
        if self.on_record is not None:
            for record in records:
                self.on_record(record)

    def _record(self, sample: Sample, result: ExecResult, key: Key) -> dict[str, Any]:
        return {
            "task_id": sample.task_id,
            "completion_id": sample.completion_id,
            "completion": sample.completion,
            "passed": result.passed,
            "outcome": result.outcome,
            "duration_s": round(result.duration_s, 4),
            "detail": result.detail[:300],
            **self.sidecar.take(key),
        }


def execute(executor: Any, task: Task, by_id: Mapping[str, Problem], samples: Sequence[Sample],
            writer: ResultWriter, *, timeout_s: float | None = None) -> None:
    """Run `samples` through `executor` a chunk at a time and hand every verdict to `writer`."""
    for chunk in chunks(samples):
        sample_of = {job_id(s.task_id, s.completion_id): s for s in chunk}
        jobs = [
            build_job(task, by_id[s.task_id], s.completion, s.completion_id, is_program=s.is_program or None,
                      timeout_s=timeout_s)
            for s in chunk
        ]
        executor.run(jobs, lambda result, of=sample_of: writer.add(of[result.id], result))
    writer.flush()
