"""Data parallelism under `accelerate launch` / torchrun: every process takes its share of each
round of batches; the main process gathers the outputs (each carries its (task_id, completion_id))
and reports them, once each.

The main process's request list is the run's: the others get it by one broadcast, so a process
that read the run folder at another moment (rank 0 may be clearing it under --force) cannot split
a different list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from phi_eval.generate import GenOutput, GenRequest

Item = TypeVar("Item")


def main_requests(state: Any, requests: Sequence[GenRequest]) -> list[GenRequest]:
    """The main process's request list, on every process (one broadcast)."""
    from accelerate.utils import broadcast_object_list

    box = [list(requests) if state.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def run_rounds(
    state: Any,
    items: list[Item],
    round_rows: int,
    run_share: Callable[[list[Item], Callable[[list[GenOutput]], None]], None],
    on_outputs: Callable[[list[GenOutput]], None],
    advance: Callable[[int], None],
) -> None:
    """Rounds of `round_rows` rows per process: each process runs its share, the main process
    reports what the gather brings (a duplicate, from the padding of an uneven split, once)."""
    from accelerate.utils import gather_object

    seen: set[tuple[str, int]] = set()
    round_size = round_rows * state.num_processes
    for lo in range(0, len(items), round_size):
        local: list[GenOutput] = []
        with state.split_between_processes(items[lo : lo + round_size]) as mine:
            run_share(list(mine), local.extend)
        gathered = gather_object(local)
        if state.is_main_process:
            fresh = []
            for out in gathered:
                key = (out.task_id, out.completion_id)
                if key not in seen:
                    seen.add(key)
                    fresh.append(out)
            if fresh:
                on_outputs(fresh)
            advance(len(fresh))
    state.wait_for_everyone()
