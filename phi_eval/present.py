"""How a run's facts read in every view: report.md, report.html, the leaderboard and compare.

One place for a percentage's, a run's name's, a date's and a Markdown cell's form, the order
outcomes and pass@k columns are listed in, and the facts every view states about a run (its
pass@k tables, its coverage, its sandbox), so the views never disagree on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The order outcomes are listed in; anything else a newer pipeline writes goes after, sorted.
OUTCOME_ORDER = (
    "passed",
    "failed",
    "runtime_error",
    "syntax_error",
    "timeout",
    "oom",
    "killed",
    "sandbox_error",
)
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


# ---------------------------------------------------------------- formatting helpers


def pct(value: Any) -> str:
    """0.5 -> '50.0%'; missing keys of old runs -> 'n/a'."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{100 * value:.1f}%"


def natural_key(text: str) -> tuple:
    """HumanEval/2 before HumanEval/10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def sorted_ks(pass_at_k: Mapping[str, Any]) -> list[str]:
    return sorted(pass_at_k, key=lambda k: int(k) if str(k).isdigit() else 10**9)


def ordered_outcomes(names: Sequence[str] | set[str]) -> list[str]:
    known = [o for o in OUTCOME_ORDER if o in names]
    return known + sorted(set(names) - set(OUTCOME_ORDER))


# Markdown (and GitHub's autolinks) would turn these into markup: `<img onerror>`, [links](...),
# emphasis, code spans, http: and www. autolinks, e-mail autolinks.  Escaped, they render as typed.
_MD_SPECIAL = re.compile(r"([\\`*{}\[\]()#+!~:@])")  # "|" is escaped by table cells
_MD_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # snake_case never emphasises
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def md_text(value: Any) -> str:
    """Model-controlled (or any untrusted) text made inert in Markdown: no raw HTML, no links, no markup.

    HTML's own characters become entities and every other character Markdown or GitHub's autolinker
    reacts to is backslash-escaped, so the text renders exactly as written and nothing runs or links."""
    text = re.sub(r"[\r\n\u2028\u2029\x85]+", " ", str(value))
    text = "".join(_MD_ENTITIES.get(ch, ch) for ch in text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_EDGE_UNDERSCORE.sub(r"\\_", text)
    return re.sub(r"(?i)(www)\.", r"\1\\.", text)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """A GitHub Markdown table; `right` marks numeric columns to right-align."""
    right = list(right) + [False] * (len(headers) - len(right))
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def dataframe_markdown(df: Any, right: Sequence[str] = ()) -> str:
    """pandas DataFrame -> Markdown without the optional `tabulate` dependency of DataFrame.to_markdown."""
    headers = [str(c) for c in df.columns]
    rows = [list(r) for r in df.itertuples(index=False, name=None)]
    return markdown_table(headers, rows, [c in right for c in headers])


# ---------------------------------------------------------------- facts about a run, shared by every report


def pass_at_k_blocks(metrics: Mapping[str, Any], *, named: bool = False) -> dict[str, dict[str, Any]]:
    """"" -> pass_at_k, plus any other pass@k table a newer pipeline writes (pass_at_k_base -> "base tests").

    `named`: where metrics.json names its tables (`pass_at_k_names`, EvalPlus tasks), those names are
    the labels: "mbpp+ (base + extra tests)" for pass_at_k, "mbpp (base tests)" for pass_at_k_base."""
    names = metrics.get("pass_at_k_names") if isinstance(metrics.get("pass_at_k_names"), dict) else {}
    names = names if named else {"pass_at_k_base": "base tests"}
    blocks: dict[str, dict[str, Any]] = {str(names.get("pass_at_k", "")): dict(metrics["pass_at_k"])}
    for key in sorted(metrics):
        value = metrics[key]
        if key == "pass_at_k_names" or not key.startswith("pass_at_k_") or not isinstance(value, dict):
            continue
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            blocks[str(names.get(key) or key.removeprefix("pass_at_k_").replace("_", " "))] = dict(value)
    return blocks


def coverage(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(tasks evaluated, tasks in the benchmark's split); None where a run does not record it."""
    done = metrics.get("num_tasks")
    total = metrics.get("benchmark_tasks") or config.get("benchmark_tasks")
    as_int = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None  # noqa: E731
    return as_int(done), as_int(total)


def coverage_text(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    done, total = coverage(metrics, config)
    if done is None:
        return "n/a"
    return f"{done}/{total}" if total else f"{done}/?"


def run_sandbox(config: Mapping[str, Any]) -> str | None:
    """The sandbox a run executed in, with --sandbox local called what it is."""
    kind = config.get("sandbox")
    if not isinstance(kind, str) or not kind:
        return None
    return "local (UNISOLATED)" if kind == "local" else kind


def run_name(path: Path, metrics: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """--name, else the model; a scored file's runs of older versions fall back to the folder name."""
    for value in (metrics.get("name"), config.get("name"), metrics.get("model"), config.get("model")):
        if isinstance(value, str) and value and value != "samples":
            return value
    return Path(path).name


def when(value: Any) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM' (UTC as recorded); 'n/a' when absent."""
    if not isinstance(value, str) or len(value) < 10:
        return "n/a"
    return value[:10] + (" " + value[11:16] if len(value) >= 16 else "")
