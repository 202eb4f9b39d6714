"""Expected outputs and reference times: each task's canonical solution on every input, on the host.

This is trusted code (the benchmark's own solutions), run the way evalplus 0.3.1's trusted_exec
runs it: per part (base, extra) the program `prompt + canonical_solution` in fresh empty globals,
then each input deep-copied and its call alone timed (wall clock), one task after another in a
process of its own.  It never runs in the sandbox, and no sandbox ever writes the cache: one JSON file per data file
hash under the cache folder, written atomically by this process only, holding the encoded outputs
(see checker.encode) so a second run does not recompute them.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.files import write_text
from phi_eval.plus.checker import encode_expected
from phi_eval.plus.data import PlusData, cache_root

# MBPP+ tasks whose output EvalPlus cannot store: it keeps only whether it is not None
# (evalplus/eval/_special_oracle.py, MBPP_OUTPUT_NOT_NONE_TASKS).
OUTPUT_NOT_NONE = frozenset({"check_str", "text_match_three", "text_starta_endb"})
CACHE_FORMAT = 2  # 2: the program run afresh per part, the parts timed one after another


def cache_file(sha256: str) -> Path:
    return cache_root() / "evalplus" / "expected" / f"{sha256}.json"


def _part(task_id: str, program: str, entry_point: str, part: str, inputs: tuple, not_none: bool) -> dict[str, Any]:
    """One part's outputs and times, as evalplus's trusted_exec makes them: the program run afresh
    in empty globals (so a memo the solution keeps starts empty, and `__name__` is not
    "__main__"), then every input in order, each deep-copied, its call alone timed."""
    globs: dict[str, Any] = {}
    try:
        exec(compile(program, f"<{task_id} canonical solution>", "exec"), globs)
        fn = globs[entry_point]
    except BaseException as exc:  # noqa: BLE001 - reported as bad data, with its cause
        return {"error": f"its canonical solution does not run ({type(exc).__name__}: {exc})"}
    values, times = [], []
    for i, inp in enumerate(inputs):
        args = copy.deepcopy(inp)
        try:
            start = time.perf_counter()
            value = fn(*args)
            times.append(time.perf_counter() - start)
        except BaseException as exc:  # noqa: BLE001
            return {"error": f"its canonical solution raised {type(exc).__name__} on {part} input #{i}: {exc}"}
        values.append(encode_expected(value is not None if not_none else value))
    return {part: values, f"{part}_time": times}


def _run_task(task_id: str, entry_point: str, plus: PlusData) -> dict[str, Any]:
    """One task's outputs and reference times."""
    not_none = plus.dataset == "mbpp" and entry_point in OUTPUT_NOT_NONE
    out: dict[str, Any] = {}
    for part, inputs in (("base", plus.base_input), ("plus", plus.plus_input)):
        res = _part(task_id, plus.program, entry_point, part, inputs, not_none)
        if "error" in res:
            return res
        out.update(res)
    return out


def _run_tasks(items: Sequence[tuple[str, str, PlusData]]) -> list[dict[str, Any]]:
    return [_run_task(*it) for it in items]


def expected_outputs(items: Sequence[tuple[str, str, PlusData]], sha256: str,
                     say: Any = None) -> dict[str, dict[str, Any]]:
    """task_id -> {"base", "base_time", "plus", "plus_time"} for `items` (task_id, entry_point,
    PlusData), from the cache where it has them; what is missing is computed and added.

    The reference times decide the samples' time limits, so they are taken as evalplus takes
    them: in one process of their own, one task after another, with nothing of this run beside
    them (a pool of workers would time each solution beside the others, and a loaded machine
    stretches a wall-clock time: every limit derived from it would loosen)."""
    path = cache_file(sha256)
    cached: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") == CACHE_FORMAT:
                cached = data["tasks"]
        except (OSError, ValueError, KeyError, TypeError):
            cached = {}  # unreadable: recompute, then replace it
    missing = [it for it in items if it[0] not in cached]
    if missing:
        if say:
            say(f"computing EvalPlus expected outputs for {len(missing)} tasks (once per data file)")
        import multiprocessing

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = pool.submit(_run_tasks, missing).result()
        for (task_id, _, _), res in zip(missing, results, strict=True):
            if "error" in res:
                raise PhiEvalError(f"{task_id}: {res['error']}; is this EvalPlus data?")
            cached[task_id] = res
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"format": CACHE_FORMAT, "tasks": cached}))  # atomic: a second run reads all or none
    return {task_id: cached[task_id] for task_id, _, _ in items}
