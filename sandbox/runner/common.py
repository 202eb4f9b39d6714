"""What every part of the runner shares: the outcomes, the fixed fd numbers inside the children,
the persistent test process's lifetime, and the one way a detail is shortened for a verdict."""

from __future__ import annotations

import os

OUTCOMES = ("passed", "failed", "runtime_error", "syntax_error", "timeout", "oom", "killed", "sandbox_error")
DEFAULT_UIDS = (10001, 10002, 1)  # (test process, first candidate uid, number of candidate uids)
MAX_OUTPUT_BYTES = 65536
DETAIL_CHARS = 300

# The persistent T: replaced after this many jobs, when its peak RSS passes this, or when the runner
# has had no job for this long (so nothing of the sandbox uids lingers between bursts of work).
T_MAX_JOBS = 500
T_MAX_RSS_KB = 256 << 10
T_IDLE_S = 1.0
MAX_REPORT_BYTES = 1 << 20

# fds inside the children (fixed numbers, everything else closed)
_ZYGOTE_FD = 3
_C_REQ, _C_REP, _C_SRC = 3, 4, 5  # candidate: requests in, replies out, its program (read once)
_T_REQ, _T_REP, _T_CTL = 3, 4, 5  # test process: requests out, replies in, socket to the runner


def _short(text: object, limit: int = DETAIL_CHARS) -> str:
    try:
        text = str(text)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the runner
        text = "<unprintable>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."



def package_files(folder: str) -> list[str]:
    """The runner's files, relative to its folder, "/"-separated and sorted (compiled caches left
    out): what the image carries and what its hash covers (phi_eval/sandbox/image.py agrees)."""
    out = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            if not name.endswith(".pyc"):
                out.append(os.path.relpath(os.path.join(base, name), folder).replace(os.sep, "/"))
    return sorted(out)


def package_sha256(folder: str) -> str:
    """sha256 over every file of the runner (name, size, bytes): the ready line's `runner`."""
    try:
        from _sha256 import sha256  # hashlib would pull OpenSSL (4 MB) into every fork
    except ImportError:
        from hashlib import sha256
    digest = sha256()
    for rel in package_files(folder):
        with open(os.path.join(folder, rel), "rb") as fh:
            data = fh.read()
        digest.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()
