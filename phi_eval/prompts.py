"""Problem -> prompt text in a model family's format (the formats on the Phi model cards).

- phi-1:    the code itself (imports, signature, docstring); the model continues the function.
- phi-1.5:  the same code inside an opened ```python fence; the model closes the fence when done.
- phi-2:    the code format (as phi-1); `phi-2-qa` is its "Instruct: ...\\nOutput:" format.
- plain:    the problem's prompt as it is, for any other causal LM.

Templates come from the task file's `[prompts]` table (placeholders {prompt}, {text}, {tests}),
falling back to DEFAULT_TEMPLATES, so a task variant can change a format without code.

MBPP has no code to continue, so its `{prompt}` is built first, in one of two styles:
- "docstring" (default): the task text and its example asserts in a module docstring;
- "3-shot": the community few-shot format (MBPP tasks 2, 3, 4 solved between [BEGIN]/[DONE]);
  the model's answer ends at "[DONE]" (a stop sequence of the task). The family template is
  not applied on top of it: the few-shot text is already a completion-style prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from phi_eval.errors import PhiEvalError
from phi_eval.tasks import Problem, Task

FORMATS = ("auto", "phi-1", "phi-1.5", "phi-2", "phi-2-qa", "plain")
MBPP_STYLES = ("docstring", "3-shot")
MBPP_SHOT_IDS = ("Mbpp/2", "Mbpp/3", "Mbpp/4")  # the examples the community 3-shot format uses

# Used when a task file has no template for a format. {prompt}: code (HumanEval) or the MBPP
# docstring; {text}: the bare task text; {tests}: the example asserts, one per line.
DEFAULT_TEMPLATES: dict[str, str] = {
    "phi-1": "{prompt}",
    "phi-1.5": "```python\n{prompt}",
    "phi-2": "{prompt}",
    # The code is repeated after "Output:" so the model continues the body, as in the code format.
    "phi-2-qa": "Instruct: Complete the following Python function.\n{prompt}Output:\n{prompt}",
    "plain": "{prompt}",
}

MBPP_SHOT_TEMPLATE = (
    "You are an expert Python programmer, and here is your task: {text} "
    "Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"
)

_PHI_15 = re.compile(r"phi[-_]?1[._]5(?!\d)")
_PHI_1 = re.compile(r"phi[-_]?1(?![\d._])")
_PHI_2 = re.compile(r"phi[-_]?2(?!\d)")


def resolve_format(fmt: str, model_name: str) -> str:
    """`auto` picks the family from the model's id or folder name; anything else is checked and kept."""
    if fmt not in FORMATS:
        raise PhiEvalError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    name = Path(str(model_name).rstrip("/")).name.lower() or str(model_name).lower()
    if _PHI_15.search(name):
        return "phi-1.5"
    if _PHI_1.search(name):
        return "phi-1"
    if _PHI_2.search(name):
        return "phi-2"
    return "plain"


def mbpp_docstring_prompt(problem: Problem) -> str:
    """MBPP's default prompt: the task text and its example tests in a docstring (the model writes the code)."""
    tests = "\n".join(problem.test_list)
    return f'"""\n{problem.prompt}\n{tests}\n"""\n'


def _shot_block(problem: Problem) -> str:
    return MBPP_SHOT_TEMPLATE.format(text=problem.prompt, tests="\n".join(problem.test_list))


def mbpp_fewshot_prompt(problem: Problem, shots: Sequence[Problem]) -> str:
    """The community 3-shot MBPP prompt: solved examples, then the task, ending at "[BEGIN]\\n"."""
    examples = "".join(_shot_block(s) + s.reference.strip("\n") + "\n[DONE]\n" for s in shots)
    return examples + _shot_block(problem)


def load_mbpp_shots(
    task: Task, data: Path | None = None, ids: Sequence[str] = MBPP_SHOT_IDS
) -> list[Problem]:
    """The few-shot examples (MBPP's `prompt` split, tasks 2-4), from the same data the run uses."""
    problems, _ = task.load(data, split="prompt")
    by_id = {p.task_id: p for p in problems}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PhiEvalError(
            f"the MBPP data lacks the few-shot examples {', '.join(missing)}; use the full mbpp.jsonl or "
            "--mbpp-style docstring"
        )
    return [by_id[i] for i in ids]


def build_prompt(
    task: Task,
    problem: Problem,
    fmt: str,
    *,
    mbpp_style: str | None = None,
    shots: Sequence[Problem] | None = None,
) -> str:
    """The text the model continues. `fmt` must be resolved already (see resolve_format).

    For MBPP problems (entry_point is None) `mbpp_style` defaults to the task's
    `generation.prompt_style`; "3-shot" needs `shots` (see load_mbpp_shots).
    """
    if fmt == "auto":
        raise PhiEvalError("prompt format 'auto' must be resolved with resolve_format(fmt, model) first")
    if fmt not in FORMATS:
        raise PhiEvalError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")
    tests = "\n".join(problem.test_list)
    if problem.entry_point is None:
        style = mbpp_style or task.prompt_style
        if style not in MBPP_STYLES:
            raise PhiEvalError(f"unknown MBPP prompt style {style!r}; choose one of {', '.join(MBPP_STYLES)}")
        if style == "3-shot":
            if not shots:
                raise PhiEvalError("the 3-shot MBPP style needs its example problems (MBPP tasks 2, 3, 4)")
            return mbpp_fewshot_prompt(problem, shots)
        base = mbpp_docstring_prompt(problem)
    elif problem.plus is not None:
        base = problem.prompt.strip() + "\n"  # EvalPlus's own prompt (evalplus/codegen.py)
    else:
        base = problem.prompt
    template = task.prompts.get(fmt, DEFAULT_TEMPLATES[fmt])
    try:
        return template.format_map({"prompt": base, "text": problem.prompt, "tests": tests})
    except (KeyError, IndexError, ValueError) as exc:
        raise PhiEvalError(
            f"task {task.name}: prompt template for {fmt!r} is malformed ({exc}); "
            "use only {prompt}, {text}, {tests} and double other braces"
        ) from None
