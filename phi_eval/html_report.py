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
from phi_eval.report import (
    RunData,
    coverage_text,
    natural_key,
    pass_at_k_blocks,
    run_name,
    run_sandbox,
    sorted_ks,
    when,
)
from phi_eval.runfolder import PROMPTS, write_text

HTML = "report.html"


def _prompts(run: RunData) -> dict[str, str]:
    """task_id -> the exact prompt the model saw (prompts.jsonl; absent for a scored samples file)."""
    path = run.path / PROMPTS
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8", newline="") as fh:
        for line in fh.read().split("\n"):
            try:
                rec = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
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
        f'<meta http-equiv="Content-Security-Policy" content="{_html_attr(_csp(_JS))}">' if csp else ""
    )
    parts = {
        "__CSP__": policy,
        "__TITLE__": _html_attr(title),
        "__CSS__": _CSS,
        "__JS__": _JS,
        "__DATA__": script_json(payload),
    }
    # One pass, so a title or a completion that happens to contain "__JS__" is never substituted.
    return re.sub("|".join(parts), lambda m: parts[m.group(0)], _PAGE)


def write_html(runs: Sequence[RunData], out: Path, title: str = "phi-eval report") -> Path:
    write_text(Path(out), render_html(runs, title))
    return Path(out)


def runs_for_html(run_dirs: Sequence[Path]) -> list[RunData]:
    from phi_eval.report import read_run

    return [read_run(Path(d)) for d in run_dirs]


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
__CSP__
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__CSS__</style>
</head>
<body>
<header><h1 id="title"></h1><p id="subtitle"></p></header>
<noscript><p>This report needs JavaScript to show the samples (the page fetches nothing).</p></noscript>
<section id="board-section"><h2>Leaderboard</h2><div id="board"></div></section>
<nav id="tabs"></nav>
<section id="samples-view" hidden>
  <div class="controls">
    <label>run <select id="run-select"></select></label>
    <label>outcome <select id="outcome-select"></select></label>
    <label>task <select id="task-select"></select></label>
    <span id="pager"></span>
  </div>
  <p id="status"></p>
  <div id="samples"></div>
</section>
<section id="compare-view" hidden>
  <div class="controls">
    <label>A <select id="a-select"></select></label>
    <label>B <select id="b-select"></select></label>
    <label>show <select id="flip-select">
      <option value="flipped">flipped</option><option value="lost">passed in A, fails in B</option>
      <option value="gained">fails in A, passes in B</option><option value="all">all shared samples</option>
    </select></label>
    <span id="cpager"></span>
  </div>
  <p id="cstatus"></p>
  <div id="flips"></div>
</section>
<script type="application/json" id="phi-eval-data">__DATA__</script>
<script>__JS__</script>
</body>
</html>
"""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 16px 40px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:16px 0 2px}h2{font-size:17px;margin:18px 0 6px}h3{font-size:15px;margin:12px 0 4px}
#subtitle{color:#57606a;margin:0 0 8px}
table{border-collapse:collapse;margin:4px 0 10px}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.unisolated{color:#b00020;font-weight:600}
nav button{font:inherit;padding:5px 14px;margin-right:4px;border:1px solid #d0d7de;background:#f6f8fa;border-radius:6px 6px 0 0;cursor:pointer}
nav button.on{background:#fff;border-bottom-color:#fff;font-weight:600}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:8px 0;border-bottom:1px solid #d0d7de}
.controls button{font:inherit}
.sample{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;padding:6px 10px}
.sample .head{display:flex;gap:12px;flex-wrap:wrap;align-items:baseline}
.badge{border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff;background:#57606a}
.o-passed{background:#1a7f37}.o-failed{background:#cf222e}.o-timeout,.o-oom,.o-killed{background:#9a6700}
.o-runtime_error,.o-syntax_error{background:#bc4c00}.o-sandbox_error{background:#6e40c9}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:6px 8px;overflow:auto;max-height:420px;margin:4px 0;white-space:pre;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.kw{color:#cf222e}.st{color:#0a3069}.cm{color:#6e7781;font-style:italic}.nu{color:#0550ae}.bi{color:#8250df}.fn{color:#6639ba;font-weight:600}
.meta{color:#57606a}.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.lost{border-left:4px solid #cf222e}.gained{border-left:4px solid #1a7f37}
"""

