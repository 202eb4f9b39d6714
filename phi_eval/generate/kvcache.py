"""A key/value cache written in place and filled by a shared, chunked prefill, for `generate`.

Why this exists (measured in bench/bench_generate.py):
- transformers' DynamicCache grows by `torch.cat`, copying every row's keys and values on every
  decoding step. At the batch sizes that make CPU decoding fast, that copying cost more than the
  model. Here each layer's keys and values live in one buffer sized for prompt + new tokens, and
  a step writes only its new column; attention reads the same values, so tokens are unchanged.
- Prefill and decoding want different batch shapes: prefill cost grows with rows x padded width
  (and attention with width squared), decoding wants many rows per step. So prompts are prefilled
  in small chunks, each distinct prompt once (n samples of a prompt share its prefill), and the
  results are placed left-padded into the decoding batch's buffer.
- A prefill forward needs only the keys and values, so it ends as soon as the last layer has
  stored them: that layer's attention output and MLP, the final norm and the logits are skipped.
- `generate` then receives a cache holding all but each row's last prompt token (the documented
  way to reuse a prompt cache) and decodes as usual: stopping criteria, logits processors and the
  model's own attention code all stay transformers'.

The fast path needs transformers' layered cache API (DynamicLayer, 4.56+) and a model whose cache
is made only of plain (non-sliding) layers; `supports_prefilled_cache` says whether it applies.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any


class UnsupportedCache(Exception):
    """The model's cache turned out not to be plain per-layer keys/values; use generate's own."""


def cache_kwarg(model: Any) -> str | None:
    """The name the model's forward takes its cache by: `cache` (transformers 5.24+) or
    `past_key_values` (before); None when it takes neither."""
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def prefill_unsupported_reason(model: Any) -> str | None:
    """None when the fast path applies: the model's default cache is all plain DynamicLayers and its
    forward takes position_ids and a cache argument; else why not, in a few words."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return "this transformers has no layered cache API (DynamicLayer, 4.56+)"
    try:
        cache = DynamicCache(config=model.config)
    except Exception as exc:  # noqa: BLE001 - older or unusual cache classes: use the plain path
        return f"DynamicCache(config=...) failed for this model ({type(exc).__name__})"
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return "the model's cache has layers other than plain DynamicLayers (sliding window or similar)"
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return "the model's forward takes no position_ids"
    if cache_kwarg(model) is None:
        return "the model's forward takes neither `cache` nor `past_key_values`"
    return None


def supports_prefilled_cache(model: Any) -> bool:
    """Whether the in-place, chunked-prefill cache applies to `model` (see prefill_unsupported_reason)."""
    return prefill_unsupported_reason(model) is None


