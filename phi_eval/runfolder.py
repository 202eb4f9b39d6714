"""The run folder: atomic JSON writes, append-only JSONL, and the rules for reusing a folder.

Other tools and CI jobs read these files, so the names are stable: config.json, prompts.jsonl,
samples.jsonl, results.jsonl, metrics.json, report.md.  A run never overwrites an existing run
unless told --resume (continue it) or --force (start it again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError

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


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp_like_open(path: Path) -> tuple[int, str]:
    """A temp file beside `path` with the mode open() would give (0666 less the umask), not mkstemp's 0600,
    so every file of a run folder is readable alike (a colleague, a web server serving report.html)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp
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


def write_json(path: Path, obj: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    """Write atomically (a lone surrogate in model text is written as a backslash escape)."""
    write_bytes(path, text.encode("utf-8", "backslashreplace"))


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    """A whole JSON Lines file, atomically: a reader (or a resume) never sees half of it."""
    write_bytes(path, b"".join(jsonl_line(r) for r in records))


def write_bytes(path: Path, data: bytes) -> None:
    try:
        fd, tmp = _mkstemp_like_open(path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PhiEvalError(f"{path} is missing; is {path.parent} a phi-eval run folder?") from None
    except json.JSONDecodeError as exc:
        raise PhiEvalError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def jsonl_line(record: dict) -> bytes:
    """One JSON Lines record as UTF-8 bytes ending in the only line end JSON Lines has, b"\\n".

    Non-ASCII text stays readable (ensure_ascii=False), except lone surrogates ("\\ud800" is valid
    JSON but not UTF-8): those are written as \\u escapes, so the line reads back to the same string.
    """
    text = json.dumps(record, ensure_ascii=False)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8") + b"\n"


_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonlAppender:
    """Append records and flush each batch, so an interrupted run keeps what it finished.

    A torn last line (a kill or a full disk mid-write) is cut off when the file is opened, and a
    batch whose write fails is cut back off at once, so the file holds whole lines only.
    """

    def __init__(self, path: Path) -> None:
        _drop_partial_last_line(path)
        self.path = path
        self._fh = path.open("ab", buffering=0)

    def write(self, records: Iterable[dict]) -> None:
        data = b"".join(jsonl_line(record) for record in records)
        if not data:
            return
        start = self._fh.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view) or 0 :]
        except OSError as exc:
            try:
                self._fh.truncate(start)
            except OSError:
                pass  # cut off when the file is next opened
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        try:
            os.fsync(self._fh.fileno())
        except OSError:
            pass
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_error(path: Path, exc: OSError) -> PhiEvalError:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PhiEvalError(
            f"no space left on the device holding {path}; what was written so far is whole: free some "
            "space and run the same command again with --resume"
        )
    return PhiEvalError(f"cannot write {path}: {exc.strerror or exc}")


def _drop_partial_last_line(path: Path) -> None:
    """A kill or a full disk mid-write can leave half a line; cut it off before appending."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        data = path.read_bytes()
        fh.truncate(data.rfind(b"\n") + 1)


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a file phi-eval wrote itself; lines end at b"\\n" only (U+2028 inside a string is
    text, not a line end), and a torn last line from a kill is skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.endswith(b"\n") and line.strip():
                yield json.loads(line)


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
            raise _write_error(self.path, exc) from None
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