_JS = r"""
"use strict";
(function () {
  var t0 = performance.now();
  var DATA = JSON.parse(document.getElementById("phi-eval-data").textContent);
  var PAGE = 50;
  var runs = DATA.runs;

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function pct(v) { return typeof v === "number" ? (100 * v).toFixed(1) + "%" : "n/a"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // ------------------------------------------------------------ state in the #hash
  function readState() {
    var s = {view: "samples", run: "0", outcome: "", task: "", page: "1", a: "0", b: runs.length > 1 ? "1" : "0", show: "flipped", cpage: "1"};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var i = part.indexOf("="), k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
      if (k in s) s[k] = decodeURIComponent(i < 0 ? "" : part.slice(i + 1));
    });
    return s;
  }
  var state = readState();
  function go(changes) {
    for (var k in changes) state[k] = String(changes[k]);
    var parts = [];
    for (var key in state) parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(state[key]));
    var h = "#" + parts.join("&");
    if (location.hash !== h) location.hash = h; else render();
  }
  window.addEventListener("hashchange", function () { state = readState(); render(); });

  // ------------------------------------------------------------ a small Python highlighter (text nodes only)
  var KW = new Set("False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case".split(" "));
  var BI = new Set("abs all any bin bool bytes callable chr dict dir divmod enumerate eval exec filter float format frozenset getattr globals hasattr hash hex id input int isinstance issubclass iter len list locals map max min next object oct open ord pow print range repr reversed round set setattr slice sorted str sum super tuple type vars zip __import__ self".split(" "));
  var TOK = /(#[^\n]*)|([rRbBuUfF]{0,2}(?:"{3}[\s\S]*?(?:"{3}|$)|'{3}[\s\S]*?(?:'{3}|$)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?))|(\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?\b|\b0[xXoObB][\da-fA-F_]+\b)|([A-Za-z_]\w*)/g;
  function highlight(code) {
    var pre = el("pre", {cls: "code"});
    if (code.length > 200000) { pre.textContent = code; return pre; }  // huge: plain text, still inert
    var last = 0, m, prevDef = false;
    TOK.lastIndex = 0;
    while ((m = TOK.exec(code)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(code.slice(last, m.index)));
      var cls = m[1] ? "cm" : m[2] ? "st" : m[3] ? "nu" : (KW.has(m[4]) ? "kw" : prevDef ? "fn" : BI.has(m[4]) ? "bi" : null);
      if (m[4]) prevDef = m[4] === "def" || m[4] === "class"; else prevDef = false;
      pre.appendChild(cls ? el("span", {cls: cls, text: m[0]}) : document.createTextNode(m[0]));
      last = TOK.lastIndex;
      if (m[0].length === 0) TOK.lastIndex++;
    }
    if (last < code.length) pre.appendChild(document.createTextNode(code.slice(last)));
    return pre;
  }

  // ------------------------------------------------------------ leaderboard
  function board() {
    var box = document.getElementById("board");
    clear(box);
    var byTask = {};
    runs.forEach(function (r, i) { (byTask[r.task] = byTask[r.task] || []).push(i); });
    Object.keys(byTask).sort().forEach(function (task) {
      var idx = byTask[task];
      var ks = [];
      idx.forEach(function (i) { Object.keys(runs[i].pass_at_k).forEach(function (k) { if (ks.indexOf(k) < 0) ks.push(k); }); });
      idx.sort(function (x, y) { return (runs[y].pass_at_k["pass@1"] || 0) - (runs[x].pass_at_k["pass@1"] || 0); });
      box.appendChild(el("h3", {text: String(task)}));
      var head = el("tr", null, ["name", "run", "coverage"].concat(ks, ["sandbox", "date (UTC)", "samples"]).map(function (h) { return el("th", {text: h}); }));
      var rows = idx.map(function (i) {
        var r = runs[i];
        var sb = el("td", {text: r.sandbox || "n/a", cls: r.sandbox && r.sandbox.indexOf("local") === 0 ? "unisolated" : ""});
        return el("tr", {"data-run": String(i)}, [el("td", {text: r.name}), el("td", {text: r.run}), el("td", {text: r.coverage, cls: "num"})]
          .concat(ks.map(function (k) { return el("td", {text: pct(r.pass_at_k[k]), cls: "num"}); }),
                  [sb, el("td", {text: r.created}), el("td", {text: String(r.samples.length), cls: "num"})]));
      });
      box.appendChild(el("table", {cls: "board"}, [el("thead", null, [head]), el("tbody", null, rows)]));
    });
  }

  // ------------------------------------------------------------ one sample
  function findings(rows) {
    if (!rows || !rows.length) return el("div", {cls: "meta", text: "security findings: " + (rows ? "none" : "n/a")});
    return el("table", {cls: "findings"}, [el("tr", null, ["severity", "category", "rule", "line", "message"].map(function (h) { return el("th", {text: h}); }))]
      .concat(rows.map(function (f) { return el("tr", null, f.map(function (v) { return el("td", {text: v}); })); })));
  }
  function sampleCard(run, s, extraCls) {
    var task = run.tasks[s[0]];
    var card = el("div", {cls: "sample" + (extraCls ? " " + extraCls : ""), "data-task": task, "data-cid": String(s[1]), "data-outcome": s[2]});
    card.appendChild(el("div", {cls: "head"}, [
      el("strong", {text: task + " #" + s[1]}),
      el("span", {cls: "badge o-" + String(s[2]).replace(/[^a-z_]/g, ""), text: s[2]}),
      el("span", {text: "verdict: " + (s[3] ? "PASS" : "FAIL")}),
      el("span", {cls: "meta", text: typeof s[4] === "number" ? s[4].toFixed(3) + " s" : ""}),
      el("span", {cls: "meta", text: run.name})
    ]));
    var prompt = run.prompts[s[0]];
    if (prompt != null) {
      var d = el("details", null, [el("summary", {text: "prompt"})]);
      d.addEventListener("toggle", function () { if (d.open && d.childNodes.length === 1) d.appendChild(highlight(prompt)); });
      card.appendChild(d);
    }
    card.appendChild(highlight(s[6]));
    if (s[5]) card.appendChild(el("div", null, [el("b", {text: "detail: "}), el("span", {cls: "detail", text: s[5]})]));
    card.appendChild(el("div", {cls: "meta"}, ["imports: " + (s[7] == null ? "n/a" : s[7].length ? s[7].join(", ") : "none") +
      (s[9] === false ? " (outside the allow-list)" : "")]));
    card.appendChild(findings(s[8]));
    return card;
  }
  function pager(box, page, pages, key) {
    clear(box);
    var prev = el("button", {text: "< prev"}), next = el("button", {text: "next >"});
    prev.disabled = page <= 1; next.disabled = page >= pages;
    prev.onclick = function () { var c = {}; c[key] = page - 1; go(c); };
    next.onclick = function () { var c = {}; c[key] = page + 1; go(c); };
    box.appendChild(prev); box.appendChild(document.createTextNode(" page " + page + " of " + pages + " ")); box.appendChild(next);
  }
  function fillSelect(sel, options, value) {
    clear(sel);
    options.forEach(function (o) { var opt = el("option", {text: o[1]}); opt.value = o[0]; sel.appendChild(opt); });
    sel.value = value;
  }

  // ------------------------------------------------------------ the samples view
  function samplesView() {
    var ri = Math.min(Math.max(parseInt(state.run, 10) || 0, 0), runs.length - 1), run = runs[ri];
    fillSelect(document.getElementById("run-select"), runs.map(function (r, i) { return [String(i), r.name + " (" + r.run + ")"]; }), String(ri));
    var counts = {};
    run.samples.forEach(function (s) { counts[s[2]] = (counts[s[2]] || 0) + 1; });
    fillSelect(document.getElementById("outcome-select"), [["", "all (" + run.samples.length + ")"]].concat(Object.keys(counts).sort().map(function (o) { return [o, o + " (" + counts[o] + ")"]; })), state.outcome);
    fillSelect(document.getElementById("task-select"), [["", "all tasks (" + run.tasks.length + ")"]].concat(run.tasks.map(function (t) { return [t, t]; })), state.task);
    var ti = state.task ? run.tasks.indexOf(state.task) : -1;
    var shown = run.samples.filter(function (s) { return (!state.outcome || s[2] === state.outcome) && (!state.task || s[0] === ti); });
    var pages = Math.max(1, Math.ceil(shown.length / PAGE)), page = Math.min(Math.max(parseInt(state.page, 10) || 1, 1), pages);
    pager(document.getElementById("pager"), page, pages, "page");
    document.getElementById("status").textContent = shown.length + " of " + run.samples.length + " samples" +
      (shown.length ? ", showing " + ((page - 1) * PAGE + 1) + "-" + Math.min(page * PAGE, shown.length) : "");
    var box = document.getElementById("samples");
    clear(box);
    shown.slice((page - 1) * PAGE, page * PAGE).forEach(function (s) { box.appendChild(sampleCard(run, s)); });
  }

  // ------------------------------------------------------------ two runs side by side
  function compareView() {
    var opts = runs.map(function (r, i) { return [String(i), r.name + " (" + r.run + ")"]; });
    var ai = Math.min(parseInt(state.a, 10) || 0, runs.length - 1), bi = Math.min(parseInt(state.b, 10) || 0, runs.length - 1);
    fillSelect(document.getElementById("a-select"), opts, String(ai));
    fillSelect(document.getElementById("b-select"), opts, String(bi));
    document.getElementById("flip-select").value = state.show;
    var A = runs[ai], B = runs[bi], index = new Map();
    B.samples.forEach(function (s) { index.set(B.tasks[s[0]] + "\u0000" + s[1], s); });
    var pairs = [], lost = 0, gained = 0;
    A.samples.forEach(function (s) {
      var t = B.samples.length ? index.get(A.tasks[s[0]] + "\u0000" + s[1]) : undefined;
      if (!t) return;
      var kind = s[3] && !t[3] ? "lost" : !s[3] && t[3] ? "gained" : "same";
      if (kind === "lost") lost++; if (kind === "gained") gained++;
      if (state.show === "all" || (state.show === "flipped" && kind !== "same") || state.show === kind) pairs.push([s, t, kind]);
    });
    var pages = Math.max(1, Math.ceil(pairs.length / PAGE)), page = Math.min(Math.max(parseInt(state.cpage, 10) || 1, 1), pages);
    pager(document.getElementById("cpager"), page, pages, "cpage");
    document.getElementById("cstatus").textContent = (A.task !== B.task ? "different tasks (" + A.task + " vs " + B.task + "); " : "") +
      (lost + gained) + " flipped: " + lost + " passed in A and fail in B, " + gained + " fail in A and pass in B; " + pairs.length + " listed";
    var box = document.getElementById("flips");
    clear(box);
    pairs.slice((page - 1) * PAGE, page * PAGE).forEach(function (p) {
      var row = el("div", {cls: "flip " + p[2], "data-task": A.tasks[p[0][0]], "data-cid": String(p[0][1]), "data-kind": p[2]});
      row.appendChild(el("h3", {text: A.tasks[p[0][0]] + " #" + p[0][1] + (p[2] === "lost" ? ": passed in A, fails in B" : p[2] === "gained" ? ": fails in A, passes in B" : "")}));
      row.appendChild(el("div", {cls: "pair"}, [sampleCard(A, p[0]), sampleCard(B, p[1])]));
      box.appendChild(row);
    });
  }

  // ------------------------------------------------------------ wiring
  function tabs() {
    var nav = document.getElementById("tabs");
    clear(nav);
    [["samples", "Samples"], ["compare", "Compare two runs"]].forEach(function (t) {
      if (t[0] === "compare" && runs.length < 2) return;
      var b = el("button", {text: t[1], cls: state.view === t[0] ? "on" : "", "data-view": t[0]});
      b.onclick = function () { go({view: t[0]}); };
      nav.appendChild(b);
    });
  }
  function render() {
    if (state.view === "compare" && runs.length < 2) state.view = "samples";
    tabs();
    document.getElementById("samples-view").hidden = state.view !== "samples";
    document.getElementById("compare-view").hidden = state.view !== "compare";
    if (state.view === "compare") compareView(); else samplesView();
  }
  document.getElementById("run-select").onchange = function (e) { go({run: e.target.value, task: "", outcome: "", page: 1}); };
  document.getElementById("outcome-select").onchange = function (e) { go({outcome: e.target.value, page: 1}); };
  document.getElementById("task-select").onchange = function (e) { go({task: e.target.value, page: 1}); };
  document.getElementById("a-select").onchange = function (e) { go({a: e.target.value, cpage: 1}); };
  document.getElementById("b-select").onchange = function (e) { go({b: e.target.value, cpage: 1}); };
  document.getElementById("flip-select").onchange = function (e) { go({show: e.target.value, cpage: 1}); };

  document.getElementById("title").textContent = DATA.title;
  var total = runs.reduce(function (n, r) { return n + r.samples.length; }, 0);
  document.getElementById("subtitle").textContent = runs.length + " run(s), " + total + " samples; phi-eval " + DATA.version + "; this file fetches nothing";
  board();
  render();
  document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - t0)));
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));  // since navigation
  document.body.setAttribute("data-rendered", "1");
})();
"""
