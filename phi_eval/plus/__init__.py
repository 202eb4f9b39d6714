"""EvalPlus's benchmarks (HumanEval+ and MBPP+) scored with evalplus 0.3.1's own rules.

- data.py: the release file (--data, or downloaded once and cached) -> Problems with their inputs,
  MBPP+'s per-task input deserialisation included;
- groundtruth.py: the expected outputs and reference times, from each task's canonical solution
  on the host (trusted code, never the candidate's), cached per data file hash;
- checker.py: the trusted test code a sample's two jobs run (base inputs, extra inputs), each in
  its own candidate process as EvalPlus runs them, with EvalPlus's comparison rules and limits, in
  the environment evalplus gives a sample (its stdin, stdout, disabled functions, stack and
  recursion depth: the sandbox's `evalplus` environment, sandbox/runner/envs.py).
"""
