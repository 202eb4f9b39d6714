"""Raw model text -> the completion that gets executed. Pure string work, no model, no I/O.

The raw text is what the model wrote after the prompt (the prompt itself is never in it). Steps:
1. formats that may open their own code fence (phi-2-qa, plain) lose a leading ```python line;
2. an echo of the problem's code at the start (QA formats repeat the prompt) is removed;
3. inside a fence (phi-1.5's prompt opens one, or step 1 found one) the text ends at the closing ```;
4. the text ends at the earliest stop sequence (MBPP's 3-shot answer ends at "[DONE]");
5. trailing whitespace goes, leaving one newline. Leading whitespace stays: it is the body's indent.

Chat formats (chat, phi-2-chat) answer in prose with code blocks: `chat_program` cuts the answer at
its stop sequences and extracts the whole program it means (phi_eval/sanitize.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FENCE = "```"
_OPENING_FENCE = re.compile(r"\A[ \t]*\n*[ \t]*```[A-Za-z0-9_+-]*[ \t]*\n")
# Formats whose answer may come wrapped in a fence the prompt did not open.
_MAY_OPEN_FENCE = ("phi-2-qa", "plain")


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text before the earliest occurrence of any stop sequence (empty stops are ignored)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if -1 < i < cut:
                cut = i
    return text[:cut]


def strip_echo(text: str, echo: str | None) -> str:
    """Drop `echo` (the problem's code) when the text starts by repeating it, ignoring blank lines around."""
    if not echo or not echo.strip():
        return text
    body = text.lstrip("\n")
    if body.startswith(echo):
        return body[len(echo) :]
    stripped = echo.rstrip()
    if body.startswith(stripped):
        rest = body[len(stripped) :]
        return rest[1:] if rest.startswith("\n") else rest
    return text


def postprocess(raw: str, stop: Sequence[str], fmt: str, *, echo: str | None = None) -> str:
    """The completion for `raw`. `echo`: the problem's own code, removed if the model repeats it."""
    text = raw.replace("\r\n", "\n")
    fenced = fmt == "phi-1.5"
    if fmt in _MAY_OPEN_FENCE:
        opened = _OPENING_FENCE.match(text)
        if opened:
            text, fenced = text[opened.end() :], True
    text = strip_echo(text, echo)
    if fenced:
        end = text.find(FENCE)
        if end != -1:
            text = text[:end]
    text = cut_at_stop(text, stop)
    text = text.rstrip()
    return text + "\n" if text else ""


def chat_program(
    raw: str, stop: Sequence[str], entry_point: str | None, tests: Sequence[str] = (), context: str = ""
) -> str:
    """The program in a chat answer: the code block holding the entry point (HumanEval's, or the
    functions MBPP's tests call), its imports and helpers. `context`: the problem's own code."""
    from phi_eval.sanitize import entry_points_of, extract_program

    answer = cut_at_stop(raw.replace("\r\n", "\n"), stop)
    return extract_program(answer, entry_points_of(entry_point, tests), context=context)
