"""`--sandbox local`: the trusted runner as plain host subprocesses, for machines without Docker.

The verdict logic is the same as in the container (sandbox/runner/ splits every sample into an
untrusted candidate process and a trusted test process), and so is everything around it
(phi_eval.sandbox.pool: pipelining, retries, blame, classification). Only the transport differs:
a subprocess's pipes instead of a container's attach socket. But there is no container: no
network cut, no read-only filesystem, the host's files are readable to the sandbox uids. Hence the
loud warning and the explicit opt-in. Nor is there a cgroup of its own: a local runner is never
parked, and it counts as OOM-killed when it died of SIGKILL that we did not send while the kernel
OOM-killed something (/proc/vmstat oom_kill rose), as a container's OOM flag would say.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.paths import sandbox_dir
from phi_eval.sandbox.pool import Pool
from phi_eval.sandbox.protocol import GRACE_S, SandboxFault, take_line, time_left
from phi_eval.sandbox.uids import LOCAL_MAX_WORKERS, UIDS_PER_WORKER, local_uids

MAX_WORKERS = LOCAL_MAX_WORKERS
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

WARNING = (
    "[bold red]LOCAL SANDBOX: model-written code runs directly on this machine, NOT in a container.[/]\n"
    "It gets separate unprivileged uids, resource limits and a process sweep, but it can use the "
    "network and read every world-readable file.  Use --sandbox local only on a throwaway machine "
    "without Docker; everywhere else use the default --sandbox docker."
)


def oom_kills() -> int | None:
    """How many processes the kernel has OOM-killed since boot (None where it does not say)."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class ProcessSlot:
    """One runner subprocess and its pipes (a phi_eval.sandbox.pool.Slot)."""

    def __init__(self, index: int, runner: Path, uids: tuple[int, int] | None) -> None:
        self.index = index
        self.runner = runner
        self.uids = uids
        self.proc: subprocess.Popen | None = None
        self.buf = bytearray()
        self.ready: dict[str, Any] = {}
        self.dirty = ""
        self.log = tempfile.TemporaryFile()  # the runner's stderr, for a fault's detail
        self._ooms_at_start: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        args = [sys.executable, "-I", "-S", "-u", str(self.runner)]
        if self.uids:
            args += ["--uids", f"{self.uids[0]},{self.uids[1]},{UIDS_PER_WORKER - 1}"]
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=dict(CHILD_ENV),
                cwd="/", start_new_session=True,  # Ctrl-C at the terminal is handled by close(), not by them
            )
        except OSError as exc:
            raise SandboxFault(f"cannot start the runner ({exc})") from None
        self._ooms_at_start = oom_kills()
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)  # a runner that stops reading must not block us

    def send(self, data: bytes, deadline: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        fd, view = self.proc.stdin.fileno(), memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise SandboxFault("runner stopped reading its input by the host deadline", hung=True)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise SandboxFault(f"cannot write to the runner ({exc})") from None

    def readline(self, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while (line := take_line(self.buf)) is None:
            if not select.select([fd], [], [], time_left(deadline))[0]:
                raise SandboxFault("no answer by the host deadline", hung=True)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise SandboxFault("runner exited")
            self.buf += chunk
        return line

    def answer_ready(self, timeout: float) -> bool:
        if b"\n" in self.buf or self.proc is None or self.proc.stdout is None:
            return True
        return bool(select.select([self.proc.stdout.fileno()], [], [], max(0.0, timeout))[0])

    def oom_killed(self) -> bool:
        """Killed by SIGKILL (not ours: this is asked before we kill it) while the kernel OOM-killed."""
        if self.proc is None or self._ooms_at_start is None:
            return False
        try:
            code = self.proc.wait(timeout=0.5)  # a runner that closed its stdout is about to be gone
        except subprocess.TimeoutExpired:
            return False
        now = oom_kills()
        return code == -signal.SIGKILL and now is not None and now > self._ooms_at_start

    def cpu_s(self) -> float | None:
        return None  # no cgroup of its own: a local runner is never parked

    def set_cpu_shares(self, shares: int) -> None:
        pass

    def stderr_tail(self) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - 400))
            lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1][-200:] if lines else ""
        except (OSError, ValueError):
            return ""

    def remove(self) -> None:
        """SIGKILL the runner only (the next runner of this worker sweeps its uids when it starts)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        self._reap()

    def stop(self) -> None:
        """Close stdin (the runner's clean exit) and wait; kill after 10 s."""
        if self.proc is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.remove()
        self._reap()

    def _reap(self) -> None:
        if self.proc is None:
            self.log.close()
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self.proc = None
        self.log.close()


class LocalExecutor(Pool):
    """Runs ExecJobs on `workers` local runner processes (see the module docstring for the caveats)."""

    WHAT = "local sandbox runner"
    HINT = "the runner is this install's sandbox/runner/: reinstall phi-eval if it is damaged"

    def __init__(self, workers: int | None = None, *, grace_s: float = GRACE_S, warn: bool = True) -> None:
        if warn:
            from rich.console import Console
            from rich.panel import Panel

            Console(stderr=True).print(Panel(WARNING, title="phi-eval: --sandbox local", border_style="red"))
        super().__init__(workers, MAX_WORKERS, grace_s=grace_s)
        self.runner = sandbox_dir() / "runner"  # a package: `python3 <folder>` runs its __main__.py
        if not (self.runner / "__main__.py").is_file():
            raise PhiEvalError(f"sandbox runner missing at {self.runner}; reinstall phi-eval")
        root = os.geteuid() == 0
        self.uids = [local_uids(i) for i in range(self.workers)] if root else []
        self._dirty = False  # a runner was killed: sweep its uids from here at close()
        try:
            self.warm(0)  # the runners start now: a broken install fails before any work
        except BaseException:
            self.close()
            raise

    def _make_slot(self, index: int) -> ProcessSlot:
        return ProcessSlot(index, self.runner, self.uids[index] if self.uids else None)

    def _released(self, slot: ProcessSlot) -> None:  # type: ignore[override]
        self._dirty = True

    def all_uids(self) -> set[int]:
        """Every uid this executor's runners may give a sandbox process."""
        return {u for t, c in self.uids for u in (t, *range(c, c + UIDS_PER_WORKER - 1))}

    def runner_pids(self) -> list[tuple[int, int | None]]:
        """(runner pid, its zygote's pid) of each worker: what tests and tools inspect."""
        slots: list[ProcessSlot] = self.live_slots()  # type: ignore[assignment]
        return [(s.pid, s.ready.get("zygote")) for s in slots if s.pid is not None]

    @property
    def isolation(self) -> str:
        """'uid' (T and C as separate unprivileged uids) or 'same-uid' (not root)."""
        lines = self.ready_lines()
        return str(lines[0].get("isolation", "?")) if lines else "?"

    def _after_close(self, interrupted: bool) -> None:
        """Leave no process of the sandbox uids behind once a runner was killed (Ctrl-C included)."""
        if self.uids and (self._dirty or interrupted):
            self._sweep()
        self._dirty = False

    def _sweep(self) -> None:
        flat = ",".join(f"{t},{c}-{c + UIDS_PER_WORKER - 2}" for t, c in self.uids)
        subprocess.run(
            [sys.executable, "-I", "-S", str(self.runner), "--sweep", flat],
            env=dict(CHILD_ENV), cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=60, check=False,
        )

    def __enter__(self) -> LocalExecutor:
        return self


__all__ = ["MAX_WORKERS", "UIDS_PER_WORKER", "LocalExecutor", "ProcessSlot", "local_uids"]
