"""Pause Python's cyclic garbage collector while torch, transformers and a model load.

Why: importing torch and transformers and building a model allocate about 360,000 tracked
objects that live until the process exits. The cyclic collector runs every 700 allocations and,
as the heap grows, walks ever larger generations of them (about 900 collections, six of them
full, during one tiny-Phi load) while freeing almost nothing: on the 2-core machine start-up
takes 3.78 s with it and 3.25 s without (medians, `bench/bench_generate.py --mode load-ab`).
So the collector is off while they load; afterwards `gc.freeze()` moves everything that exists
into the permanent generation, which later collections skip, and the collector is turned back
on. Reference counting frees ordinary objects throughout; only cycles wait for the collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collections inside; on leaving, freeze what was allocated and re-enable."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
