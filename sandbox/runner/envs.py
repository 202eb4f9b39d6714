"""Named environments a job may ask its candidate process to start in (the job's `env` field).

An environment is the setting a benchmark's reference harness gives a sample, not a defence (the
sandbox is that): applied in C after the privilege drop, right before the program runs.  It is
fixed code of this package, imported by the zygote before it forks (never sample data), so a C
pays only for applying it, not for compiling it: as a prefix compiled into each program it cost
~1.7 ms of CPU per process here, most of it page faults after the fork.

`evalplus`: evalplus 0.3.1 runs a sample's program in a process set up by its `reliability_guard`
and `swallow_io` (evalplus/eval/utils.py): stdout and stderr go to a write-only buffer and reading
stdin raises OSError; `open`, `exit`, `quit` and `help` are None, as are os's functions that change
files, processes or the working directory; `resource`, `psutil`, `joblib`, `ipdb` and `tkinter`
cannot be imported; the stack may grow to 4 GiB.  A program that reads its input, writes a file or
calls os.getcwd() therefore fails there, where the sandbox alone would let it pass.  The depth a
call starts at differs too: evalplus calls the function deeper than the sandbox does (under `fire`,
its process pool and its fork), and Python's recursion limit counts those frames, so the limit is
lowered by the difference (RECURSION_HEADROOM) and a recursion fails at the depth where it fails
under evalplus.
"""

from __future__ import annotations

import builtins
import io
import os
import resource
import sys

# How much deeper evalplus 0.3.1 calls a candidate than the sandbox does, in Python frames, when it
# runs as its README says (`evalplus.evaluate ...`): a call may recurse 969 deep there, 990 here
# (`python -m evalplus.evaluate` is 3 frames deeper still).  Held to it by
# tests/test_evalplus.py::test_mbpp_plus_verdicts_equal_evalplus's recursion samples.
RECURSION_HEADROOM = 21

_OS_DISABLED = (
    "kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg rename renames truncate "
    "replace unlink fchmod fchown chmod chown chroot lchflags lchmod lchown getcwd chdir"
).split()
_NO_IMPORT = ("ipdb", "joblib", "resource", "psutil", "tkinter")


class WriteOnlyStringIO(io.StringIO):
    """evalplus's stand-in for stdout, stderr and stdin: what is written is dropped (evalplus keeps
    it for the call and never reads it), reading raises OSError."""

    def write(self, s):  # noqa: ANN001, ANN201 - io.StringIO's signature
        return len(s) if type(s) is str else io.StringIO.write(self, s)

    def read(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise OSError

    def readline(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise OSError

    def readlines(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise OSError

    def readable(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return False


def _evalplus() -> None:
    sys.stdout = sys.stderr = sys.stdin = WriteOnlyStringIO()
    _soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 4 << 30 if hard == resource.RLIM_INFINITY else min(4 << 30, hard)
    try:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
    except (ValueError, OSError):
        pass
    sys.setrecursionlimit(sys.getrecursionlimit() - RECURSION_HEADROOM)
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in _OS_DISABLED:
        setattr(os, name, None)
    builtins.exit = builtins.quit = builtins.open = builtins.help = None
    for name in _NO_IMPORT:
        sys.modules[name] = None


ENVIRONMENTS = {"evalplus": _evalplus}


def apply(name: str | None) -> None:
    """Set up environment `name` in this process (None: the sandbox's own, nothing to do)."""
    if name is not None:
        ENVIRONMENTS[name]()
