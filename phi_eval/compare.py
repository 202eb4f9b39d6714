"""Baseline run vs candidate run: per-metric deltas, a paired bootstrap over shared tasks, a CI verdict.

The gate is deliberately simple so CI logs are easy to read: a metric fails when the candidate is
worse than the baseline by more than --max-drop (absolute, in the metric's own 0..1 units).  The
bootstrap says whether a change is beyond the noise of sampling *which tasks* were evaluated; it
only changes the exit code under --require-significant.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.present import OUTCOME_ORDER, ordered_outcomes, sorted_ks
from phi_eval.runfolder import METRICS, RunData, read_run

DEFAULT_MAX_DROP = 0.0
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
_EPS = 1e-9  # float noise: 0.7 - 0.68 must not fail a --max-drop 0.02 gate


@dataclass(frozen=True)
class Bootstrap:
    """A paired bootstrap over the tasks both runs scored."""

    tasks: int
    delta: float  # candidate - baseline on the shared tasks only
    ci_low: float
    ci_high: float
    p_not_worse: float  # share of resamples where the candidate is at least as good
    noise: str  # "drop beyond noise", "gain beyond noise", "within noise"


@dataclass(frozen=True)
class MetricDiff:
    """One metric of the gate; flat so that `--json` consumers need no nesting."""

    metric: str
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    higher_is_better: bool
    drop: float  # how much worse the candidate is, in the bad direction (negative: it improved)
    failed: bool
    shared_tasks: int = 0
    shared_delta: float | None = None  # the delta over shared tasks, which the interval is about
    ci_low: float | None = None
    ci_high: float | None = None
    p_not_worse: float | None = None
    noise: str = "n/a"  # the bootstrap verdict, or why there is none
    beyond_noise: bool | None = None  # the change's interval excludes 0 (either way); None: no bootstrap


@dataclass(frozen=True)
class Comparison:
    baseline: str
    candidate: str
    max_drop: float
    require_significant: bool
    bootstrap: int
    seed: int
    diffs: list[MetricDiff] = field(default_factory=list)
    task: str | None = None
    baseline_tasks: int | None = None
    candidate_tasks: int | None = None
    compared_tasks: int | None = None  # the tasks every figure is over
    subset: bool = False  # the task sets differed: every figure was recomputed on the shared tasks

    @property
    def holds(self) -> bool:
        return not any(d.failed for d in self.diffs)

    def __iter__(self) -> Iterator[MetricDiff]:
        return iter(self.diffs)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "diffs"}
        return out | {"holds": self.holds, "metrics": [asdict(d) for d in self.diffs]}


# ---------------------------------------------------------------- metrics of one run


def _num_samples(m: Mapping[str, Any]) -> int | None:
    total = m.get("num_samples") or sum((m.get("outcomes") or {}).values())
    return int(total) if total else None


def available_metrics(m: Mapping[str, Any]) -> dict[str, tuple[float, bool]]:
    """metric name -> (value, higher_is_better) for every metric this metrics.json supports."""
    out: dict[str, tuple[float, bool]] = {}
    for k in sorted_ks(m["pass_at_k"]):
        out[f"pass@{k}"] = (float(m["pass_at_k"][k]), True)
    base = m.get("pass_at_k_base") or {}  # EvalPlus tasks: pass@k on the base tests alone
    for k in sorted_ks(base):
        out[f"base_pass@{k}"] = (float(base[k]), True)
    for key, better in (
        ("allowed_imports_rate", True),
        ("security_flag_rate", False),
        ("hallucinated_api_rate", False),
    ):
        if isinstance(m.get(key), int | float):
            out[key] = (float(m[key]), better)
    total = _num_samples(m)
    if isinstance(m.get("outcomes"), dict) and total:
        for o in ordered_outcomes(set(OUTCOME_ORDER) | set(m["outcomes"])):
            out[f"{o}_rate"] = (m["outcomes"].get(o, 0) / total, o == "passed")
    return out


def default_metrics(base: Mapping[str, Any], cand: Mapping[str, Any]) -> list[str]:
    """pass@k both runs report, plus the import and security rates where both have them."""
    both = available_metrics(base).keys() & available_metrics(cand).keys()
    ks = [f"pass@{k}" for k in sorted_ks(base["pass_at_k"]) if f"pass@{k}" in both]
    ks += [f"base_pass@{k}" for k in sorted_ks(base.get("pass_at_k_base") or {}) if f"base_pass@{k}" in both]
    return ks + [m for m in ("allowed_imports_rate", "security_flag_rate") if m in both]


# ---------------------------------------------------------------- per-task figures for the bootstrap


def _per_task(run: RunData, metric: str, tasks: Sequence[str]) -> tuple[list[float], list[float]] | str:
    """(numerators, denominators) per task so that sum(num)/sum(den) is the metric; or why not."""
    from phi_eval.metrics import executed, pass_at_k

    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for r in executed(run.results):
        by_task.setdefault(r["task_id"], []).append(r)
    nums: list[float] = []
    dens: list[float] = []
    if metric.startswith(("pass@", "base_pass@")):
        field = "passed_base" if metric.startswith("base_") else "passed"
        k = int(metric.split("@")[1])
        for t in tasks:
            recs = by_task[t]
            if len(recs) < k:
                return f"{t} has {len(recs)} samples in {run.path.name}, fewer than k={k}"
            nums.append(pass_at_k(len(recs), sum(bool(r.get(field, r["passed"])) for r in recs), k))
            dens.append(1.0)
        return nums, dens
    if metric == "allowed_imports_rate":
        hit = lambda r: r.get("allowed_imports_only")  # noqa: E731
    elif metric == "security_flag_rate":
        hit = lambda r: bool(r["security"]) if "security" in r else None  # noqa: E731
    elif metric == "hallucinated_api_rate":
        hit = lambda r: bool(r["hallucinated_apis"]) if "hallucinated_apis" in r else None  # noqa: E731
    else:
        outcome = metric.removesuffix("_rate")
        hit = lambda r: r.get("outcome") == outcome if "outcome" in r else None  # noqa: E731
    for t in tasks:
        values = [hit(r) for r in by_task[t]]
        if any(v is None for v in values):
            return f"results.jsonl of {run.path.name} does not record what {metric} needs"
        nums.append(float(sum(bool(v) for v in values)))
        dens.append(float(len(values)))
    return nums, dens


def paired_bootstrap(
    base: tuple[Sequence[float], Sequence[float]],
    cand: tuple[Sequence[float], Sequence[float]],
    higher_is_better: bool,
    resamples: int,
    seed: int,
) -> Bootstrap:
    """Resample shared tasks with replacement (the same tasks for both runs) and recompute the delta."""
    import numpy as np

    nb, db = (np.asarray(a, dtype=float) for a in base)
    nc, dc = (np.asarray(a, dtype=float) for a in cand)
    n_tasks = len(nb)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_tasks, size=(resamples, n_tasks))
    deltas = nc[idx].sum(axis=1) / dc[idx].sum(axis=1) - nb[idx].sum(axis=1) / db[idx].sum(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    lo, hi = (float(x) for x in np.quantile(deltas, [alpha, 1 - alpha]))
    sign = 1.0 if higher_is_better else -1.0
    not_worse = float(np.mean(sign * deltas >= -_EPS))
    worse_lo, worse_hi = sorted((sign * lo, sign * hi))
    if worse_hi < -_EPS:
        verdict = "drop beyond noise"
    elif worse_lo > _EPS:
        verdict = "gain beyond noise"
    else:
        verdict = "within noise"
    point = float(nc.sum() / dc.sum() - nb.sum() / db.sum())
    return Bootstrap(n_tasks, point, lo, hi, not_worse, verdict)


# ---------------------------------------------------------------- the comparison


def _usage(message: str) -> PhiEvalError:
    return PhiEvalError(message, exit_code=2)


def _load(path: Path, role: str) -> RunData:
    """Any problem reading a run is exit 2, so CI can tell a broken setup from a regression (exit 1)."""
    path = Path(path)
    if not path.is_dir():
        raise _usage(f"{role} run folder {path} does not exist; pass a folder that holds {METRICS}")
    if not (path / METRICS).is_file():
        raise _usage(f"{role} folder {path} holds no {METRICS}; is it a finished phi-eval run?")
    try:
        return read_run(path)
    except PhiEvalError as exc:
        raise _usage(str(exc)) from None


def _task_sets(base: RunData, cand: RunData) -> tuple[set[str] | None, set[str] | None]:
    """The task ids each run scored (None where a run has no results.jsonl to tell)."""
    ids = lambda run: {r["task_id"] for r in run.results} if run.results else None  # noqa: E731
    return ids(base), ids(cand)


def _check_same_tasks(base: RunData, cand: RunData, allow_subset: bool) -> list[str] | None:
    """None when both runs scored the same tasks; the shared ids when they differ and --allow-subset
    says to compare on those; a usage error otherwise (a delta over different task sets means nothing)."""
    tb, tc = (run.metrics.get("task") or run.config.get("task") for run in (base, cand))
    if tb and tc and tb != tc:
        raise _usage(
            f"baseline {base.path.name} is a {tb} run and candidate {cand.path.name} a {tc} run; "
            "compare runs of the same task"
        )
    sb, sc = _task_sets(base, cand)
    if sb is None or sc is None:
        nb, nc = base.metrics.get("num_tasks"), cand.metrics.get("num_tasks")
        if nb is not None and nc is not None and nb != nc:
            raise _usage(
                f"baseline scored {nb} tasks and candidate {nc}, and without both runs' results.jsonl the "
                "shared tasks are unknown; compare runs of the same tasks"
            )
        return None
    if sb == sc:
        return None
    shared = sorted(sb & sc)
    what = (
        f"candidate {cand.path.name} scored {len(sc)} tasks and baseline {base.path.name} {len(sb)}, "
        f"{len(shared)} of them shared"
    )
    if not shared:
        raise _usage(f"{what}; there is nothing to compare")
    if not allow_subset:
        raise _usage(f"{what}; pass --allow-subset to compare on the {len(shared)} shared tasks only")
    return shared


def _on_tasks(run: RunData, name: str, tasks: Sequence[str]) -> float:
    """A metric recomputed over some tasks only, from results.jsonl (as metrics.json computes it)."""
    per_task = _per_task(run, name, tasks)
    if isinstance(per_task, str):
        raise _usage(f"cannot compute {name} on the shared tasks: {per_task}")
    nums, dens = per_task
    return sum(nums) / sum(dens) if sum(dens) else 0.0


def compare_runs(
    baseline: Path,
    candidate: Path,
    metrics: Sequence[str] | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    require_significant: bool = False,
    allow_subset: bool = False,
) -> Comparison:
    """Compare two run folders; raises PhiEvalError(exit_code=2) on any usage problem.

    Runs of different tasks, or of different task sets, are a usage error; with allow_subset the
    comparison is made on the shared tasks only, every figure (not just the bootstrap) recomputed
    there, so a delta and its interval are always over the same tasks."""
    if not isinstance(max_drop, int | float) or math.isnan(max_drop) or not 0.0 <= max_drop <= 1.0:
        raise _usage(f"--max-drop must lie in [0, 1] (an absolute drop: 0.02 = 2 points), got {max_drop}")
    if bootstrap < 0:
        raise _usage(f"--bootstrap must be 0 (off) or a number of resamples such as 1000, got {bootstrap}")
    base, cand = _load(baseline, "baseline"), _load(candidate, "candidate")
    avail_b, avail_c = available_metrics(base.metrics), available_metrics(cand.metrics)
    names = (
        list(dict.fromkeys(m.strip() for m in metrics))
        if metrics
        else default_metrics(base.metrics, cand.metrics)
    )
    both = [m for m in avail_b if m in avail_c]
    for name in names:
        if name not in both:
            raise _usage(f"unknown metric {name!r} (not in both runs); choose from: {', '.join(both)}")
    subset = _check_same_tasks(base, cand, allow_subset)
    shared = subset or sorted({r["task_id"] for r in base.results} & {r["task_id"] for r in cand.results})

    diffs = []
    for name in names:
        (vb, better), (vc, _) = avail_b[name], avail_c[name]
        if subset is not None:
            vb, vc = _on_tasks(base, name, subset), _on_tasks(cand, name, subset)
        delta = vc - vb
        drop = (-delta if better else delta) + 0.0  # + 0.0: no "-0.0" in JSON
        boot: Bootstrap | None = None
        note = ""
        if bootstrap == 0:
            note = "bootstrap off"
        elif not shared:
            note = "no shared tasks in results.jsonl"
        else:
            pb, pc = _per_task(base, name, shared), _per_task(cand, name, shared)
            if isinstance(pb, str) or isinstance(pc, str):
                note = pb if isinstance(pb, str) else str(pc)
            else:
                boot = paired_bootstrap(pb, pc, better, bootstrap, seed)
        over = drop > max_drop + _EPS
        # Without a bootstrap, significance cannot be shown: fail closed on the threshold alone.
        significant = boot is None or boot.noise == "drop beyond noise"
        failed = over and (significant if require_significant else True)
        extra: dict[str, Any] = {"noise": note}
        if boot is not None:
            extra = {
                "shared_tasks": boot.tasks,
                "shared_delta": boot.delta,
                "ci_low": boot.ci_low,
                "ci_high": boot.ci_high,
                "p_not_worse": boot.p_not_worse,
                "noise": boot.noise,
                "beyond_noise": boot.noise != "within noise",
            }
        diffs.append(MetricDiff(name, vb, vc, delta, better, drop, failed, **extra))
    sb, sc = _task_sets(base, cand)
    count = lambda ids, run: len(ids) if ids is not None else run.metrics.get("num_tasks")  # noqa: E731
    return Comparison(
        str(baseline), str(candidate), float(max_drop), require_significant, bootstrap, seed, diffs,
        task=base.metrics.get("task") or base.config.get("task"),
        baseline_tasks=count(sb, base),
        candidate_tasks=count(sc, cand),
        compared_tasks=len(subset) if subset is not None else count(sb, base),
        subset=subset is not None,
    )
