"""What every process of the runner imports or runs once before it forks: the preloaded modules,
the stdlib modules a child may import before its privilege drop, and the warm-up."""

from __future__ import annotations

import json
import pickle
import re
import sys

# Modules a candidate imported that the tests may name (e.g. `math.isclose` in MBPP asserts): the
# test process imports its own copy; anything else stays a proxy.
SAFE_MODULES = frozenset(
    "math cmath re string collections itertools functools heapq bisect operator statistics fractions "
    "decimal random datetime copy array struct typing numbers enum textwrap".split()
)
# Imported once here so that forked children get them for free (no per-sample imports), and so
# tests and candidates can use them where the interpreter's own files are unreadable to the
# sandbox uids (a Python installed under /root, in local mode).
# Only light modules: fork time grows with the parent's memory (about 35 us per MB on a small VM).
PRELOAD = (
    "typing",
    "math",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "random",
    "copy",
    "operator",
)
# Stdlib modules a child may import *before* it drops root when its source names them (side-effect
# free ones only): the rest are imported after the drop as usual.
PREIMPORT_OK = SAFE_MODULES | frozenset(
    "hashlib json abc dataclasses io time unicodedata binascii base64 zlib queue threading pprint difflib "
    "calendar keyword sys os".split()
)
_IMPORT_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+([A-Za-z_][\w.]*)[ \t]+import|import[ \t]+([A-Za-z_][\w. \t,]*))", re.M
)


def _preimport_names(source: str) -> list[str]:
    """The allow-listed stdlib modules `source` names that are not imported yet.

    C imports them while still root: locally the interpreter's files may be unreadable to the
    sandbox uids (a Python under /root); importing before the drop (trusted stdlib code, before any
    untrusted code runs) makes `import hashlib` work there too, and costs nothing extra where it
    would be imported anyway.  Computed in C itself, from its own program, before the drop.
    """
    out = []
    for match in _IMPORT_RE.finditer(source):
        names = [match.group(1)] if match.group(1) else match.group(2).split(",")
        for name in names:
            name = name.split()[0] if name.split() else ""
            if name.split(".")[0] in PREIMPORT_OK and name not in sys.modules and name not in out:
                out.append(name)
    return out



_WARM_SOURCE = '''
from typing import List
import math
def _w(xs: List[int], k: int = 2) -> list:
    """doc"""
    out = [x * k for x in xs if x % 2 == 0]
    d = {str(i): (i, [i], {i}) for i in range(3)}
    try:
        assert sum(out) >= 0, f"{out!r} {d}"
    except (ValueError, KeyError) as exc:
        raise RuntimeError(str(exc)) from None
    while k > 0:
        k -= 1
    return sorted(out, key=lambda v: -v)
class _C:
    def __init__(self, a):
        self.a = a
def check(candidate):
    assert candidate([1, 2, 3]) == [4]
    assert abs(math.sqrt(4.0) - 2.0) < 1e-6
check(_w)
'''


def _warm_up() -> None:
    """Do once, before any fork, what every child does once: a process's first compile, exec,
    json and pickle fill caches; done here, each forked child starts warm (measured: a child's
    first compile drops from ~1.6 ms to ~0.6 ms of CPU)."""
    exec(compile(_WARM_SOURCE, "<warm-up>", "exec"), {"__name__": "__warm__"})
    json.loads(json.dumps({"a": [1, 2.5, None, "x"], "b": {"c": True}}))
    pickle.loads(pickle.dumps(("call", "f", (1, [2], {"k": 3}), {}), protocol=pickle.HIGHEST_PROTOCOL))

