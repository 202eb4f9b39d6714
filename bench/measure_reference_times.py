"""Measure each task's reference time: the slowest of R runs of its canonical solution in the sandbox.

The Docker executor parks a sample only once it has run PARK_FACTOR x this long (and never before
its floor; phi_eval/sandbox/parking.py), so a correct solution somewhat slower than the canonical
one keeps its core. Writes tasks/reference_times.json. Parking is off while measuring. A loaded
machine gives larger times, which only makes parking later (safer for slow correct solutions).

    .venv/bin/python bench/measure_reference_times.py [--repeats 3] [--workers 2]
        [--mbpp-data ../shared/data/mbpp/mbpp.jsonl]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(task_name: str, data: Path | None, repeats: int, workers: int) -> dict[str, float]:
    from phi_eval.jobs import build_job
    from phi_eval.sandbox.docker import DockerExecutor
    from phi_eval.tasks import get_task

    task = get_task(task_name)
    problems, _ = task.load(data, "all" if task.loader == "mbpp" else None)
    jobs = [build_job(task, p, p.reference, i)
            for i in range(repeats) for p in problems]
    slowest: dict[str, float] = {}
    failed: list[str] = []

    def on_result(result) -> None:
        task_id = result.id.rsplit("#", 1)[0]
        slowest[task_id] = max(slowest.get(task_id, 0.0), result.duration_s)
        if not result.passed:
            failed.append(result.id)

    with DockerExecutor(workers=workers) as executor:
        executor.park = False
        executor.run(jobs, on_result)
    if failed:
        print(f"{task_name}: {len(failed)} reference runs did not pass (kept, e.g. {failed[:3]})", file=sys.stderr)
    return {k: round(v, 4) for k, v in slowest.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mbpp-data", type=Path, default=None, help="mbpp.jsonl; without it only HumanEval")
    parser.add_argument("--out", type=Path, default=ROOT / "tasks" / "reference_times.json")
    args = parser.parse_args()

    times = measure("humaneval", None, args.repeats, args.workers)
    if args.mbpp_data:
        times |= measure("mbpp", args.mbpp_data, args.repeats, args.workers)
    record = {
        "about": "slowest of `repeats` sandbox runs of each task's canonical solution (seconds); "
                 "used to decide when a still-running sample is parked (phi_eval/sandbox/parking.py)",
        "command": " ".join(["bench/measure_reference_times.py", *sys.argv[1:]]),
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "repeats": args.repeats,
        "workers": args.workers,
        "reference_s": dict(sorted(times.items(), key=lambda kv: (kv[0].split("/")[0], int(kv[0].split("/")[1])))),
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(times)} tasks -> {args.out}; slowest {max(times.values()):.3f} s")


if __name__ == "__main__":
    main()
