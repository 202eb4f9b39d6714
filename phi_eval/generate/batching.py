"""Batch planning: how many rows each decoding batch gets.

Prompts are sorted by token length and left-padded, so a batch wastes little on padding. Sizes are
planned up front: as many rows as fit, spread evenly, so no small last batch decodes alone; on CPU
a token cap gives long prompts fewer rows."""

from __future__ import annotations

from collections.abc import Sequence

AUTO_BATCH_START = {"cpu": 64, "cuda": 64}  # rows per decoding batch before any out-of-memory back-off
# CPU decoding is bound by reading the KV cache, so a CPU batch also holds at most this many tokens
# per row on average (rows x (prompt + new tokens)); long prompts get fewer rows. None: no such cap.
TOKENS_PER_ROW = {"cpu": 256, "cuda": None}


def batch_sizes(lengths: Sequence[int], max_rows: int, max_tokens: int | None, new_tokens: int) -> list[int]:
    """Consecutive batch sizes over prompt lengths sorted longest first.

    A batch has at most `max_rows` rows and, with `max_tokens`, rows x (its longest prompt + new
    tokens) <= max_tokens (but at least one row). The count is the fewest batches that fit; rows are
    then spread evenly over them, so no small last batch decodes for max_new_tokens steps alone.
    """

    def cap(i: int) -> int:
        if max_tokens is None:
            return max_rows
        return max(1, min(max_rows, max_tokens // (lengths[i] + new_tokens)))

    fewest, i = 0, 0
    while i < len(lengths):
        i += cap(i)
        fewest += 1
    sizes: list[int] = []
    i = 0
    while i < len(lengths):
        left = max(1, fewest - len(sizes))
        sizes.append(min(cap(i), -(-(len(lengths) - i) // left)))
        i += sizes[-1]
    return sizes


def plan(lengths: Sequence[int], batch_size: int | None, auto_rows: int | None, device_type: str,
         new_tokens: int) -> list[int]:
    """Batch sizes for prompts of `lengths`: --batch-size as given, else balanced automatic batches
    of at most `auto_rows` rows (the device's start before any out-of-memory back-off)."""
    if batch_size is not None:
        return [batch_size] * -(-len(lengths) // batch_size)
    rows = auto_rows or AUTO_BATCH_START.get(device_type, 16)
    per_row = TOKENS_PER_ROW.get(device_type)
    return batch_sizes(lengths, rows, per_row * rows if per_row else None, new_tokens)
