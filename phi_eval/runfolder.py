"""The run folder: its file names, the rules for reusing one, its lock, and reading a finished run.

Other tools and CI jobs read these files, so the names are stable: config.json, prompts.jsonl,
samples.jsonl, results.jsonl, metrics.json, report.md.  A run never overwrites an existing run
unless told --resume (continue it) or --force (start it again). How the files are written
(atomically, or appended in whole lines) is phi_eval.files; what a report, a comparison or a
leaderboard reads back from a finished run is `read_run` here.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.files import BadLine, read_json, records, write_error

CONFIG, PROMPTS, SAMPLES, RESULTS, METRICS, REPORT = (
    "config.json",
    "prompts.jsonl",
    "samples.jsonl",
    "results.jsonl",
    "metrics.json",
    "report.md",
)


def slug(text: str) -> str:
    """A folder-safe form of a model name: microsoft/phi-1 -> microsoft--phi-1."""
    text = text.rstrip("/").replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-60:] or "model"


def default_run_dir(task: str, model: str, root: Path = Path("results")) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = Path(model).name if Path(model).exists() else model
    return root / f"{task}-{slug(name)}-{stamp}"


def _occupied(path: Path) -> bool:
    return path.is_dir() and any(child.name != LOCK for child in path.iterdir())


def check(path: Path, *, resume: bool, force: bool) -> None:
    """Refuse early (before a model is loaded) when the folder cannot be used; changes nothing."""
    if resume and force:
        raise PhiEvalError("--resume and --force contradict each other; pick one")
    if path.exists() and not path.is_dir():
        raise PhiEvalError(f"{path} exists and is not a folder; choose another --out")
    occupied = _occupied(path)
    if occupied and not (resume or force):
        raise PhiEvalError(
            f"run folder {path} already exists; pass --resume to continue it, --force to replace it, "
            "or choose another --out"
        )
    if resume and not occupied:
        raise PhiEvalError(f"--resume given but {path} holds no run to continue")


def claim(path: Path, *, resume: bool, force: bool) -> RunLock:
    """check(), then take the folder's lock when the folder exists (a resume, a --force): held from
    before the model loads, so a second phi-eval is refused at once, not after minutes of loading.
    A new folder is locked by prepare() when it is created."""
    check(path, resume=resume, force=force)
    lock = RunLock(path)
    if path.is_dir():
        lock.acquire()
        try:
            check(path, resume=resume, force=force)  # again, now that nobody else can change it
        except BaseException:
            lock.release()
            raise
    return lock


def prepare(path: Path, lock: RunLock, *, resume: bool, force: bool) -> Path:
    """Create (or, with --force, empty) the run folder under `lock`, acquired here if not yet."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhiEvalError(f"cannot create run folder {path}: {exc.strerror or exc}") from None
    if not lock.held:  # a new folder, locked only now: what claim() checked may have changed since
        lock.acquire()
        check(path, resume=resume, force=force)
    if force:
        clear(path)
    return path


def open_folder(path: Path, *, resume: bool, force: bool) -> RunLock:
    """claim() and prepare() in one: the folder ready to write, and its lock (release it when done)."""
    lock = claim(path, resume=resume, force=force)
    try:
        prepare(path, lock, resume=resume, force=force)
    except BaseException:
        lock.release()
        raise
    return lock


def clear(path: Path) -> None:
    """--force: empty the folder but keep the lock file its (new) owner holds."""
    for child in path.iterdir():
        if child.name == LOCK:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()



# ---------------------------------------------------------------- one writer per run folder

LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run folder for the whole run: a second phi-eval is refused.

    flock on `<run>/.lock`: the kernel drops it when the holder's process ends, however it ends,
    so a crash never leaves a folder locked. The file names its holder (pid, host) for the message.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl
        import socket

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise PhiEvalError(
                f"run folder {self.path.parent} is in use by another phi-eval ({holder}); wait for it to "
                "finish or choose another --out"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise PhiEvalError(f"cannot lock run folder {self.path.parent}: {exc.strerror or exc}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the holder's name is missing
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # no holder any more
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def probe_lock(run_dir: Path) -> None:
    """Refuse early (before a model loads) when another phi-eval holds the folder; holds nothing."""
    if (run_dir / LOCK).exists():
        RunLock(run_dir).acquire().release()


# ---------------------------------------------------------------- reading a finished run


@dataclass(frozen=True)
class RunData:
    """What a report needs from one run folder."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    results: list[dict[str, Any]]


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json, checked enough that a bad file is one clear line instead of a KeyError later."""
    metrics = read_json(run_dir / METRICS)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("pass_at_k"), dict):
        raise PhiEvalError(f"{run_dir / METRICS} has no pass_at_k table; is it a phi-eval metrics file?")
    return metrics


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """results.jsonl; a missing file is an empty list (old or partial runs), a torn last line is skipped."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    out = []
    with path.open("rb") as fh:
        try:
            for lineno, rec in records(fh, torn_ok=True):
                if not isinstance(rec, dict) or "task_id" not in rec or "passed" not in rec:
                    raise PhiEvalError(
                        f"{path} line {lineno} lacks task_id/passed; is it a phi-eval results file?"
                    )
                out.append(rec)
        except BadLine as exc:
            raise PhiEvalError(f"{path} line {exc.lineno} is not valid JSON ({exc.msg})") from None
    return out


def read_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PhiEvalError(f"run folder {run_dir} does not exist; pass a folder that holds metrics.json")
    metrics = read_metrics(run_dir)
    config = read_json(run_dir / CONFIG) if (run_dir / CONFIG).exists() else {}
    return RunData(run_dir, config if isinstance(config, dict) else {}, metrics, read_results(run_dir))