def _buffer_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A DynamicLayer whose keys/values are views of preallocated buffers, grown in place."""

        def __init__(self, keys: Any, values: Any, length: int) -> None:
            super().__init__()
            self.key_buffer, self.value_buffer, self.length = keys, values, length
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True
            self._expose()

        def _expose(self) -> None:
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:  # already initialised
            return None

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            end = self.length + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:
                raise RuntimeError(f"KV buffer of {self.key_buffer.shape[-2]} positions overflowed")
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self.length = end
            self._expose()
            return self.keys, self.values

    return BufferLayer


class _LastLayerStored(Exception):
    """Raised by the prefill's cache once the last layer's keys and values are stored."""


def _prefill_cache_class() -> type:
    from transformers.cache_utils import DynamicCache

    class StopAfterLastLayer(DynamicCache):
        """A DynamicCache that ends the prefill forward right after the last layer stores its keys/values.

        A prefill needs only the cache: the last layer's attention output and MLP, the final norm
        and the logits feed nothing that is kept. Stopping there is exact (the stored keys and values
        are the ones a full forward stores) and saves about one layer of the prefill's work.
        """

        def update(
            self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
        ) -> Any:
            out = super().update(key_states, value_states, layer_idx, *args, **kwargs)
            if layer_idx == len(self.layers) - 1:
                raise _LastLayerStored
            return out

    return StopAfterLastLayer


class PrefillCache:
    """Builds, batch after batch, a prefilled in-place cache; buffers are reused across batches."""

    def __init__(self, model: Any, pad_id: int, chunk_tokens: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.chunk_tokens = chunk_tokens
        params = inspect.signature(model.forward).parameters
        self.extra: dict[str, Any] = {}
        if "logits_to_keep" in params:  # the prefill needs no logits at all; skip the full vocab matmul
            self.extra["logits_to_keep"] = 1
        elif "num_logits_to_keep" in params:
            self.extra["num_logits_to_keep"] = 1
        self._storage: list[tuple[Any, Any]] = []
        self._layer_class = _buffer_layer_class()
        self._cache_class = _prefill_cache_class()
        self.kwarg = cache_kwarg(model) or "past_key_values"  # what forward and generate take it as

    def _buffers(self, rows: int, capacity: int, layers: Sequence[Any]) -> list[tuple[Any, Any]]:
        """Per layer (keys, values) of shape [rows, heads, capacity, dim], views of reused storage.

        Keys and values are sized separately (some attention variants give them different widths).
        """
        import torch

        shapes = [
            ((rows, layer.keys.shape[1], capacity, layer.keys.shape[3]),
             (rows, layer.values.shape[1], capacity, layer.values.shape[3]))
            for layer in layers
        ]  # fmt: skip
        sizes = [(math.prod(k), math.prod(v)) for k, v in shapes]
        like = layers[0].keys
        fits = len(self._storage) == len(layers) and all(
            ks.numel() >= kn and vs.numel() >= vn and ks.dtype == like.dtype and ks.device == like.device
            for (ks, vs), (kn, vn) in zip(self._storage, sizes, strict=True)
        )
        if not fits:
            self._storage = []  # let the old storage go before the new is allocated
            self._storage = [
                (torch.empty(kn, dtype=like.dtype, device=like.device),
                 torch.empty(vn, dtype=like.dtype, device=like.device))
                for kn, vn in sizes
            ]  # fmt: skip
        return [
            (ks[:kn].view(kshape), vs[:vn].view(vshape))
            for (ks, vs), (kn, vn), (kshape, vshape) in zip(self._storage, sizes, shapes, strict=True)
        ]

    @staticmethod
    def _rows(rows: list[int], device: Any) -> Any:
        """An index for batch `rows`: a slice when they are consecutive (nearly always), so writes
        through it are plain strided copies, several times faster than index_put; else a tensor."""
        import torch

        first = rows[0]
        if rows == list(range(first, first + len(rows))):
            return slice(first, first + len(rows))
        return torch.tensor(rows, device=device)

    def _place(
        self,
        buffers: list[tuple[Any, Any]],
        layers: Sequence[Any],
        rows: list[int],
        copies: list[int],
        lo: int,
        hi: int,
    ) -> None:
        """Write a chunk's keys/values (chunk row i repeated copies[i] times) to batch `rows`, columns [lo, hi).

        Columns left of `lo` are this chunk's padding: masked, but they must hold finite values.
        """
        import torch

        device = buffers[0][0].device
        source = None
        if any(c != 1 for c in copies):  # n samples of one prompt share its prefilled row
            source = torch.arange(len(copies), device=device).repeat_interleave(
                torch.tensor(copies, device=device)
            )
        target = self._rows(rows, device)
        for (keys, values), layer in zip(buffers, layers, strict=True):
            for buffer, new in ((keys, layer.keys), (values, layer.values)):
                buffer[target, :, :lo] = 0
                buffer[target, :, lo:hi] = new if source is None else new.index_select(0, source)

    def buffers(self) -> list[tuple[Any, Any]]:
        """Each layer's (keys, values) storage, reused from batch to batch: what a check may poison
        to show that no stale position ever reaches a token."""
        return list(self._storage)

    def build(self, prompts: Sequence[Sequence[int]], width: int, capacity: int) -> Any:
        """A cache for rows `prompts` (left-padded to `width`) holding every prompt token but the last.

        `capacity` is width + max_new_tokens; `generate` is then called with the full padded ids.
        """
        import torch
        from transformers.cache_utils import DynamicCache

        device = self.model.device
        distinct = list(dict.fromkeys(tuple(p) for p in prompts))
        where = {p: i for i, p in enumerate(distinct)}
        rows_of: list[list[int]] = [[] for _ in distinct]
        for row, p in enumerate(prompts):
            rows_of[where[tuple(p)]].append(row)
        buffers: list | None = None
        start = 0
        while start < len(distinct):
            span = max(len(distinct[start]) - 1, 1)  # distinct is sorted longest first
            stop = min(len(distinct), start + max(1, self.chunk_tokens // span))
            chunk = [p[:-1] for p in distinct[start:stop]]
            w = max(len(p) for p in chunk)
            rows = [r for d in range(start, stop) for r in rows_of[d]]
            if w == 0:  # one-token prompts: nothing to prefill, all their cached positions are padding
                if buffers is not None:  # (sorted longest first, so a longer prompt allocated them)
                    target = self._rows(rows, device)
                    for keys, values in buffers:
                        keys[target, :, : width - 1] = 0
                        values[target, :, : width - 1] = 0
                start = stop
                continue
            ids = torch.full((len(chunk), w), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), w), dtype=torch.long)
            for i, p in enumerate(chunk):
                if p:
                    ids[i, w - len(p) :] = torch.tensor(p, dtype=torch.long)
                    mask[i, w - len(p) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            chunk_cache = self._cache_class(config=self.model.config)
            try:
                self.model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    use_cache=True,
                    **{self.kwarg: chunk_cache},
                    **self.extra,
                )
            except _LastLayerStored:
                pass  # every layer's keys and values are in chunk_cache; the rest of the forward is not needed
            layers = getattr(chunk_cache, "layers", None)
            if not layers or any(getattr(layer, "keys", None) is None for layer in layers):
                raise UnsupportedCache("the model's cache does not hold keys and values for every layer")
            if buffers is None:
                buffers = self._buffers(len(prompts), capacity, layers)
            copies = [len(rows_of[d]) for d in range(start, stop)]
            self._place(buffers, layers, rows, copies, width - 1 - w, width - 1)
            del chunk_cache, layers
            start = stop
        cache = DynamicCache(config=self.model.config)
        if buffers is not None:
            cache.layers = [self._layer_class(k, v, width - 1) for k, v in buffers]
        return cache
