"""Token-by-token decoding over a prefilled in-place cache, without generate()'s per-step bookkeeping.

Why: once the prompt is in the cache (generate/kvcache.py) each step is one forward of one token
per row. transformers' `generate()` wraps that step in general machinery (re-deriving inputs and
positions from the whole sequence, growing the mask by concatenation, dispatching on the
generation config) that costs about a millisecond per step on the 2-core CPU, roughly a tenth of a
64-row step of the benchmark's model (bench/bench_generate.py). This loop does what generate's
greedy loop does, in the same order: the model's logits for the last position, the logits
processors, argmax, the pad token for rows that have finished, the stopping criteria; the batch
ends as soon as every row has stopped.

It is used only where generate() would do nothing more: `plain_generation_config` checks that the
model's own generation config sets no option that shapes the logits or the search (a repetition
penalty, say); otherwise hf.py calls generate(). tests/test_generate_hf.py compares the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# Generation-config entries that cannot change what greedy decoding with our own processors picks:
# token ids, bookkeeping, and sampling settings (generate is always called with do_sample=False).
NEUTRAL_KEYS = {
    "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
    "_from_model_config", "transformers_version", "use_cache", "max_length", "max_new_tokens",
    "do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
    "num_beams", "output_attentions", "output_hidden_states",
}  # fmt: skip


def plain_generation_config(model: Any) -> bool:
    """True when the model's generation config asks for nothing beyond greedy decoding."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return True
    diff = config.to_diff_dict()
    if diff.get("output_attentions") or diff.get("output_hidden_states") or diff.get("num_beams", 1) != 1:
        return False
    return set(diff) <= NEUTRAL_KEYS


def decode(
    model: Any,
    cache: Any,
    input_ids: Any,
    attention_mask: Any,
    max_new_tokens: int,
    processors: Sequence[Callable[[Any, Any], Any]],
    stopping: Callable[[Any, Any], Any],
    pad_id: int,
    forward_kwargs: dict[str, Any] | None = None,
) -> Any:
    """New tokens, [rows, steps taken]; `cache` holds every prompt token but the last.

    `input_ids`/`attention_mask` are the left-padded prompts; `stopping(ids, scores)` gets the
    prompts plus the tokens so far and returns which rows are done (as generate's criteria do).
    `forward_kwargs` go to every forward (e.g. logits_to_keep=1: only the last position's logits).
    """
    import torch

    rows, width = input_ids.shape
    device = input_ids.device
    ids = torch.full((rows, width + max_new_tokens), pad_id, dtype=input_ids.dtype, device=device)
    ids[:, :width] = input_ids
    mask = torch.ones((rows, width + max_new_tokens), dtype=attention_mask.dtype, device=device)
    mask[:, :width] = attention_mask
    position = attention_mask.sum(-1, keepdim=True) - 1  # the last prompt token's position in its row
    unfinished = torch.ones(rows, dtype=torch.bool, device=device)
    extra = forward_kwargs or {}
    step = 0
    while step < max_new_tokens:
        end = width + step  # tokens in each row so far; the last one is fed now
        out = model(
            input_ids=ids[:, end - 1 : end],
            attention_mask=mask[:, :end],
            position_ids=position + step,
            past_key_values=cache,
            cache_position=torch.tensor([end - 1], device=device),
            use_cache=True,
            **extra,
        )
        scores = out.logits[:, -1, :].to(dtype=torch.float32, copy=True)
        del out
        so_far = ids[:, :end]
        for processor in processors:
            scores = processor(so_far, scores)
        token = scores.argmax(dim=-1)
        token = torch.where(unfinished, token, pad_id)
        ids[:, end] = token
        step += 1
        unfinished &= ~stopping(ids[:, : end + 1], scores)
        if not bool(unfinished.any()):
            break
    return ids[:, width : width + step]
