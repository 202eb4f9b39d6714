"""One run folder -> report.md and pass_at_k.png beside its metrics.json.

The report is built only from the files in the run folder, with no clock and no machine-specific
text, so the same run always renders the same bytes (golden tests rely on it).  Reading the run
is phi_eval.runfolder's job, and how each fact reads is phi_eval.present's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from phi_eval.files import write_text
from phi_eval.present import (
    SEVERITY_ORDER,
    coverage,
    markdown_table,
    md_text,
    natural_key,
    ordered_outcomes,
    pass_at_k_blocks,
    pct,
    run_name,
    run_sandbox,
    sorted_ks,
)
from phi_eval.runfolder import REPORT, RunData, read_run

PLOT = "pass_at_k.png"
TOP = 10
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
    from phi_eval.plot import write_pass_at_k

    reported = {int(k): float(v) for k, v in run.metrics["pass_at_k"].items() if str(k).isdigit()}
    task = run.metrics.get("task") or run.config.get("task", "")
    return write_pass_at_k(out, f"{run_name(run.path, run.metrics, run.config)} on {task}",
                           pass_at_k_curve(run.results), reported)


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
