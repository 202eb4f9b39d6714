"""Problem -> prompt text in a model family's format (the model cards' own formats).

Owned by generation; this first version is the minimum the rest of the pipeline builds on.
"""

from __future__ import annotations

from phi_eval.tasks import Problem, Task

FORMATS = ("auto", "phi-1", "phi-1.5", "phi-2", "phi-2-qa", "plain")


def resolve_format(fmt: str, model_name: str) -> str:
    """`auto` picks the family from the model's name; anything else is taken as given."""
    if fmt != "auto":
        return fmt
    name = model_name.lower().replace("_", ".")
    if "phi-1.5" in name:
        return "phi-1.5"
    if "phi-1" in name:
        return "phi-1"
    if "phi-2" in name:
        return "phi-2"
    return "plain"


def mbpp_docstring_prompt(problem: Problem) -> str:
    """MBPP's default prompt: the task text and its example tests in a docstring."""
    tests = "\n".join(problem.test_list)
    return f'"""\n{problem.prompt}\n{tests}\n"""\n'


def build_prompt(task: Task, problem: Problem, fmt: str) -> str:
    base = problem.prompt if problem.entry_point is not None else mbpp_docstring_prompt(problem)
    template = task.prompts.get(fmt, "{prompt}")
    return template.format(prompt=base, text=problem.prompt, tests="\n".join(problem.test_list))
