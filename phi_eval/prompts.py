"""Problem -> prompt text in a model family's format (the formats on the Phi model cards).

- phi-1:    the code itself (imports, signature, docstring); the model continues the function.
- phi-1.5:  the same code inside an opened ```python fence; the model closes the fence when done.
- phi-2:    the code format (as phi-1); `phi-2-qa` is its "Instruct: ...\\nOutput:" format.
- plain:    the problem's prompt as it is, for any other causal LM.
- chat:     instruct/chat models (Phi-3, Phi-3.5, Phi-4-mini): the task as a user message with
            EvalPlus's instruction, rendered by the tokenizer's own chat template (phi_eval/chat.py);
            the answer is prose with code blocks, so its program is extracted (phi_eval/sanitize.py).
- phi-2-chat: phi-2's card chat format, "Alice: <task>\nBob:", extracted the same way.

Templates come from the task file's `[prompts]` table only (placeholders {prompt}, {text},
{tests}), so a task variant can change a format without code.

MBPP has no code to continue, so its `{prompt}` is built first, in one of two styles:
- "docstring" (default): the task text and its example asserts in a module docstring;
- "3-shot": the community few-shot format (MBPP tasks 2, 3, 4 solved between [BEGIN]/[DONE]);
  the model's answer ends at "[DONE]" (a stop sequence of the task). The family template is
  not applied on top of it: the few-shot text is already a completion-style prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.tasks import Problem, Task

FORMATS = ("auto", "phi-1", "phi-1.5", "phi-2", "phi-2-qa", "plain", "chat", "phi-2-chat")
# Formats whose answer is a chat reply: a whole program is extracted from it, and generation ends
# at the end of the turn (EOS, the template's end-of-turn token, the task's chat_stop), never at the base
# formats' stop sequences, which would cut a reply at its first "\ndef " or "\n```".
CHAT_FORMATS = ("chat", "phi-2-chat")
MBPP_STYLES = ("docstring", "3-shot")

# Templates, stop sequences, the few-shot examples and their template all come from the task file
# (tasks/*.toml): this module has no second copy of any of them.

_PHI_15 = re.compile(r"phi[-_]?1[._]5(?!\d)")
_PHI_1 = re.compile(r"phi[-_]?1(?![\d._])")
_PHI_2 = re.compile(r"phi[-_]?2(?!\d)")
_INSTRUCT = re.compile(r"instruct|chat")


def resolve_format(fmt: str, model_name: str, *, chat_template: bool = False) -> str:
    """`auto` picks the format from the model's id or folder name; anything else is checked and kept.

    `chat_template`: the model's tokenizer carries one. A model with a template whose name says
    instruct or chat is prompted through it (`chat`); a base model with a template is not.
    """
    if fmt not in FORMATS:
        raise PhiEvalError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    name = Path(str(model_name).rstrip("/")).name.lower() or str(model_name).lower()
    if chat_template and _INSTRUCT.search(name):
        return "chat"
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


def _shot_block(template: str, problem: Problem) -> str:
    return template.format(text=problem.prompt, tests="\n".join(problem.test_list))


def mbpp_fewshot_prompt(problem: Problem, shots: Sequence[Problem], template: str) -> str:
    """The community 3-shot MBPP prompt: solved examples, then the task, ending at "[BEGIN]\\n"."""
    examples = "".join(_shot_block(template, s) + s.reference.strip("\n") + "\n[DONE]\n" for s in shots)
    return examples + _shot_block(template, problem)


def load_mbpp_shots(task: Task, data: Path | None = None) -> list[Problem]:
    """The few-shot examples (the task file's few_shot_ids, MBPP's `prompt` split), from the same
    data the run uses."""
    ids = task.few_shot_ids
    if not ids or not task.few_shot_template:
        raise PhiEvalError(f"task {task.name} has no few-shot examples (few_shot_ids, few_shot_template); "
                           "use --mbpp-prompt docstring")
    problems, _ = task.load(data, split="prompt")
    by_id = {p.task_id: p for p in problems}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PhiEvalError(
            f"the MBPP data lacks the few-shot examples {', '.join(missing)}; use the full mbpp.jsonl or "
            "--mbpp-prompt docstring"
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

    For `chat` it is the user message, which phi_eval.chat.render wraps in the model's template.
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
            if fmt in CHAT_FORMATS:
                raise PhiEvalError(
                    f"the 3-shot MBPP prompt is a completion format and cannot be used with --prompt-format "
                    f"{fmt}; use --mbpp-prompt docstring"
                )
            if not shots:
                raise PhiEvalError("the 3-shot MBPP style needs its example problems (the task file's few_shot_ids)")
            return mbpp_fewshot_prompt(problem, shots, task.few_shot_template)
        base = mbpp_docstring_prompt(problem)
    elif problem.plus is not None:
        base = problem.prompt.strip() + "\n"  # EvalPlus's own prompt (evalplus/codegen.py)
    else:
        base = problem.prompt
    if fmt in CHAT_FORMATS:
        base = base.strip()
    template = task.prompts.get(fmt)
    if template is None:
        raise PhiEvalError(f"task {task.name} has no prompt template for {fmt!r}; add one to its [prompts] table")
    try:
        return template.format_map({"prompt": base, "text": problem.prompt, "tests": tests})
    except (KeyError, IndexError, ValueError) as exc:
        raise PhiEvalError(
            f"task {task.name}: prompt template for {fmt!r} is malformed ({exc}); "
            "use only {prompt}, {text}, {tests} and double other braces"
        ) from None


@dataclass(frozen=True)
class PromptSetup:
    """The resolved prompt format of a run and what follows from it (recorded in config.json)."""

    fmt: str
    stop: tuple[str, ...]  # stop sequences of the generated text
    stop_tokens: tuple[str, ...] = ()  # special tokens that end a row as EOS does
    system_prompt: str | None = None
    chat_template_sha256: str | None = None
    tokenizer: Any = None  # renders `chat` prompts

    @property
    def is_chat(self) -> bool:
        return self.fmt in CHAT_FORMATS

    def record(self) -> dict[str, Any]:
        return {"format": self.fmt, "stop": list(self.stop), "stop_tokens": list(self.stop_tokens),
                "system_prompt": self.system_prompt, "chat_template_sha256": self.chat_template_sha256}


def check_system_prompt(fmt: str, system_prompt: str | None) -> None:
    """A system prompt is only for the chat formats (`auto` is judged once resolved)."""
    if system_prompt is not None and not system_prompt.strip():
        raise PhiEvalError("--system-prompt is empty; give it some text or leave it out")
    if system_prompt and fmt not in (*CHAT_FORMATS, "auto"):
        raise PhiEvalError(f"--system-prompt needs a chat format (--prompt-format chat or phi-2-chat), not {fmt!r}")


def prompt_setup(task: Task, fmt: str, model_name: str, tokenizer: Any = None,
                 system_prompt: str | None = None) -> PromptSetup:
    """Resolve `fmt` (auto looks at the name and whether the tokenizer has a chat template) and
    pick the stops: a chat reply ends with its turn (EOS, the template's end-of-turn token), a base
    format's completion at the task's stop sequences."""
    from phi_eval.chat import chat_template, end_of_turn_tokens, template_sha256

    has_template = tokenizer is not None and chat_template(tokenizer) is not None
    fmt = resolve_format(fmt, model_name, chat_template=has_template)
    check_system_prompt(fmt, system_prompt)
    if fmt == "chat":
        if not has_template:
            raise PhiEvalError(
                "--prompt-format chat needs a tokenizer with a chat template and this model's has none; "
                "use a base format (phi-1, phi-2, plain) or phi-2-chat"
            )
        return PromptSetup(fmt, task.chat_stop.get(fmt, ()), end_of_turn_tokens(tokenizer), system_prompt,
                           template_sha256(tokenizer), tokenizer)
    if fmt in CHAT_FORMATS:
        return PromptSetup(fmt, task.chat_stop.get(fmt, ()), (), system_prompt)
    return PromptSetup(fmt, tuple(task.stop))


def render_prompt(setup: PromptSetup, text: str) -> str:
    """The prompt the model sees for build_prompt's `text`: for `chat` the user message rendered by
    the tokenizer's template (with the system prompt), for `phi-2-chat` after the system prompt's line."""
    if setup.fmt == "chat":
        from phi_eval.chat import render

        return render(setup.tokenizer, text, setup.system_prompt)
    return f"{setup.system_prompt}\n{text}" if setup.system_prompt else text
