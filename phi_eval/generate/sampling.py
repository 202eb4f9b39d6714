"""Sampling and stopping, per row, as transformers logits processors and stopping criteria.

Each row's token is drawn with that row's own RNG, seeded from (seed, task_id, completion_id): a
sample does not depend on the batch it landed in, its process, or a resume. A row stops as soon as
its new text holds a stop sequence, found by decoding only the tail of its new tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def sample_seed(seed: int, task_id: str, completion_id: int) -> int:
    """A stable 63-bit seed per sample (Python's hash() is salted per process, so not that)."""
    digest = hashlib.sha256(f"{seed}\x00{task_id}\x00{completion_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StopOnText:
    """Stops a row once its newly generated text contains a stop sequence (or ends in EOS).

    Only the last few tokens of each unfinished row are decoded per step (a stop of L characters
    spans at most L tokens), in one batch_decode call, so the per-step cost stays small.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int, end_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.window = max((len(s) for s in self.stop), default=0) + 2
        self.prompt_len = prompt_len
        self.end_ids = end_ids
        self.done: list[bool] | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        batch = input_ids.shape[0]
        if self.done is None:
            self.done = [False] * batch
        new = input_ids[:, self.prompt_len :]
        tails = new[:, -self.window :].tolist()
        rows = [i for i in range(batch) if not self.done[i]]
        for i in rows:
            if tails[i][-1] in self.end_ids:
                self.done[i] = True
        rows = [i for i in rows if not self.done[i]]
        if self.stop and rows:
            texts = self.tokenizer.batch_decode(
                [tails[i] for i in rows], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            for i, text in zip(rows, texts, strict=True):
                if any(s in text for s in self.stop):
                    self.done[i] = True
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


class RowSampler:
    """Temperature + top-p sampling with one RNG per row, as a logits processor.

    It returns scores that are -inf except at the drawn token, so generate's greedy step picks it;
    each row's draw depends only on its own seed and distribution, never on its batch mates.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        if self.top_p < 1.0:
            before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
            sorted_probs = sorted_probs.masked_fill(before > self.top_p, 0.0)
        cdf = sorted_probs.double().cumsum(dim=-1)
        target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
        pick = torch.searchsorted(cdf, target).clamp(max=cdf.shape[1] - 1)
        token = order.gather(1, pick)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token, 0.0)
