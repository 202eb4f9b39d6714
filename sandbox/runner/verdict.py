"""The runner's decisions on the wire: a job line checked, T's report parsed, the outcome of a
sample from the report and the processes' exit statuses, and the reply line."""

from __future__ import annotations

import json
import os
import signal
import time

from .common import OUTCOMES, _short
from .envs import ENVIRONMENTS


def check_job(job: object) -> None:
    """ValueError saying what is wrong with a parsed job line, if anything."""
    if not isinstance(job, dict):
        raise ValueError("a job must be a JSON object")
    for key, kind in (
        ("id", str),
        ("candidate", str),
        ("timeout_s", (int, float)),
        ("memory_mb", int),
    ):
        if not isinstance(job.get(key), kind):
            raise ValueError(f"field {key!r} missing or not {getattr(kind, '__name__', 'a number')}")
    if job["timeout_s"] <= 0 or job["memory_mb"] <= 0:
        raise ValueError("timeout_s and memory_mb must be positive")
    names = job.get("candidate_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError("field 'candidate_names' must be a list of names")
    env = job.get("env")
    if env is not None and (not isinstance(env, str) or env not in ENVIRONMENTS):
        raise ValueError(f"field 'env' must be one of {sorted(ENVIRONMENTS)} or null")


def reply(job_id: object, outcome: str, t0: float, detail: str) -> dict:
    return {
        "id": job_id if isinstance(job_id, str) else None,
        "outcome": outcome,
        "duration_s": round(time.monotonic() - t0, 4),
        "detail": _short(detail),
    }


def parse_report(report: bytes, seq: int) -> dict | None:
    """T's report for job `seq`, or None when there is none or it is malformed."""
    try:
        rep = json.loads(report) if report else None
    except (ValueError, RecursionError):
        return None
    if not (
        isinstance(rep, dict)
        and rep.get("seq") == seq
        and rep.get("outcome") in OUTCOMES + ("candidate_died",)
    ):
        return None
    if not isinstance(rep.get("rss_kb", 0), int):
        return None
    return rep


def describe_status(who: str, status: int | None) -> str:
    if status is None:
        return ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"{who} killed by {name}"
    return f"{who} exited with code {os.WEXITSTATUS(status)}"


def verdict(
    rep: dict | None,
    output: bytes,
    timed_out: bool,
    cstatus: int | None,
    tstatus: int | None,
    timeout_s: float,
) -> tuple[str, str]:
    if rep is not None:
        outcome, detail = rep["outcome"], str(rep.get("detail", ""))
        if outcome != "candidate_died":
            return outcome, detail
    elif timed_out:
        return "timeout", f"no verdict within {timeout_s:g}s"
    else:
        outcome, detail = (
            "killed",
            describe_status("test process", tstatus) or "test process gave no verdict",
        )
        if cstatus is None:
            return outcome, detail
    # The candidate died during the tests: say how, never pass.
    if cstatus is not None and os.WIFSIGNALED(cstatus):
        sig = os.WTERMSIG(cstatus)
        if sig == signal.SIGXCPU:
            return "timeout", "candidate exceeded its CPU time limit"
        if sig == signal.SIGXFSZ:
            return "runtime_error", "candidate exceeded the file size limit"
        return "killed", describe_status("candidate process", cstatus)
    if cstatus is not None and os.WIFEXITED(cstatus):
        code = os.WEXITSTATUS(cstatus)
        if code == 71:
            return "oom", "candidate process ran out of memory"
        tail = output.decode("utf-8", "replace").strip()[-150:]
        return "runtime_error", f"candidate process exited with code {code}" + (
            f"; output: {tail}" if tail else ""
        )
    return "killed", detail


