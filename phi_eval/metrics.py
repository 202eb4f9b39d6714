"""pass@k (the unbiased estimator of Chen et al. 2021) and outcome counts.

pass@k for one task with n samples of which c pass is 1 - C(n-c, k) / C(n, k): the chance that
at least one of k samples drawn without replacement passes.  A run's pass@k is the mean over tasks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from phi_eval.errors import PhiEvalError

DEFAULT_KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task, computed as a stable product instead of huge binomials."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n (n={n})")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def default_ks(n: int) -> list[int]:
    """The ks reported when none are asked for: 1, 10, 100 as far as n allows."""
    return [k for k in DEFAULT_KS if k <= n] or [1]


def executed(records: Iterable[Mapping]) -> list[Mapping]:
    """The records that carry a verdict: a sandbox_error (the machine failed, not the candidate) is
    not a sample of the model and never counts as a failure."""
    from phi_eval.jobs import NOT_EXECUTED

    return [r for r in records if r.get("outcome") != NOT_EXECUTED]


def counts_by_task(records: Iterable[Mapping]) -> dict[str, tuple[int, int]]:
    """task_id -> (n samples, c passed), over executed samples only."""
    n: dict[str, int] = defaultdict(int)
    c: dict[str, int] = defaultdict(int)
    for r in executed(records):
        n[r["task_id"]] += 1
        c[r["task_id"]] += bool(r["passed"])
    return {t: (n[t], c[t]) for t in n}


def check_ks(ks: Sequence[int], counts: Mapping[str, tuple[int, int]]) -> None:
    """k larger than a task's sample count is an error that names the task, never a silent number."""
    if not counts:
        raise PhiEvalError("no samples were scored, so pass@k is undefined")
    smallest_task, (smallest_n, _) = min(counts.items(), key=lambda item: item[1][0])
    for k in ks:
        if k < 1:
            raise PhiEvalError(f"--k values must be positive, got {k}")
        if k > smallest_n:
            raise PhiEvalError(
                f"pass@{k} needs at least {k} samples per task, but {smallest_task} has {smallest_n}; "
                f"draw more samples (--n {k}) or lower --k"
            )


def run_pass_at_k(records: Iterable[Mapping], ks: Sequence[int]) -> dict[str, float]:
    """Mean over tasks of the per-task estimator; tasks may have unequal sample counts."""
    counts = counts_by_task(records)
    check_ks(ks, counts)
    return {
        str(k): sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts) for k in sorted(set(ks))
    }


def outcome_counts(records: Iterable[Mapping]) -> dict[str, int]:
    return dict(sorted(Counter(r["outcome"] for r in records).items()))
