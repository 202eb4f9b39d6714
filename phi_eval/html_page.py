"""The static part of report.html: the page, its style sheet and its script, with no data in them.

html_report.py fills in the data (as inert JSON) and the page's title; everything here is the same
for every report. The script builds the page only with textContent/createTextNode (never markup),
so model-written text in the data cannot run; the Content-Security-Policy hashes this script.
"""

PAGE = """<!DOCTYPE html>
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

CSS = """
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

JS = r"""
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
