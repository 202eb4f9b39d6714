"""Run folders -> one self-contained HTML page to browse every sample (report.html, `report --html`).

Why this shape:
- Opened from disk with no network: the CSS, the script and the data are all inline (no CDN, no
  fonts, no images), so it works on an air-gapped machine and fetches nothing.
- Model-controlled text stays inert: the data travels as JSON inside <script type="application/json">
  with every `<`, `>` and `&` written as a \\u escape (the HTML parser cannot see a `</script>` in
  it), and the page puts every string into the DOM with textContent/createTextNode, never as
  markup.  A completion holding <script> or an onerror handler is shown as text and never runs.
- Fast on tens of thousands of samples: the data is parsed once and only one page of samples (50)
  is built at a time; the syntax highlighter runs on those only.
- Scriptable: the view (run, outcome and task filters, page, the two runs compared) lives in the
  URL's #hash, which the tests and the README's screenshots use to drive it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi_eval import __version__
from phi_eval.files import records, write_text
from phi_eval.html_page import CSS, JS, PAGE
from phi_eval.present import (
    coverage_text,
    natural_key,
    pass_at_k_blocks,
    run_name,
    run_sandbox,
    sorted_ks,
    when,
)
from phi_eval.runfolder import PROMPTS, RunData

HTML = "report.html"


def _prompts(run: RunData) -> dict[str, str]:
    """task_id -> the exact prompt the model saw (prompts.jsonl; absent for a scored samples file)."""
    path = run.path / PROMPTS
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    with path.open("rb") as fh:
        for _, rec in records(fh, skip_bad=True):
            if isinstance(rec, dict) and isinstance(rec.get("prompt"), str):
                out.setdefault(str(rec.get("task_id")), rec["prompt"])
    return out


def _findings(value: Any) -> list[list[Any]] | None:
    """security findings as [severity, category, rule, line, message] rows; None: not checked."""
    if not isinstance(value, list):
        return None
    rows = []
    for f in value:
        if isinstance(f, dict):
            rows.append([str(f.get(k, "")) for k in ("severity", "category", "rule", "line", "message")])
    return rows


def run_payload(run: RunData) -> dict[str, Any]:
    """One run, compact: samples as arrays (32,800 of them must stay a few MB), tasks by index."""
    m, cfg = run.metrics, run.config
    prompts = _prompts(run)
    tasks = sorted({str(r["task_id"]) for r in run.results}, key=natural_key)
    index = {t: i for i, t in enumerate(tasks)}
    samples = []
    for r in sorted(run.results, key=lambda r: (index[str(r["task_id"])], r.get("completion_id", 0))):
        imports = r.get("imports")
        samples.append(
            [
                index[str(r["task_id"])],
                r.get("completion_id", ""),
                str(r.get("outcome", "passed" if r["passed"] else "failed")),
                1 if r["passed"] else 0,
                r.get("duration_s"),
                str(r.get("detail", "") or ""),
                str(r.get("completion", "") or ""),
                [str(i) for i in imports] if isinstance(imports, list) else None,
                _findings(r.get("security")),
                r.get("allowed_imports_only"),
            ]
        )
    return {
        "name": run_name(run.path, m, cfg),
        "run": run.path.name,
        "task": m.get("task") or cfg.get("task"),
        "model": m.get("model") or cfg.get("model"),
        "sandbox": run_sandbox(cfg),
        "created": when(m.get("created_at") or cfg.get("created_at")),
        "coverage": coverage_text(m, cfg),
        "pass_at_k": {
            (f"pass@{k}" if not label else f"pass@{k} ({label})"): block[k]
            for label, block in pass_at_k_blocks(m).items()
            for k in sorted_ks(block)
        },
        "tasks": tasks,
        "prompts": [prompts.get(t) for t in tasks],
        "samples": samples,
    }


def script_json(obj: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no `<`, `>` or `&` in the bytes,
    so no `</script>` or `<!--` in a string can end the block; JSON.parse restores them exactly."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _html_attr(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


def _csp(script: str) -> str:
    """Only our own script (by its hash) runs: no other inline script or event handler, no fetch of
    anything.  A second wall behind the escaping, should a string ever reach the DOM as markup."""
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; connect-src 'none'; "
        f"script-src 'sha256-{digest}'"
    )


def render_html(runs: Sequence[RunData], title: str = "phi-eval report", *, csp: bool = True) -> str:
    """The whole page as one string (csp=False only for the tests that check each wall alone)."""
    payload = {
        "title": title,
        "version": __version__,
        "runs": [run_payload(r) for r in runs],
    }
    policy = (
        f'<meta http-equiv="Content-Security-Policy" content="{_html_attr(_csp(JS))}">' if csp else ""
    )
    parts = {
        "__CSP__": policy,
        "__TITLE__": _html_attr(title),
        "__CSS__": CSS,
        "__JS__": JS,
        "__DATA__": script_json(payload),
    }
    # One pass, so a title or a completion that happens to contain "__JS__" is never substituted.
    return re.sub("|".join(parts), lambda m: parts[m.group(0)], PAGE)


def write_html(runs: Sequence[RunData], out: Path, title: str = "phi-eval report") -> Path:
    write_text(Path(out), render_html(runs, title))
    return Path(out)


def runs_for_html(run_dirs: Sequence[Path]) -> list[RunData]:
    from phi_eval.runfolder import read_run

    return [read_run(Path(d)) for d in run_dirs]
