"""EvalPlus release files -> Problems: where the file comes from, and how its inputs are read.

A file is EvalPlus's jsonl (or .jsonl.gz): one task a line with `task_id`, `prompt`, `entry_point`,
`canonical_solution`, `base_input`, `plus_input`, `atol` (and `contract`, which evalplus 0.3.1
uses only when generating inputs, never when evaluating: every input in the file is evaluated).
Without --data the release named in the task file is downloaded once into the cache.
"""

from __future__ import annotations

import gzip
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.files import read_data_jsonl

REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
RELEASE_URL = "https://github.com/evalplus/{repo}_release/releases/download/{version}/{name}.jsonl.gz"


@dataclass(frozen=True)
class PlusData:
    """What the EvalPlus checker needs of one task, beyond the Problem's prompt and entry point."""

    dataset: str  # "humaneval" or "mbpp": EvalPlus's name, which selects its special oracles
    program: str  # prompt + canonical_solution: the code the expected outputs come from
    base_input: tuple  # each an argument list, already deserialised (MBPP+: tuples, sets, complex)
    plus_input: tuple
    atol: float


def cache_root() -> Path:
    """phi-eval's cache: $PHI_EVAL_CACHE, else $XDG_CACHE_HOME/phi-eval, else ~/.cache/phi-eval."""
    if os.environ.get("PHI_EVAL_CACHE"):
        return Path(os.environ["PHI_EVAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "phi-eval"


def release_path(source: dict[str, Any]) -> Path:
    """The cached release file, downloaded on first use (one clear line where that cannot be done)."""
    name, version = source["release"], source["version"]
    path = cache_root() / "evalplus" / f"{name}-{version}.jsonl.gz"
    if path.is_file():
        return path
    url = RELEASE_URL.format(repo=name.lower(), version=version, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
        with gzip.open(tmp, "rb") as fh:  # a proxy's error page is not a release file
            fh.read(1)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - any network or file failure becomes one line
        tmp.unlink(missing_ok=True)
        why = getattr(exc, "reason", None) or exc
        raise PhiEvalError(
            f"cannot download {name} {version} from {url} ({why}); pass --data PATH/{name}.jsonl[.gz] to run offline"
        ) from None
    return path


def version_of(path: Path, source: dict[str, Any]) -> str | None:
    """The release version: the task file's for the downloaded file, else one named in the file name."""
    if path.parent == cache_root() / "evalplus":
        return source.get("version")
    match = re.search(r"v\d+\.\d+\.\d+", path.name)
    return match.group(0) if match else None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """An EvalPlus release file's rows, each checked for the fields the tasks need."""
    rows = read_data_jsonl(path)
    for lineno, row in enumerate(rows, 1):
        missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
        if missing:
            raise PhiEvalError(
                f"{path}: row {lineno} lacks {', '.join(missing)}; is this an EvalPlus file "
                "(HumanEvalPlus.jsonl or MbppPlus.jsonl)?"
            )
    if not rows:
        raise PhiEvalError(f"{path} holds no tasks")
    return rows


# ------------------------------------------------------------ MBPP+ input deserialisation
# JSON has no tuples, sets or complex numbers, so EvalPlus stores those arguments as lists and
# strings and rebuilds them per task when it loads the file (evalplus/data/mbpp.py). The same
# rules, task by task:

_ARGS_TUPLES = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
                740, 744, 809}  # every argument a tuple
_ARGS_LISTS_OF_TUPLES = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_FIRST_LIST_OF_TUPLES = {75, 413, 444, 753}  # first argument a list of tuples, second as is
_SECOND_TUPLE = {106, 750}
_FIRST_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_TUPLES_OF_TUPLES = {259, 401, 445}
_ALL_TUPLES = {580, 615, 791}  # every list at any depth a tuple


def _deep_tuple(x: Any) -> Any:
    return tuple(_deep_tuple(e) for e in x) if isinstance(x, list) else x


def _mbpp_args(n: int, inp: list) -> Any:
    """One input (argument list) of MBPP task `n`, with EvalPlus's types."""
    if n in _ARGS_TUPLES:
        return [tuple(a) for a in inp]
    if n in _ARGS_LISTS_OF_TUPLES:
        return [[tuple(x) for x in a] for a in inp]
    if n in _FIRST_LIST_OF_TUPLES:
        return [[tuple(x) for x in inp[0]], inp[1]]
    if n in _SECOND_TUPLE:
        return [inp[0], tuple(inp[1])]
    if n == 115:  # a list of sets; an empty one is stored (and rebuilt by EvalPlus) as {}
        return [[set(x) if isinstance(x, list) and len(x) else {} for x in inp[0]]]
    if n == 124:
        return (float(inp[0]), complex(inp[1]))
    if n in _FIRST_TUPLE:
        return [tuple(inp[0]), inp[1]]
    if n in _TUPLES_OF_TUPLES:
        return [tuple(tuple(x) for x in a) for a in inp]
    if n == 278:
        return [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])]
    if n == 307:
        return [tuple(inp[0]), inp[1], inp[2]]
    if n == 722:
        return [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]]
    if n == 252:
        return [complex(inp[0])]
    if n in _ALL_TUPLES:
        return _deep_tuple(inp)
    return inp


def deserialise(dataset: str, task_id: str, inputs: list) -> tuple:
    """The file's inputs for one task as the arguments EvalPlus passes (MBPP+: rebuilt types)."""
    if dataset != "mbpp":
        return tuple(inputs)
    n = int(task_id.split("/")[-1])
    return tuple(_mbpp_args(n, inp) for inp in inputs)
