"""Which uids a sandbox's processes get: a range per live container, a block per local executor.

Without user namespaces RLIMIT_NPROC counts per uid across the whole machine, so a fork bomb in one
sandbox must not eat another's allowance, and nothing a sample left may share the next one's uid.
Each range is (test uid, first candidate uid, number of candidate uids): the runner's trusted test
process runs as the first uid, each sample's untrusted candidate as the next candidate uid in turn
(`--uids T,C,N`, sandbox/runner/__main__.py).
"""

from __future__ import annotations

import os
import threading

from phi_eval.sandbox.pool import SandboxFault

UIDS_PER_CONTAINER = 1024  # the test process's, then one candidate uid per sample, in turn
RANGES_PER_PROCESS = 256  # uid ranges one phi-eval process can hold at once (live containers)
PROCESS_BLOCKS = 8_000  # processes told apart by pid % this; every uid stays below 2**31
UID_BASE = 100_000
MAX_WORKERS = RANGES_PER_PROCESS // 2  # the rest is room for spares and parked samples' containers

# Sandbox uids for local runners: far above any login or container range, and different per
# executor (from our pid), so two executors on one host never sweep each other's processes.
LOCAL_UID_BASE = 2_100_000_000
UIDS_PER_EXECUTOR = 4096
UIDS_PER_WORKER = 32  # T's, then 31 candidate uids the runner takes in turn, one per sample
LOCAL_MAX_WORKERS = UIDS_PER_EXECUTOR // UIDS_PER_WORKER  # 128: each worker's uids inside its executor's


def sandbox_uids(block: int, n: int) -> tuple[int, int, int]:
    """(test uid, first candidate uid, number of candidate uids) of uid range `n` of process block
    `block`; within a container each sample gets the next candidate uid."""
    if not (0 <= n < RANGES_PER_PROCESS and 0 <= block < PROCESS_BLOCKS):
        raise ValueError(f"uid range {n} of block {block} is out of bounds")
    base = UID_BASE + (block * RANGES_PER_PROCESS + n) * UIDS_PER_CONTAINER
    return base, base + 1, UIDS_PER_CONTAINER - 1


class UidRanges:
    """Hands each live container of this process a uid range that no other live one holds.

    Ranges belong to containers, not to worker numbers: a parked sample's container and the spare
    that took over its worker run at once, and each needs its own range. A range is handed out again
    only once its container has been removed (with every process in it)."""

    def __init__(self, pid: int | None = None) -> None:
        self.block = (os.getpid() if pid is None else pid) % PROCESS_BLOCKS
        self._free = set(range(RANGES_PER_PROCESS))
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxFault(f"all {RANGES_PER_PROCESS} sandbox uid ranges of this process are in use")
            n = min(self._free)
            self._free.remove(n)
            return n

    def release(self, n: int) -> None:
        with self._lock:
            self._free.add(n)

    def uids(self, n: int) -> tuple[int, int, int]:
        return sandbox_uids(self.block, n)


def local_uids(worker: int, pid: int | None = None) -> tuple[int, int]:
    """(test uid, first candidate uid) for one local worker; its candidate uids are the
    UIDS_PER_WORKER - 1 from there. A worker's replacement runner takes the same ones (the old
    runner is killed first, and the new one sweeps them as it starts)."""
    slot = (pid if pid is not None else os.getpid()) % ((2**31 - 1 - LOCAL_UID_BASE) // UIDS_PER_EXECUTOR)
    base = LOCAL_UID_BASE + slot * UIDS_PER_EXECUTOR + UIDS_PER_WORKER * worker
    return base, base + 1
