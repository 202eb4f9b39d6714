"""CI policies over the checks: `--fail-on` specs and rate thresholds -> violation lines.

The run is always written in full first; the CLI then prints these lines and exits non-zero, so a
failed CI job still leaves a results folder to look at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from phi_eval.checks.security import CATEGORIES, SEVERITIES
from phi_eval.checks.summary import summarize
from phi_eval.errors import PhiEvalError

_EXAMPLES_SHOWN = 5  # sample ids quoted per violation line


@dataclass(frozen=True)
class Policy:
    """One `--fail-on` rule. kind: security (value: severity, category or "any"), imports, hallucinated-api."""

    kind: str
    value: str = ""

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.value}" if self.value and self.value != "any" else self.kind


def _known_specs() -> str:
    return ", ".join(
        ["security", *(f"security:{s}" for s in SEVERITIES), *(f"security:{c}" for c in CATEGORIES)]
        + ["imports", "hallucinated-api"]
    )


def parse_fail_on(specs: Iterable[str] | None) -> list[Policy]:
    """Parse `--fail-on` values (repeatable, or comma-separated); raise PhiEvalError on a bad one."""
    policies: list[Policy] = []
    for raw in specs or ():
        for spec in (part.strip() for part in str(raw).split(",")):
            if not spec:
                continue
            kind, _, value = spec.lower().partition(":")
            kind = kind.strip().replace("_", "-")
            value = value.strip().replace("-", "_")
            if kind == "security" and value in ("", "any"):
                policy = Policy("security", "any")
            elif kind == "security" and (value in SEVERITIES or value in CATEGORIES):
                policy = Policy("security", value)
            elif kind in ("imports", "hallucinated-api") and not value:
                policy = Policy(kind)
            else:
                raise PhiEvalError(f"unknown --fail-on spec {spec!r}; use one of: {_known_specs()}")
            if policy not in policies:
                policies.append(policy)
    return policies


def check_rate(name: str, value: float | None) -> float | None:
    """A threshold flag's value, validated: a share between 0 and 1."""
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise PhiEvalError(f"{name} must be a share between 0 and 1 (e.g. 0.95); got {value}")
    return float(value)


def _sample_id(record: dict[str, Any]) -> str:
    task = str(record.get("task_id", "?"))
    for key in ("sample_index", "sample_id", "index", "completion_id"):
        if key in record:
            return f"{task}#{record[key]}"
    return task


def _matches(policy: Policy, record: dict[str, Any]) -> bool:
    if record.get("unchecked"):  # text the checks could not analyse is never taken as clean
        return True
    if policy.kind == "imports":
        return record.get("allowed_imports_only") is False
    if policy.kind == "hallucinated-api":
        return bool(record.get("hallucinated_apis"))
    findings = record.get("security") or []
    if policy.value == "any":
        return bool(findings)
    if policy.value in SEVERITIES:
        floor = SEVERITIES.index(policy.value)
        return any(
            SEVERITIES.index(f["severity"]) >= floor for f in findings if f.get("severity") in SEVERITIES
        )
    return any(f.get("category") == policy.value for f in findings)


_WHAT = {
    "imports": "import a module outside the allow-list",
    "hallucinated-api": "use a stdlib attribute that does not exist",
}


def evaluate_policies(
    metrics: dict[str, Any],
    records: Sequence[dict[str, Any]],
    fail_on: Sequence[Policy] = (),
    min_allowed_imports_rate: float | None = None,
    max_security_flag_rate: float | None = None,
) -> list[str]:
    """Human-readable violation lines; an empty list means the run passes every policy.

    Rates are read from `metrics` (the summarize() dict, merged at top level or under "checks")
    and computed from `records` when absent there.
    """
    out: list[str] = []
    for policy in fail_on:
        hits = [r for r in records if _matches(policy, r)]
        if not hits:
            continue
        if policy.kind == "security":
            level = "any severity" if policy.value == "any" else policy.value
            what = (
                f"have a {policy.value} security finding"
                if policy.value in CATEGORIES
                else f"have a security finding of {level}"
                + (" or above" if policy.value in SEVERITIES else "")
            )
        else:
            what = _WHAT[policy.kind]
        unchecked = sum(1 for r in hits if r.get("unchecked"))
        if unchecked:
            what += f" or could not be checked ({unchecked})"
        shown = ", ".join(_sample_id(r) for r in hits[:_EXAMPLES_SHOWN])
        more = f" and {len(hits) - _EXAMPLES_SHOWN} more" if len(hits) > _EXAMPLES_SHOWN else ""
        out.append(f"--fail-on {policy.spec}: {len(hits)} of {len(records)} samples {what} ({shown}{more})")
    figures = metrics.get("checks", metrics) if isinstance(metrics.get("checks"), dict) else metrics
    if "allowed_imports_rate" not in figures or "security_flag_rate" not in figures:
        figures = summarize(records)
    minimum = check_rate("--min-allowed-imports-rate", min_allowed_imports_rate)
    if minimum is not None:
        rate = figures.get("allowed_imports_rate")
        if rate is None:
            out.append("--min-allowed-imports-rate: no sample was checked, so the rate is unknown")
        elif rate < minimum:
            out.append(
                f"--min-allowed-imports-rate {minimum:g}: allowed-imports rate is {rate:.4g}, below it"
            )
    maximum = check_rate("--max-security-flag-rate", max_security_flag_rate)
    if maximum is not None:
        rate = figures.get("security_flag_rate")
        if rate is None:
            out.append("--max-security-flag-rate: no sample was checked, so the rate is unknown")
        elif rate > maximum:
            out.append(f"--max-security-flag-rate {maximum:g}: security flag rate is {rate:.4g}, above it")
    return out
