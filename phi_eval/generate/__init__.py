"""Generators: prompts in, raw model text out.

A backend is imported only when chosen, so `evaluate` never pays for torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenRequest:
    """One sample to draw: (task_id, completion_id) travels with it through every process."""

    task_id: str
    completion_id: int
    prompt: str


@dataclass(frozen=True)
class GenOutput:
    task_id: str
    completion_id: int
    raw: str  # the model's text as decoded, before post-processing


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 1234
    stop: tuple[str, ...] = ()
    # Chat formats: special tokens that end a row as EOS does (the template's end-of-turn, e.g.
    # Phi-3's <|end|>), and prompts rendered by a chat template (whose own BOS, if any, is not doubled).
    stop_tokens: tuple[str, ...] = ()
    templated: bool = False
    batch_size: int | None = None  # None: automatic, backing off on out-of-memory


class Generator(Protocol):
    """A model backend. `on_outputs` is called as batches finish, so callers can append to disk."""

    name: str

    def info(self) -> dict: ...

    def generate(
        self,
        requests: Sequence[GenRequest],
        params: SamplingParams,
        on_outputs: Callable[[list[GenOutput]], None],
    ) -> None: ...
