"""The HTML report as a person sees it: opened from disk in headless Chromium, no network.

Each check reads the DOM after the page's script ran (`--dump-dom` with a virtual time budget); the
view is chosen through the URL #hash that the page honours.  Chromium is Debian's `chromium`
package; without it these tests skip on a workstation and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from phi_eval import html_report
from phi_eval.html_report import render_html
from phi_eval.report import write_run_report
from phi_eval.runfolder import read_run

RUNS = Path(__file__).resolve().parent / "data" / "runs"
GOOD, BAD = RUNS / "humaneval-reference", RUNS / "humaneval-tiny-broken"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing: scripts/setup.sh installs Debian's chromium package for the tests")
    pytest.skip("chromium not installed (apt-get install chromium); CI=true makes this a failure")


def dump(page: Path, fragment: str = "") -> str:
    """The rendered DOM of a file opened in a fresh headless Chromium profile."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
             page.resolve().as_uri() + (f"#{fragment}" if fragment else "")],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """Just enough of the rendered DOM: every element's attributes, the text under some ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag not in ("meta", "br", "input", "img", "link"):
            self._open.append(a.get("id") or (tag if tag == "title" else None))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in self._open:
            if key:
                self.text[key] = self.text.get(key, "") + data

    def having(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if cls in a.get("class", "").split()]

    def body(self) -> dict[str, str]:
        return next(a for t, a in self.elements if t == "body")


def page(tmp_path: Path, runs: list[Path], name: str = "board.html", **kw: object) -> Path:
    out = tmp_path / name
    out.write_text(render_html([read_run(r) for r in runs], title="test board", **kw), encoding="utf-8")
    return out


# ---------------------------------------------------------------- static: nothing to fetch


def test_page_is_self_contained(tmp_path: Path) -> None:
    text = page(tmp_path, [GOOD, BAD]).read_text()
    dom = Dom(text)
    fetching = [(t, a) for t, a in dom.elements if {"src", "href"} & a.keys() or t in ("link", "iframe", "img")]
    assert fetching == []
    (csp,) = [a["content"] for t, a in dom.elements if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1]
    block = re.search(r'<script type="application/json" id="phi-eval-data">(.*?)</script>', text, re.S)
    assert block and "<" not in block.group(1) and ">" not in block.group(1)
    assert json.loads(block.group(1))["runs"][1]["run"] == "humaneval-tiny-broken"


# ---------------------------------------------------------------- in a browser


def test_run_folder_report_html_renders_every_sample_a_page_at_a_time(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(BAD, run)
    write_run_report(run)
    dom = Dom(dump(run / "report.html"))
    assert dom.body().get("data-rendered") == "1"
    assert len(dom.having("sample")) == 50  # page 1 of 120 samples
    assert dom.text["status"].startswith("120 of 120 samples")
    last = Dom(dump(run / "report.html", "page=3"))
    assert len(last.having("sample")) == 20
    # Every field a reader needs is on the card: highlighted completion, verdict, detail, imports.
    html = dump(run / "report.html", "outcome=timeout")
    assert '<span class="cm"># sample' in html and "verdict: FAIL" in html and "no verdict within 10.0 s" in html
    assert "imports: " in html and "security findings" in html


def test_filters_change_what_is_shown(tmp_path: Path) -> None:
    board = page(tmp_path, [GOOD, BAD])
    timeouts = json.loads((BAD / "metrics.json").read_text())["outcomes"]["timeout"]
    dom = Dom(dump(board, "run=1&outcome=timeout"))
    cards = dom.having("sample")
    assert len(cards) == timeouts and {c["data-outcome"] for c in cards} == {"timeout"}
    dom = Dom(dump(board, "run=1&task=HumanEval/3"))
    cards = dom.having("sample")
    assert len(cards) == 10 and {c["data-task"] for c in cards} == {"HumanEval/3"}
    everything = Dom(dump(board, "run=1"))
    assert len(everything.having("sample")) == 50 and len({c["data-outcome"] for c in everything.having("sample")}) > 1
    # The leaderboard lists both runs.
    assert {a["data-run"] for t, a in everything.elements if t == "tr" and "data-run" in a} == {"0", "1"}


def test_two_runs_side_by_side_list_what_flipped(tmp_path: Path) -> None:
    from run_variants import variant

    def flip(r: dict) -> None:
        if (r["task_id"], r["completion_id"]) == ("HumanEval/7", 3):
            r.update(passed=False, outcome="runtime_error", detail="ZeroDivisionError")

    flipped = variant(tmp_path / "flipped", source="humaneval-reference", edit=flip)
    board = page(tmp_path, [GOOD, flipped])
    dom = Dom(dump(board, "view=compare&a=0&b=1"))
    (row,) = dom.having("flip")
    assert (row["data-task"], row["data-cid"], row["data-kind"]) == ("HumanEval/7", "3", "lost")
    assert dom.text["cstatus"].startswith("1 flipped: 1 passed in A and fail in B")
    assert len(dom.having("sample")) == 2  # the two sides of the one flipped sample
    back = Dom(dump(board, "view=compare&a=1&b=0&show=gained"))
    assert [r["data-kind"] for r in back.having("flip")] == ["gained"]


# ---------------------------------------------------------------- model text never runs


def _hostile(tmp_path: Path) -> Path:
    from run_variants import XSS, variant

    def edit(r: dict) -> None:
        r["completion"] = XSS + "\n" + r["completion"]
        r["detail"] = XSS
        r["imports"] = [XSS]
        r["security"] = [{"category": XSS, "severity": "high", "rule": XSS, "line": 1, "message": XSS}]
        if r["task_id"] == "HumanEval/0":
            r["task_id"] = "HumanEval/0" + XSS

    return variant(tmp_path / "hostile", edit=edit)


def _pwned(html: str) -> bool:
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    return (title is not None and title.group(1) == "pwned") or "data-pwned" in html.split("<body", 1)[1][:200]


@pytest.mark.parametrize("csp", [True, False], ids=["with-csp", "escaping-alone"])
def test_injected_script_does_not_run(tmp_path: Path, csp: bool) -> None:
    board = page(tmp_path, [_hostile(tmp_path)], csp=csp)
    html = dump(board)
    assert not _pwned(html)
    assert re.search(r"<title>test board</title>", html)
    dom = Dom(html)
    assert len(dom.having("sample")) == 50
    # The payload is on the page as text (the serialiser writes a text "<" as &lt;).
    assert "&lt;img src=x onerror=" in html and "&lt;/script&gt;&lt;script&gt;document.title" in html
    assert not [a for t, a in dom.elements if t == "img" or "onerror" in a]


def test_controls_show_each_wall_stops_a_real_attack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the JSON escaping, the payload's </script> ends the data block and its script runs;
    with markup instead of text nodes, its onerror handler runs.  The CSP alone stops both."""
    hostile = _hostile(tmp_path)
    plain_json = lambda obj: json.dumps(obj, ensure_ascii=False)  # noqa: E731
    monkeypatch.setattr(html_report, "script_json", plain_json)
    assert _pwned(dump(page(tmp_path, [hostile], "raw-json.html", csp=False)))
    assert not _pwned(dump(page(tmp_path, [hostile], "raw-json-csp.html", csp=True)))
    monkeypatch.undo()

    as_markup = html_report.JS.replace('e.textContent = attrs[k]', 'e.innerHTML = attrs[k]')
    assert as_markup != html_report.JS
    monkeypatch.setattr(html_report, "JS", as_markup)
    assert _pwned(dump(page(tmp_path, [hostile], "markup.html", csp=False)))
    assert not _pwned(dump(page(tmp_path, [hostile], "markup-csp.html", csp=True)))
