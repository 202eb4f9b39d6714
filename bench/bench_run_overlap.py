"""`phi-eval run` (execution overlapped with generation) against `generate` followed by `evaluate`.

The tiny Phi of the tests (tests/tiny_phi.py; hidden 64, 2 layers, vocab 512 by default), n samples
per HumanEval task at temperature 0.8, 2 workers. Each side is whole processes (the sequential side is
two: generate, then evaluate its samples.jsonl), alternated, the first side swapping every repeat.
Both sides must produce the same samples and the same verdicts.

    .venv/bin/python bench/bench_run_overlap.py [--n 20] [--repeats 3] [--limit L] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHI_EVAL = str(Path(sys.executable).parent / "phi-eval")
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from phi_eval.files import iter_jsonl  # noqa: E402


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def _rows(path: Path, keys: tuple[str, ...]) -> list[tuple]:
    rows = iter_jsonl(path)  # lines end at \n only: model text may hold U+2028 and the like
    return sorted(tuple(r[k] for k in keys) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first L HumanEval tasks")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=512)
    args = parser.parse_args()

    from tiny_phi import build_tiny_phi

    with tempfile.TemporaryDirectory(prefix="bench-run-overlap-") as name:
        tmp = Path(name)
        model = build_tiny_phi(tmp / "model", vocab_size=args.vocab, hidden_size=args.hidden, layers=args.layers)
        common = ["--task", "humaneval", "--model", str(model), "--n", str(args.n),
                  "--max-new-tokens", str(args.max_new_tokens)]
        if args.limit:
            common += ["--limit", str(args.limit)]
        overlapped, sequential = [], []
        for rep in range(args.repeats):
            run_dir, gen_dir, eval_dir = tmp / f"run{rep}", tmp / f"gen{rep}", tmp / f"eval{rep}"
            sides = ["run", "seq"] if rep % 2 == 0 else ["seq", "run"]
            for side in sides:
                if side == "run":
                    overlapped.append(_timed([PHI_EVAL, "run", *common, "--workers", str(args.workers),
                                              "--out", str(run_dir)]))
                else:
                    took = _timed([PHI_EVAL, "generate", *common, "--out", str(gen_dir)])
                    took += _timed([PHI_EVAL, "evaluate", str(gen_dir / "samples.jsonl"), "--task", "humaneval",
                                    "--workers", str(args.workers), "--out", str(eval_dir)])
                    sequential.append(took)
            keys = ("task_id", "completion_id", "completion")
            assert _rows(run_dir / "samples.jsonl", keys) == _rows(gen_dir / "samples.jsonl", keys), "samples differ"
            keys = ("task_id", "completion_id", "passed", "outcome")
            assert _rows(run_dir / "results.jsonl", keys) == _rows(eval_dir / "results.jsonl", keys), "verdicts differ"
        samples = sum(1 for _ in iter_jsonl(tmp / "run0" / "samples.jsonl"))
    ratio = statistics.median(sequential) / statistics.median(overlapped)
    print(f"{samples} samples (n={args.n}), tiny Phi hidden {args.hidden}, {args.layers} layers; same samples and "
          f"verdicts on both sides")
    print(f"run (overlapped):      {[round(x, 2) for x in overlapped]} s")
    print(f"generate + evaluate:   {[round(x, 2) for x in sequential]} s")
    print(f"ratio (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
