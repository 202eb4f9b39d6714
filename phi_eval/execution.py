"""Execute samples and write their results: the sandbox's verdicts joined with the sidecar's checks.

A sample is one job, or for an EvalPlus task two (its base inputs, then its extra inputs, each in a
candidate process of its own, as EvalPlus runs them): the extra inputs run in a second wave, only
for samples that passed the base ones (a failed base part already decides `passed`).

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

from phi_eval.files import JsonlAppender
from phi_eval.jobs import ExecJob, ExecResult, build_job
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


class JobPlan:
    """How samples become jobs: one per sample, or two for an EvalPlus task (`expected`: its
    expected outputs per task, computed on the trusted side and cached per data file)."""

    def __init__(self, task: Task, by_id: Mapping[str, Problem], *, timeout_s: float | None = None,
                 expected: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.task, self.by_id, self.timeout_s = task, by_id, timeout_s
        self.expected = expected or {}
        self._sources: dict = {}  # one test text per EvalPlus task and part, shared by its samples

    def jobs(self, sample: Sample) -> list[ExecJob]:
        problem = self.by_id[sample.task_id]
        if problem.plus is None:
            return [build_job(self.task, problem, sample.completion, sample.completion_id,
                              is_program=sample.is_program or None, timeout_s=self.timeout_s)]
        from phi_eval.plus.checker import plus_jobs

        plus = problem.plus
        return plus_jobs(
            task_id=problem.task_id, completion_id=sample.completion_id,
            candidate=sample.completion if sample.is_program else problem.prompt + sample.completion,
            entry_point=problem.entry_point or "", dataset=plus.dataset, base_input=plus.base_input,
            plus_input=plus.plus_input, atol=plus.atol, expected=self.expected[problem.task_id],
            memory_mb=self.task.memory_mb, cap_s=self.timeout_s, sources=self._sources,
        )

    def prepare(self, samples: Iterable[Sample]) -> None:
        """Build what the samples' jobs share ahead (an EvalPlus task's test texts, from its inputs
        and expected outputs), e.g. while the sandbox starts, rather than after it is ready."""
        if self.expected:
            for sample in {s.task_id: s for s in samples}.values():
                self.jobs(sample)

    def order(self, wave: list[ExecJob], part_of: Mapping[str, tuple[Sample, int]]) -> list[ExecJob]:
        """EvalPlus waves run longest first (by the canonical solution's time on the job's inputs),
        so no long job starts last while the other workers idle; other tasks keep their order."""
        if not self.expected:
            return wave

        def cost(job: ExecJob) -> float:
            sample, index = part_of[job.id]
            return -sum(self.expected.get(sample.task_id, {}).get(("base_time", "plus_time")[index], ()))

        return sorted(wave, key=cost)


def verdict_fields(parts: Sequence[ExecResult], count: int) -> dict[str, Any]:
    """A sample's verdict from its jobs' results: for EvalPlus, `passed` = base and extra inputs
    ("plus"), `passed_base` = base inputs alone; outcome and detail are the first failing part's.
    A part after a failed one is never run (its verdict could not change `passed`)."""
    decider = next((r for r in parts if not r.passed), parts[-1])
    fields: dict[str, Any] = {"passed": len(parts) == count and all(r.passed for r in parts)}
    if count == 2:
        fields["passed_base"] = parts[0].passed
    return fields | {
        "outcome": decider.outcome,
        "duration_s": round(sum(r.duration_s for r in parts), 4),
        "detail": decider.detail[:300],
    }


class ResultWriter:
    """Turns verdicts into results.jsonl records, in arrival order, once their checks are ready."""

    def __init__(self, out: JsonlAppender, sidecar: Sidecar, by_id: Mapping[str, Problem],
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.out = out
        self.sidecar = sidecar
        self.by_id = by_id
        self.on_record = on_record
        self._waiting: deque[tuple[Sample, dict[str, Any], Key]] = deque()

    def add(self, sample: Sample, verdict: dict[str, Any]) -> None:
        """`verdict`: verdict_fields() of the sample's results."""
        self._waiting.append((sample, verdict, check_key(self.by_id[sample.task_id], sample)))
        self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Write the waiting results whose checks are done, oldest first (all of them with wait=True).

        The sidecar checks in execution order, so stopping at the first not ready keeps this cheap."""
        batch = []
        while self._waiting and (wait or self.sidecar.ready(self._waiting[0][2])):
            batch.append(self._waiting.popleft())
        if not batch:
            return
        records = [self._record(sample, verdict, key) for sample, verdict, key in batch]
        self.out.write(records)
        if self.on_record is not None:
            for record in records:
                self.on_record(record)

    def _record(self, sample: Sample, verdict: dict[str, Any], key: Key) -> dict[str, Any]:
        return {
            "task_id": sample.task_id,
            "completion_id": sample.completion_id,
            "completion": sample.completion,
            **verdict,
            **self.sidecar.take(key),
        }


def execute(executor: Any, plan: JobPlan, samples: Sequence[Sample], writer: ResultWriter) -> None:
    """Run `samples` through `executor` a chunk at a time and hand every verdict to `writer`."""
    for chunk in chunks(samples):
        _execute_chunk(executor, plan, chunk, writer)
    writer.flush()


def _execute_chunk(executor: Any, plan: JobPlan, chunk: Sequence[Sample], writer: ResultWriter) -> None:
    """One chunk's jobs in waves: first every sample's first job, then the next part of those that passed."""
    jobs_of = {(s.task_id, s.completion_id): plan.jobs(s) for s in chunk}
    part_of = {job.id: (s, i) for s in chunk for i, job in enumerate(jobs_of[(s.task_id, s.completion_id)])}
    got: dict[tuple[str, int], list[ExecResult]] = {}
    next_wave: list[ExecJob] = []

    def on_result(result: ExecResult) -> None:
        sample, index = part_of[result.id]
        key = (sample.task_id, sample.completion_id)
        parts = got.setdefault(key, [])
        parts.append(result)
        count = len(jobs_of[key])
        if result.passed and index + 1 < count:
            next_wave.append(jobs_of[key][index + 1])
            return
        writer.add(sample, verdict_fields(parts, count))

    wave = [jobs[0] for jobs in jobs_of.values()]
    while wave:
        executor.run(plan.order(wave, part_of), on_result)
        wave, next_wave[:] = list(next_wave), []
