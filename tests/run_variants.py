"""Variants of the fixture runs for report/compare/HTML tests: another task, a subset of tasks, one
sample per task, a different sandbox or name, hostile text.  metrics.json is recomputed from the
edited results with phi_eval.metrics, so every figure stays consistent with results.jsonl."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNS = Path(__file__).resolve().parent / "data" / "runs"

# Model-controlled text that would run or link if any report let it through as markup.
XSS = (
    "</script><script>document.title='pwned';window.pwned=1</script>"
    "<img src=x onerror=\"document.title='pwned';document.body.setAttribute('data-pwned','1')\">"
    "[click](http://evil.example/) www.evil.example <!-- __JS__ -->"
)


def variant(
    dest: Path,
    source: str = "humaneval-tiny-broken",
    *,
    task: str | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Copy a fixture run to dest, filter/edit its results and recompute metrics.json from them."""
    from phi_eval.checks.summary import summarize
    from phi_eval.metrics import counts_by_task, outcome_counts, run_pass_at_k

    shutil.copytree(RUNS / source, dest)
    records = [json.loads(line) for line in (dest / "results.jsonl").read_text().splitlines() if line]
    records = [r for r in records if keep is None or keep(r)]
    for r in records:
        if task == "mbpp":
            r["task_id"] = "Mbpp/" + str(11 + int(r["task_id"].split("/")[1]))
        if edit is not None:
            edit(r)
    (dest / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (dest / "samples.jsonl").write_text(
        "".join(json.dumps({k: r[k] for k in ("task_id", "completion_id", "completion")}) + "\n" for r in records)
    )
    m = json.loads((dest / "metrics.json").read_text())
    cfg = json.loads((dest / "config.json").read_text())
    counts = counts_by_task(records)
    n_min = min(n for n, _ in counts.values())
    ks = [k for k in (1, 10) if k <= n_min]
    m.update(
        num_tasks=len(counts),
        num_samples=len(records),
        n=max(n for n, _ in counts.values()),
        pass_at_k=run_pass_at_k(records, ks),
        outcomes=outcome_counts(records),
    )
    if "allowed_imports_rate" in m:
        m.update(summarize(records, allowed=("math", "typing", "random", "collections", "datetime", "itertools")))
    if task is not None:
        m["task"] = cfg["task"] = task
        cfg["benchmark_tasks"] = 500 if task == "mbpp" else 164
    cfg.update(config or {})
    m.update(metrics or {})
    (dest / "metrics.json").write_text(json.dumps(m, indent=2))
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    return dest
