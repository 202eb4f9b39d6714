"""Per-sample cost of phi_eval.checks.analyze on the 164 HumanEval canonical solutions.

Baseline, in the same process: bandit the naive library way, a fresh BanditManager per sample
(what a straightforward integration does), against our cached-test-set bandit pass; the full
analyze() (bandit + own rules + imports + API check) is printed too.

    .venv/bin/python bench/bench_checks.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings


def _naive_bandit(source: str) -> int:
    from bandit.core import config, manager

    mgr = manager.BanditManager(config.BanditConfig(), "file", ignore_nosec=True)
    mgr._parse_file("./completion.py", io.BytesIO(source.encode("utf-8", "replace")), ["./completion.py"])
    return len(mgr.results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from phi_eval.checks import analyze
    from phi_eval.checks.security import bandit_findings
    from phi_eval.tasks import get_task

    problems, _ = get_task("humaneval").load()
    programs = [(p.prompt, p.reference) for p in problems]
    analyze("x = 1\n")  # build the cached bandit test set outside the timing
    _naive_bandit("x = 1\n")

    def timed(fn) -> float:  # noqa: ANN001
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for prompt, completion in programs:
                fn(prompt, completion)
            best = min(best, time.perf_counter() - start)
        return best / len(programs) * 1000

    ours = timed(lambda p, c: analyze(c, prompt=p))
    cached = timed(lambda p, c: bandit_findings(p + c))
    naive = timed(lambda p, c: _naive_bandit(p + c))
    flagged = sum(bool(analyze(c, prompt=p)["security"]) for p, c in programs)
    print(f"samples: {len(programs)}  flagged: {flagged}")
    print(f"analyze (all checks, cached bandit): {ours:.2f} ms/sample")
    print(f"bandit only, cached test set (our bandit_findings): {cached:.2f} ms/sample")
    print(f"baseline bandit only, BanditManager per sample: {naive:.2f} ms/sample")
    print(f"ratio baseline/cached bandit: {naive / cached:.2f}x")


if __name__ == "__main__":
    main()
