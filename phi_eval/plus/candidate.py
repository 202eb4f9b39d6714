"""The candidate's side of an EvalPlus job: its program, started in the environment evalplus gives it.

evalplus 0.3.1 runs a sample's program in a process set up by its `reliability_guard` and
`swallow_io` (evalplus/eval/utils.py): stdout and stderr go to a write-only buffer and reading
stdin raises OSError; `open`, `exit`, `quit` and `help` are None, as are os's functions that
change files, processes or the working directory; `resource`, `psutil`, `joblib`, `ipdb` and
`tkinter` cannot be imported; the stack may grow to 4 GiB.  A program that reads its input,
writes a file or calls os.getcwd() therefore fails there, where the sandbox alone would let it
pass.  So the job's program starts with ENV (one statement, after any `from __future__`
imports, which must come first), run in the candidate's own process: it is the sample's
environment, not a defence (the sandbox is that), and it leaves no name in the program's globals.

The depth a call starts at differs too: evalplus calls the function deeper than the sandbox does
(under `fire`, its process pool and its fork), and Python's recursion limit of 1000 counts those
frames, so ENV lowers the limit by the difference (RECURSION_HEADROOM) and a recursion fails at
the depth where it fails under evalplus.
"""

from __future__ import annotations

import ast

# How much deeper evalplus 0.3.1 calls a candidate than the sandbox does, in Python frames, when it
# runs as its README says (`evalplus.evaluate ...`): a call may recurse 969 deep there, 990 here
# (`python -m evalplus.evaluate` is 3 frames deeper still).  Held to it by
# tests/test_evalplus.py::test_mbpp_plus_verdicts_equal_evalplus's recursion samples.
RECURSION_HEADROOM = 21

_SETUP = r'''
import builtins, io, os, resource, sys

class WriteOnlyStringIO(io.StringIO):
    """evalplus's stand-in for stdout, stderr and stdin: what is written is dropped (evalplus
    keeps it for the call and never reads it), reading raises OSError."""

    def write(self, s):
        return len(s) if type(s) is str else io.StringIO.write(self, s)

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False

sys.stdout = sys.stderr = sys.stdin = WriteOnlyStringIO()
soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
want = 4 << 30 if hard == resource.RLIM_INFINITY else min(4 << 30, hard)
try:
    resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
except (ValueError, OSError):
    pass
if HEADROOM:
    sys.setrecursionlimit(sys.getrecursionlimit() - HEADROOM)
os.environ["OMP_NUM_THREADS"] = "1"
for name in ("kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg rename renames "
             "truncate replace unlink fchmod fchown chmod chown chroot lchflags lchmod lchown getcwd chdir").split():
    setattr(os, name, None)
builtins.exit = builtins.quit = builtins.open = builtins.help = None
for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    sys.modules[name] = None
'''.replace("HEADROOM", str(RECURSION_HEADROOM))

ENV = f"__import__('builtins').exec({_SETUP!r}, {{}})\n"


def program(candidate: str) -> str:
    """The job's program: `candidate` with ENV put before its first statement that is not a
    docstring or a `from __future__` import.  A program that does not parse is left as it is (the
    sandbox reports its syntax error, with its own line numbers)."""
    try:
        tree = ast.parse(candidate)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return candidate
    body = tree.body
    i = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        i = 1
    while i < len(body) and isinstance(body[i], ast.ImportFrom) and body[i].module == "__future__":
        i += 1
    if i == 0:
        return ENV + candidate
    lines = candidate.splitlines(keepends=True)
    end = body[i - 1].end_lineno or 0
    head = "".join(lines[:end])
    if not head.endswith("\n"):
        head += "\n"
    return head + ENV + "".join(lines[end:])
