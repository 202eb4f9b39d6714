"""Entry point: `python3 -I -S -u <this folder> [--uids T,C[,N]] [--zygote FD] [--sweep UIDS]`.

Each mode imports only its own part of the package: `--zygote` (the runner execs it) loads
zygote.py and what it needs, never the test side; `--sweep` loads sweep.py; the runner loads the
orchestrator.  Afterwards sys.path is as `-I` left it for a script (neither this folder nor its
parent on it), so a candidate's imports resolve exactly as before the runner was a package.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == _HERE:  # Python adds a run folder's own path
    del sys.path[0]


def _load(name: str):  # noqa: ANN202 - a module
    """runner.<name>, imported from beside this file, writing no bytecode cache into it."""
    saved = sys.dont_write_bytecode
    sys.path.insert(0, os.path.dirname(_HERE))
    sys.dont_write_bytecode = True
    try:
        __import__(f"runner.{name}")
        return sys.modules[f"runner.{name}"]
    finally:
        sys.dont_write_bytecode = saved
        del sys.path[0]


def _parse_uids(text: str) -> tuple[int, int, int]:
    """`T,C[,N]`: the test process's uid, then N candidate uids from C (one per sample, in turn)."""
    parts = [int(p) for p in text.split(",")]
    t, c, n = (parts + [1])[:3] if len(parts) in (2, 3) else (0, 0, 0)
    if n < 1 or min(t, c) <= 0 or c <= t < c + n:
        raise ValueError("--uids needs T,C[,N]: a non-root test uid outside N candidate uids from C")
    return t, c, n


def _parse_uid_list(text: str) -> frozenset[int]:
    """`U1,U2,A-B,...` for --sweep."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def main(argv: list[str]) -> int:
    uids: tuple[int, int, int] | None = _load("common").DEFAULT_UIDS
    zygote_fd = None
    i = 0
    while i < len(argv):
        if argv[i] == "--uids":
            uids = _parse_uids(argv[i + 1])
            i += 2
        elif argv[i] == "--zygote":
            zygote_fd = int(argv[i + 1])
            i += 2
        elif argv[i] == "--sweep":  # host-side cleanup after a runner was killed: --sweep U1,A-B,...
            return _load("sweep").sweep_uids(_parse_uid_list(argv[i + 1]))
        else:
            print(f"runner: unknown argument {argv[i]!r}", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        uids = None  # cannot switch uids: T and C share ours (announced in the ready line)
    for name in _load("preload").PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    if zygote_fd is not None:
        _load("zygote").zygote_main(zygote_fd, uids)
        return 0
    _load("orchestrator").serve(uids)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
