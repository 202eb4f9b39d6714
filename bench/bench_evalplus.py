"""Whole-command throughput of `phi-eval evaluate --task mbpp-plus` against evalplus 0.3.1's
`evalplus.evaluate`, on the same samples, the same data file and the same number of workers.

Samples: each chosen MBPP+ task's canonical solution and its mutants (tests/evalplus_support.py:
wrong return, body cut short, a redefined entry point that is wrong or raises on large inputs,
float noise).  Each side runs twice as a whole process; the second run is timed, when both have
their expected outputs cached (phi-eval's per data hash, evalplus's pickle).  Prints both wall
times, the ratio, and whether every sample's base and plus verdicts agree.  evalplus's process
also waits up to 20 s at exit for its "stuck" watchdog thread; the time until it has written its
results is printed beside the whole-process time, and the ratio against it too.

    .venv/bin/python bench/bench_evalplus.py [--tasks 399] [--workers 2] [--canonical-only]

evalplus comes from PHI_EVAL_EVALPLUS_PYTHON (default: this interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from evalplus_support import (  # noqa: E402
    MBPP_PLUS,
    evalplus_python,
    mbpp_subset,
    read_jsonl,
    samples_for,
    write_jsonl,
)


def timed(cmd: list[str], env: dict[str, str], result: Path | None = None) -> tuple[float, float]:
    """(whole-process seconds, seconds until `result` appeared) for one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    seen = None
    while proc.poll() is None:
        if seen is None and result is not None and result.exists():
            seen = time.perf_counter() - start
        time.sleep(0.02)
    whole = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[2:4]} failed ({proc.returncode}): {proc.stderr.read()[-1500:]}")
    return whole, seen if seen is not None else whole


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=399, help="the first N MBPP+ tasks (default all 399)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--canonical-only", action="store_true", help="only the canonical solutions")
    args = ap.parse_args()
    python = evalplus_python()
    if python is None:
        print("evalplus 0.3.1 is not importable; pip install evalplus==0.3.1 or set PHI_EVAL_EVALPLUS_PYTHON",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-evalplus-") as tmp_name:
        tmp = Path(tmp_name)
        ids = [r["task_id"] for r in read_jsonl(MBPP_PLUS)][: args.tasks]
        data = mbpp_subset(tmp / "MbppPlus.jsonl", ids)
        rows = read_jsonl(data)
        samples = samples_for(rows)
        if args.canonical_only:
            samples = [s for s in samples if s["kind"] == "canonical"]
        path = write_jsonl(tmp / "samples.jsonl", samples)
        print(f"{len(samples)} samples over {len(rows)} MBPP+ tasks, {args.workers} workers")

        ep_env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "evalplus-cache"), "MBPP_OVERRIDE_PATH": str(data)}
        ep_result = tmp / "samples_eval_results.json"
        ep_cmd = [python, "-m", "evalplus.evaluate", "--dataset", "mbpp", "--samples", str(path),
                  "--parallel", str(args.workers), "--i_just_wanna_run"]
        phi_env = {**os.environ, "PYTHONPATH": str(ROOT), "PHI_EVAL_CACHE": str(tmp / "phi-cache")}

        def phi_cmd(out: str) -> list[str]:
            return [sys.executable, "-m", "phi_eval", "evaluate", str(path), "--task", "mbpp-plus", "--data",
                    str(data), "--out", str(tmp / out), "--workers", str(args.workers)]

        times: dict[str, list[tuple[float, float]]] = {"phi-eval": [], "evalplus": []}
        for attempt in (1, 2):  # the first run of each side computes (and caches) expected outputs
            ep_result.unlink(missing_ok=True)
            times["evalplus"].append(timed(ep_cmd, ep_env, ep_result))
            times["phi-eval"].append(timed(phi_cmd(f"run{attempt}"), phi_env))
            print(f"run {attempt}: phi-eval {times['phi-eval'][-1][0]:.1f} s, evalplus "
                  f"{times['evalplus'][-1][0]:.1f} s (results written at {times['evalplus'][-1][1]:.1f} s)")

        theirs = json.loads(ep_result.read_text())["eval"]
        ours: dict[str, list[dict]] = {}
        for r in read_jsonl(tmp / "run2" / "results.jsonl"):
            ours.setdefault(r["task_id"], []).append(r)
        seen: dict[str, int] = {}
        differ = []
        for s in samples:
            i = seen.get(s["task_id"], 0)
            seen[s["task_id"]] = i + 1
            t, o = theirs[s["task_id"]][i], ours[s["task_id"]][i]
            want = (t["base_status"] == "pass", t["base_status"] == t["plus_status"] == "pass")
            if want != (o["passed_base"], o["passed"]):
                differ.append((s["task_id"], s["kind"]))
        phi, (ep_whole, ep_written) = times["phi-eval"][1][0], times["evalplus"][1]
        print(f"second runs: phi-eval {phi:.1f} s, evalplus {ep_whole:.1f} s whole process "
              f"({ep_written:.1f} s until its results were written)")
        print(f"ratio evalplus / phi-eval: {ep_whole / phi:.2f}x whole process, {ep_written / phi:.2f}x "
              "to evalplus's results")
        print(f"verdicts (base, plus) equal for {len(samples) - len(differ)} of {len(samples)} samples"
              + (f"; differ: {differ[:10]}" if differ else ""))
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
