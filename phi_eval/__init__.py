"""phi-eval: evaluate Phi code models on HumanEval and MBPP with sandboxed, unforgeable verdicts."""

__version__ = "0.1.0"
