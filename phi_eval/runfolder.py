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


def check(path: Path, *, resume: bool, force: bool) -> None:
    """Refuse early (before a model is loaded) when the folder cannot be used; changes nothing."""
    if resume and force:
        raise PhiEvalError("--resume and --force contradict each other; pick one")
    if path.exists() and not path.is_dir():
        raise PhiEvalError(f"{path} exists and is not a folder; choose another --out")
    occupied = path.is_dir() and any(path.iterdir())
    if occupied and not (resume or force):
        raise PhiEvalError(
            f"run folder {path} already exists; pass --resume to continue it, --force to replace it, "
            "or choose another --out"
        )
    if resume and not occupied:
        raise PhiEvalError(f"--resume given but {path} holds no run to continue")


def prepare(path: Path, *, resume: bool, force: bool) -> Path:
    """Create the run folder, or refuse: an existing run is only touched with --resume or --force."""
    check(path, resume=resume, force=force)
    if resume and force:
        raise PhiEvalError("--resume and --force contradict each other; pick one")
    if path.exists() and not path.is_dir():
        raise PhiEvalError(f"{path} exists and is not a folder; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if force:
            shutil.rmtree(path)
        elif not resume:
            raise PhiEvalError(
                f"run folder {path} already exists; pass --resume to continue it, --force to replace it, "
                "or choose another --out"
            )
    elif resume:
        raise PhiEvalError(f"--resume given but {path} holds no run to continue")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhiEvalError(f"cannot create run folder {path}: {exc.strerror or exc}") from None
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


def write_json(path: Path, obj: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write atomically, like write_json."""
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
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


class JsonlAppender:
    """Append records one line at a time and flush, so an interrupted run keeps what it finished."""

    def __init__(self, path: Path) -> None:
        _drop_partial_last_line(path)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, records: Iterable[dict]) -> None:
        for record in records:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_partial_last_line(path: Path) -> None:
    """A kill mid-write can leave half a line; resume must not choke on it or append after it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        data = path.read_bytes()
        fh.truncate(data.rfind(b"\n") + 1)


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a file phi-eval wrote itself (a torn last line from a kill is skipped)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                yield json.loads(line)
