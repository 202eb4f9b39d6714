"""Run-level figures from the per-sample check fields, overall and split by passed / failed.

The split matters: a model that passes by importing `os` or by `eval` is not the model the card
describes, and the split shows whether the checks flag the passing or the failing samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from phi_eval.checks.imports import normalize_allowed
from phi_eval.checks.security import CATEGORIES, SEVERITIES

TOP_OUTSIDE = 10  # how many outside imports top_outside_imports lists


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 6) if total else None


def _figures(records: list[dict[str, Any]], allowed: frozenset[str]) -> dict[str, Any]:
    checked = [r for r in records if "allowed_imports_only" in r]
    n = len(checked)
    outside: Counter[str] = Counter()
    by_category: Counter[str] = Counter(dict.fromkeys(CATEGORIES, 0))
    by_severity: Counter[str] = Counter(dict.fromkeys(SEVERITIES, 0))
    allowed_only = flagged = hallucinated = parse_errors = unchecked = 0
    for record in checked:
        allowed_only += bool(record["allowed_imports_only"])
        if not record["allowed_imports_only"]:
            outside.update({m for m in record.get("imports") or () if m not in allowed})  # once per sample
        findings = record.get("security") or []
        flagged += bool(findings) or bool(record.get("unchecked"))  # unanalysed text is never clean
        unchecked += bool(record.get("unchecked"))
        for item in findings:
            by_category[item.get("category", "unknown")] += 1
            by_severity[item.get("severity", "unknown")] += 1
        hallucinated += bool(record.get("hallucinated_apis"))
        parse_errors += bool(record.get("parse_error"))
    return {
        "checked_samples": n,
        "allowed_imports_rate": _rate(allowed_only, n),
        "top_outside_imports": [{"module": m, "count": c} for m, c in outside.most_common(TOP_OUTSIDE)],
        "security_flag_rate": _rate(flagged, n),
        "security_findings": sum(by_category.values()),
        "security_by_category": dict(by_category),
        "security_by_severity": dict(by_severity),
        "hallucinated_api_rate": _rate(hallucinated, n),
        "parse_error_rate": _rate(parse_errors, n),
        "unchecked_samples": unchecked,
    }


def summarize(
    records: Iterable[dict[str, Any]], allowed: Iterable[str] = ()
) -> dict[str, Any]:
    """Check figures for metrics.json: overall, plus `by_outcome` for passed and failed samples.

    Records without check fields (checks switched off) are left out of every denominator; a rate
    over no samples is None rather than a misleading 0 or 1. `allowed` is the run's allow-list (the task file's),
    so that `top_outside_imports` leaves out the allowed modules of a sample that also used others.
    """
    records = list(records)
    allowed_set = normalize_allowed(allowed)
    out = _figures(records, allowed_set)
    out["by_outcome"] = {
        "passed": _figures([r for r in records if r.get("passed") is True], allowed_set),
        "failed": _figures([r for r in records if r.get("passed") is not True], allowed_set),
    }
    return out
