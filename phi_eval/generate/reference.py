"""The `reference` model: each task's own canonical solution, so the harness can check itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from phi_eval.generate import GenOutput, GenRequest, SamplingParams
from phi_eval.tasks import Problem


class ReferenceGenerator:
    name = "reference"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self._by_id = {p.task_id: p for p in problems}

    def info(self) -> dict:
        return {"model": "reference", "backend": "reference", "note": "each task's canonical solution"}

    def generate(
        self,
        requests: Sequence[GenRequest],
        params: SamplingParams,
        on_outputs: Callable[[list[GenOutput]], None],
    ) -> None:
        on_outputs([GenOutput(r.task_id, r.completion_id, self._by_id[r.task_id].reference) for r in requests])
