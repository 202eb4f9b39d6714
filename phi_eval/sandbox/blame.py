"""Who failed, the candidate or the machine: the retry and blame policy of every executor, in one place.

A sample's execution can fail for a reason outside the candidate: its container died or was
killed (`docker kill`, a removal by someone else, the engine restarting), the runner or its helper
processes died or answered nonsense, the runner itself reported `sandbox_error`. None of that is
the model's failure, so the job runs again on a fresh container (or runner), up to
INFRA_ATTEMPTS times in all; if it still cannot be executed its outcome is `sandbox_error`, which
is never scored (see phi_eval.metrics.executed) and makes the command exit non-zero.

Two faults are probably the candidate's own: the host deadline passed with no answer (the runner
enforces the timeout, so a hang past timeout + grace is rare, and costs a whole timeout per try)
and the container's memory limit was hit. They run again once on a fresh container, to rule out
the machine, and are then the candidate's `timeout` / `oom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from phi_eval.jobs import NOT_EXECUTED, ExecJob, ExecResult

INFRA_ATTEMPTS = 4  # tries in all for a job whose container or runner failed under it
CANDIDATE_ATTEMPTS = 2  # tries in all for a hang past the host deadline or a container OOM kill

FaultKind = Literal["died", "hung", "oom", "runner"]


@dataclass(frozen=True)
class Fault:
    """What went wrong under one job: `died` (container or runner gone, stream broken, nonsense
    answer), `runner` (the runner answered sandbox_error: its own machinery failed), `hung`
    (no answer by the host deadline), `oom` (the container was OOM-killed)."""

    kind: FaultKind
    detail: str


def verdict_after(job: ExecJob, attempts: int, fault: Fault, grace_s: float) -> ExecResult | None:
    """After `attempts` tries of `job` ended in `fault`: None to run it again on a fresh container,
    else its final result."""
    limit = CANDIDATE_ATTEMPTS if fault.kind in ("hung", "oom") else INFRA_ATTEMPTS
    if attempts < limit:
        return None
    if fault.kind == "oom":
        return ExecResult(job.id, "oom", 0.0, "the container ran out of memory and was killed")
    if fault.kind == "hung":
        took = job.timeout_s + grace_s
        return ExecResult(job.id, "timeout", took, f"{fault.detail} (timeout {job.timeout_s} s + {grace_s} s grace)"[:300])
    return ExecResult(job.id, NOT_EXECUTED, 0.0, f"not executed after {attempts} tries: {fault.detail}"[:300])


def is_infrastructure(result: ExecResult) -> bool:
    """A runner's reply that says its own machinery failed: retried like a dead container."""
    return result.outcome == NOT_EXECUTED
