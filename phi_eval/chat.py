"""What a tokenizer's chat template says: the rendered prompt, its end-of-turn token, its hash.

The template (Jinja, shipped in tokenizer_config.json / chat_template.jinja) is the model's own
contract for how a conversation looks; phi-eval renders the task through it with
`apply_chat_template(..., add_generation_prompt=True)` rather than imitating it by hand. The
end-of-turn token is read off the template too: render a conversation whose assistant turn is a
marker, and the first special token after the marker is what the model emits when its turn ends
(Phi-3, Phi-3.5, Phi-4-mini: `<|end|>`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from phi_eval.errors import PhiEvalError

_MARK = "-[[phi-eval-answer]]-"


def chat_template(tokenizer: Any) -> str | None:
    """The tokenizer's default chat template text, None when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one renders chats
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def template_sha256(tokenizer: Any) -> str | None:
    template = chat_template(tokenizer)
    return hashlib.sha256(template.encode()).hexdigest() if template else None


def messages(user: str, system: str | None = None, answer: str | None = None) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": user})
    if answer is not None:
        out.append({"role": "assistant", "content": answer})
    return out


def _apply(tokenizer: Any, conversation: list[dict[str, str]], generation_prompt: bool) -> str:
    if chat_template(tokenizer) is None:
        raise PhiEvalError(
            "--prompt-format chat needs a tokenizer with a chat template and this model's has none; "
            "use a base format (phi-1, phi-2, plain) or phi-2-chat"
        )
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as exc:  # noqa: BLE001 - a template raises jinja's own errors, e.g. "System role not supported"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "; drop --system-prompt" if any(m["role"] == "system" for m in conversation) else ""
        raise PhiEvalError(f"the model's chat template failed to render the prompt ({first}){hint}") from None
    if not isinstance(text, str):
        raise PhiEvalError("the model's chat template did not render to text")
    return text


def render(tokenizer: Any, user: str, system: str | None = None) -> str:
    """The prompt text: the conversation so far, ending where the assistant's answer begins."""
    return _apply(tokenizer, messages(user, system), generation_prompt=True)


def render_exchange(tokenizer: Any, user: str, answer: str, system: str | None = None) -> tuple[str, str]:
    """(prompt, completion) for training: the completion is what the template puts after the
    prompt for this answer, end-of-turn tokens included, so training ends turns as inference does."""
    prompt = render(tokenizer, user, system)
    whole = _apply(tokenizer, messages(user, system, answer), generation_prompt=False)
    if whole.startswith(prompt):
        return prompt, whole[len(prompt) :]
    ends = end_of_turn_tokens(tokenizer)
    return prompt, answer + (ends[0] if ends else "")


def _special_tokens(tokenizer: Any) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            specials.add(str(added))
    return sorted(specials, key=len, reverse=True)


def end_of_turn_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The special token the template writes right after an assistant's answer (empty if none)."""
    try:
        whole = _apply(tokenizer, messages("u", None, _MARK), generation_prompt=False)
    except PhiEvalError:
        return ()
    at = whole.find(_MARK)
    if at == -1:
        return ()
    tail = whole[at + len(_MARK) :]
    found = [(tail.find(tok), tok) for tok in _special_tokens(tokenizer) if tok and tok in tail]
    if not found:
        return ()
    return (min(found)[1],)
