"""The CI gate: did the candidate run hold up against the baseline?

A metric "drops" when it moves the bad way (down for pass@k and the allowed-import rate, up for the
security flag rate) by more than --max-drop, in the metric's own 0..1 units.  Where both runs share
tasks, a paired bootstrap over those tasks says whether the change is beyond noise.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.metrics import pass_at_k
from phi_eval.report import RunData, read_run, sorted_ks

RATES = ("allowed_imports_rate", "security_flag_rate")
HIGHER_IS_WORSE = {"security_flag_rate"}


@dataclass(frozen=True)
class MetricDiff:
    metric: str
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    drop: float  # how far it moved the bad way (negative: it improved)
    failed: bool  # drop > max_drop
    shared_tasks: int
    ci_low: float | None = None  # 95% bootstrap interval of the per-task delta
    ci_high: float | None = None
    p_not_worse: float | None = None  # share of resamples where the candidate is not worse
    beyond_noise: bool | None = None  # the whole interval lies on the bad side


def _usage(message: str) -> PhiEvalError:
    return PhiEvalError(message, exit_code=2)


def _load(path: Path) -> RunData:
    try:
        return read_run(Path(path))
    except PhiEvalError as exc:
        raise _usage(str(exc)) from None


def _run_value(run: RunData, metric: str) -> float | None:
    if metric.startswith("pass@"):
        value = run.metrics["pass_at_k"].get(metric[5:])
    else:
        value = run.metrics.get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _per_task(run: RunData, metric: str) -> dict[str, float]:
    """The metric task by task (what the bootstrap resamples); empty when results.jsonl lacks it."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in run.results:
        groups[r["task_id"]].append(r)
    if metric.startswith("pass@"):
        k = int(metric[5:])
        return {t: pass_at_k(len(rs), sum(bool(r["passed"]) for r in rs), k) for t, rs in groups.items() if len(rs) >= k}
    value: Callable[[dict], float | None] = {
        "allowed_imports_rate": lambda r: r.get("allowed_imports_only"),
        "security_flag_rate": lambda r: bool(r["security"]) if isinstance(r.get("security"), list) else None,
    }[metric]
    out = {}
    for t, rs in groups.items():
        vals = [float(v) for v in map(value, rs) if v is not None]
        if vals:
            out[t] = sum(vals) / len(vals)
    return out


def _bootstrap(base: dict[str, float], cand: dict[str, float], resamples: int, seed: int,
               worse_sign: int) -> tuple[int, float | None, float | None, float | None]:
    shared = sorted(set(base) & set(cand))
    if len(shared) < 2 or resamples < 1:
        return len(shared), None, None, None
    deltas = [cand[t] - base[t] for t in shared]
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    low, high = means[int(0.025 * (resamples - 1))], means[int(0.975 * (resamples - 1))]
    not_worse = sum(1 for m in means if worse_sign * m <= 0) / resamples
    return n, low, high, not_worse


def available_metrics(base: RunData, cand: RunData) -> list[str]:
    ks = [k for k in sorted_ks(base.metrics["pass_at_k"]) if k in cand.metrics["pass_at_k"]]
    return [f"pass@{k}" for k in ks] + [m for m in RATES if m in base.metrics and m in cand.metrics
                                         and base.metrics[m] is not None and cand.metrics[m] is not None]


def compare_runs(baseline: Path, candidate: Path, *, metrics: Sequence[str] = (), max_drop: float = 0.0,
                 resamples: int = 1000, seed: int = 0) -> list[MetricDiff]:
    if not 0.0 <= max_drop <= 1.0:
        raise _usage(f"--max-drop is in the metric's 0..1 units, so it must lie in [0, 1]; got {max_drop}")
    base, cand = _load(baseline), _load(candidate)
    known = available_metrics(base, cand)
    chosen = list(metrics) or known
    for metric in chosen:
        if metric not in known:
            raise _usage(f"metric {metric!r} is not in both runs; choose from {', '.join(known) or 'none'}")
    diffs = []
    for metric in chosen:
        b, c = _run_value(base, metric), _run_value(cand, metric)
        assert b is not None and c is not None  # guaranteed by available_metrics
        sign = 1 if metric in HIGHER_IS_WORSE else -1  # the direction that is worse
        drop = sign * (c - b)
        shared, low, high, not_worse = _bootstrap(_per_task(base, metric), _per_task(cand, metric),
                                                  resamples, seed, sign)
        beyond = None
        if low is not None and high is not None:
            beyond = (high < 0) if sign < 0 else (low > 0)
        diffs.append(MetricDiff(metric, b, c, c - b, drop, drop > max_drop + 1e-12, shared, low, high,
                                not_worse, beyond))
    return diffs


def gate_exit_code(diffs: Sequence[MetricDiff], *, require_significant: bool = False) -> int:
    """1 when a metric dropped by more than --max-drop (and, if asked, beyond noise), else 0."""
    for d in diffs:
        if d.failed and (not require_significant or d.beyond_noise is not False):
            return 1
    return 0


def to_json(diffs: Sequence[MetricDiff], code: int, baseline: Path, candidate: Path, max_drop: float) -> dict[str, Any]:
    return {
        "baseline": str(baseline),
        "candidate": str(candidate),
        "max_drop": max_drop,
        "holds": code == 0,
        "exit_code": code,
        "metrics": [asdict(d) for d in diffs],
    }
