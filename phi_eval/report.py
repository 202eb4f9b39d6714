"""One run folder -> report.md and pass_at_k.png beside its metrics.json.

The report is built only from the files in the run folder, with no clock and no machine-specific
text, so the same run always renders the same bytes (golden tests rely on it).  Also holds the
small readers and Markdown helpers that leaderboard.py and compare.py share.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.runfolder import CONFIG, METRICS, REPORT, RESULTS, read_json, write_text

PLOT = "pass_at_k.png"
TOP = 10
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


@dataclass(frozen=True)
class RunData:
    """What a report needs from one run folder."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    results: list[dict[str, Any]]


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json, checked enough that a bad file is one clear line instead of a KeyError later."""
    metrics = read_json(run_dir / METRICS)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("pass_at_k"), dict):
        raise PhiEvalError(f"{run_dir / METRICS} has no pass_at_k table; is it a phi-eval metrics file?")
    return metrics


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """results.jsonl; a missing file is an empty list (old or partial runs), a torn last line is skipped."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or not line.endswith("\n"):
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PhiEvalError(f"{path} line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "task_id" not in rec or "passed" not in rec:
                raise PhiEvalError(
                    f"{path} line {lineno} lacks task_id/passed; is it a phi-eval results file?"
                )
            records.append(rec)
    return records


def read_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PhiEvalError(f"run folder {run_dir} does not exist; pass a folder that holds metrics.json")
    metrics = read_metrics(run_dir)
    config = read_json(run_dir / CONFIG) if (run_dir / CONFIG).exists() else {}
    return RunData(run_dir, config if isinstance(config, dict) else {}, metrics, read_results(run_dir))


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


# ---------------------------------------------------------------- per-task figures


def task_counts(results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """task_id -> (samples, passed), in natural task order."""
    from phi_eval.metrics import counts_by_task

    counts = counts_by_task(results)
    return {t: counts[t] for t in sorted(counts, key=natural_key)}


def pass_at_k_curve(results: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """pass@k for every k the smallest task allows: the shape behind the few reported numbers."""
    from phi_eval.metrics import pass_at_k

    counts = task_counts(results)
    if not counts:
        return {}
    n_min = min(n for n, _ in counts.values())
    return {k: sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts) for k in range(1, n_min + 1)}


# ---------------------------------------------------------------- the report


def _header(run: RunData) -> list[str]:
    m, cfg = run.metrics, run.config
    model = m.get("model") or cfg.get("model", "?")
    task = m.get("task") or cfg.get("task", "?")
    facts = [f"run {md_text(run.path.name)}"]
    for label, value in (
        ("created", cfg.get("created_at") or m.get("created_at")),
        ("phi-eval", m.get("phi_eval_version") or cfg.get("phi_eval_version")),
        ("commit", (cfg.get("git_commit") or "")[:12] or None),
        ("seed", cfg.get("seed")),
        ("temperature", cfg.get("temperature")),
    ):
        if value is not None:
            facts.append(f"{label} {value}")
    sandbox = run_sandbox(run.config)
    if sandbox:
        facts.append(f"sandbox {sandbox if sandbox in ('docker', 'local (UNISOLATED)') else md_text(sandbox)}")
    lines = [f"# {md_text(model)} on {md_text(task)}", "", " · ".join(facts), ""]
    if run.config.get("sandbox") == "local":
        lines += ["**Executed with `--sandbox local`: plain subprocesses, no isolation.**", ""]
    return lines


def _pass_at_k_section(run: RunData) -> list[str]:
    m = run.metrics
    blocks = pass_at_k_blocks(m, named=True)
    ks = sorted_ks({k: None for block in blocks.values() for k in block})
    headers = ["metric"] + ["value" if label == "" else label for label in blocks]
    rows = [[f"pass@{k}"] + [pct(block.get(k)) for block in blocks.values()] for k in ks]
    n = m.get("n", run.config.get("n", "n/a"))
    lines = ["## pass@k", "", markdown_table(headers, rows, [False] + [True] * len(blocks)), ""]
    cov = coverage(run.metrics, run.config)
    of = f" of the benchmark's {cov[1]}" if cov[1] else ""
    lines += [
        f"{m.get('num_tasks', 'n/a')} tasks{of}, {m.get('num_samples', 'n/a')} samples, "
        f"at most {n} per task; pass@k by the unbiased estimator of Chen et al. (2021).",
        "",
        f"![pass@k]({PLOT})",
        "",
    ]
    return lines


def _outcome_section(run: RunData) -> list[str]:
    outcomes: dict[str, int] = dict(
        run.metrics.get("outcomes") or Counter(r.get("outcome") for r in run.results)
    )
    total = sum(outcomes.values())
    rows = [
        [o, outcomes[o], pct(outcomes[o] / total if total else None)] for o in ordered_outcomes(set(outcomes))
    ]
    return ["## Outcomes", "", markdown_table(["outcome", "samples", "share"], rows, [False, True, True]), ""]


def _hardest_section(run: RunData) -> list[str]:
    if not run.results:
        return ["## Hardest tasks", "", "n/a (no results.jsonl)", ""]
    by_task: dict[str, Counter] = {}
    for r in run.results:
        by_task.setdefault(r["task_id"], Counter())[
            r.get("outcome", "passed" if r["passed"] else "failed")
        ] += 1
    counts = task_counts(run.results)
    below = [t for t in counts if counts[t][1] < counts[t][0]]
    if not below:
        return ["## Hardest tasks", "", f"None failed: all {len(counts)} tasks passed every sample.", ""]
    hardest = sorted(below, key=lambda t: (counts[t][1] / counts[t][0], natural_key(t)))[:TOP]
    rows = []
    for t in hardest:
        n, c = counts[t]
        fails = Counter({o: k for o, k in by_task[t].items() if o != "passed"})
        common = min(fails.items(), key=lambda kv: (-kv[1], kv[0]))[0] if fails else "-"
        rows.append([md_text(t), n, c, pct(c / n), md_text(common)])
    table = markdown_table(
        ["task", "samples", "passed", "pass rate", "most common failure"],
        rows,
        [False, True, True, True, False],
    )
    shown = f"top {TOP} of {len(below)}" if len(below) > TOP else f"all {len(below)}"
    return [f"## Hardest tasks (below 100%, lowest pass rate first; {shown})", "", table, ""]


def _slowest_section(run: RunData) -> list[str]:
    timed = [r for r in run.results if isinstance(r.get("duration_s"), int | float)]
    if not timed:
        return ["## Slowest samples", "", "n/a (no durations recorded)", ""]
    slow = sorted(
        timed, key=lambda r: (-r["duration_s"], natural_key(r["task_id"]), r.get("completion_id", 0))
    )
    rows = [
        [md_text(r["task_id"]), md_text(r.get("completion_id", "")), md_text(r.get("outcome", "")),
         f"{r['duration_s']:.3f}"]
        for r in slow[:TOP]
    ]
    table = markdown_table(
        ["task", "completion", "outcome", "duration (s)"], rows, [False, True, False, True]
    )
    return [f"## Slowest samples (top {TOP})", "", table, ""]


def _outside_imports(raw: Any) -> list[tuple[str, int]]:
    """Both shapes seen in metrics.json: [{"module", "count"}, ...] and [[module, count], ...]."""
    out = []
    for item in raw or ():
        if isinstance(item, dict):
            out.append((str(item.get("module", "?")), int(item.get("count", 0))))
        elif isinstance(item, list | tuple) and len(item) == 2:
            out.append((str(item[0]), int(item[1])))
    return out


def _checks_section(run: RunData) -> list[str]:
    m = run.metrics
    lines = [
        "## Imports and security",
        "",
        f"- Allowed-import rate: {pct(m.get('allowed_imports_rate'))}",
        f"- Security flag rate (share of samples with a flag): {pct(m.get('security_flag_rate'))}",
    ]
    if "hallucinated_api_rate" in m:
        lines.append(f"- Hallucinated-API rate: {pct(m.get('hallucinated_api_rate'))}")
    split = m.get("by_outcome")
    if isinstance(split, dict) and {"passed", "failed"} <= split.keys():
        p, f = split["passed"] or {}, split["failed"] or {}
        lines.append(
            f"- Among passing / failing samples: allowed imports {pct(p.get('allowed_imports_rate'))} / "
            f"{pct(f.get('allowed_imports_rate'))}, security flags {pct(p.get('security_flag_rate'))} / "
            f"{pct(f.get('security_flag_rate'))}"
        )
    lines.append("")
    if "top_outside_imports" not in m:
        lines += ["Outside imports: n/a", ""]
    elif not (outside := _outside_imports(m["top_outside_imports"])):
        lines += ["Outside imports: none", ""]
    else:
        rows = [[md_text(name), count] for name, count in outside]
        lines += [
            "Top imports outside the allow-list:",
            "",
            markdown_table(["module", "samples"], rows, [False, True]),
            "",
        ]
    for key, label in (("security_by_category", "category"), ("security_by_severity", "severity")):
        raw = m.get(key)
        flags = {k: v for k, v in raw.items() if v} if isinstance(raw, dict) else None
        if flags is None:
            lines += [f"Security flags by {label}: n/a", ""]
        elif not flags:
            lines += [f"Security flags by {label}: none", ""]
        else:
            order = SEVERITY_ORDER if key == "security_by_severity" else ()
            rank = {name: i for i, name in enumerate(order)}
            names = sorted(flags, key=lambda x: (rank.get(str(x).lower(), len(rank)), -flags[x], x))
            rows = [[md_text(name), flags[name]] for name in names]
            lines += [
                f"Security flags by {label}:",
                "",
                markdown_table([label, "flags"], rows, [False, True]),
                "",
            ]
    return lines


def render_run_report(run: RunData) -> str:
    """The Markdown text of report.md (without writing anything)."""
    lines = (
        _header(run)
        + _pass_at_k_section(run)
        + _outcome_section(run)
        + _hardest_section(run)
        + _slowest_section(run)
        + _checks_section(run)
    )
    return "\n".join(lines).rstrip() + "\n"


def plot_pass_at_k(run: RunData, out: Path) -> Path:
    """pass@k against k (the whole curve when results.jsonl allows it, the reported points always)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reported = {int(k): float(v) for k, v in run.metrics["pass_at_k"].items() if str(k).isdigit()}
    curve = pass_at_k_curve(run.results)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        ks = sorted(reported)
        if max(ks + list(curve), default=1) <= 1:
            # n = 1: one number, so a bar (a lone dot on a stretched axis reads as nothing).
            value = 100 * reported.get(1, curve.get(1, 0.0))
            ax.bar([0], [value], width=0.5, color="tab:blue")
            ax.annotate(f"{value:.1f}%", (0, value), textcoords="offset points", xytext=(0, 4), ha="center")
            ax.set_xlim(-1, 1)
            ax.set_xticks([0], ["pass@1"])
            ax.set_xlabel("one sample per task")
        else:
            if curve:
                ax.plot(list(curve), [100 * v for v in curve.values()], color="tab:blue", label="pass@k (all k)")
            ax.scatter(ks, [100 * reported[k] for k in ks], color="tab:red", zorder=3, label="reported")
            for k in ks:
                ax.annotate(
                    f"{100 * reported[k]:.1f}%", (k, 100 * reported[k]), textcoords="offset points", xytext=(4, 6)
                )
            if ks and max(ks + list(curve)) >= 20:
                ax.set_xscale("log")
            else:
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("k (samples drawn per task)")
            ax.legend(loc="lower right")
        ax.set_ylim(0, 105)
        ax.set_ylabel("pass@k (%)")
        task = run.metrics.get("task") or run.config.get("task", "")
        ax.set_title(f"{run_name(run.path, run.metrics, run.config)} on {task}", parse_math=False)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        # No Software/date metadata: the same run gives the same bytes.
        fig.savefig(out, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return out


def write_run_report(run_dir: Path) -> Path:
    """Write report.md, pass_at_k.png and report.html (every sample, browsable) into the run folder;
    the pipeline calls this at the end of a run."""
    from phi_eval.html_report import HTML, write_html

    run = read_run(Path(run_dir))
    plot_pass_at_k(run, run.path / PLOT)
    path = run.path / REPORT
    write_text(path, render_run_report(run))
    write_html([run], run.path / HTML, title=f"{run_name(run.path, run.metrics, run.config)}: {run.path.name}")
    return path
