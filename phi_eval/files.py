"""How phi-eval reads and writes its files: one JSON Lines reader, one atomic writer, one appender.

Every file phi-eval writes is written whole or not at all (a temp file beside it, fsync'd, then
renamed over it), so a reader, a resume or a second process never sees half of one; results are
appended in flushed batches of whole lines. Every JSON Lines file phi-eval reads, its own or a
user's, goes through `records`: lines end at "\n" only (U+2028 inside a string is text), and a bad
line is a `BadLine` naming its number, which the caller turns into its own one-line message.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError


class BadLine(ValueError):
    """A JSON Lines line that does not parse: its 1-based number and why (`deep`: nested too
    deeply; `undecodable`: not UTF-8 at all, likely not a text file)."""

    def __init__(self, lineno: int, msg: str, *, deep: bool = False, undecodable: bool = False) -> None:
        super().__init__(f"line {lineno}: {msg}")
        self.lineno = lineno
        self.msg = msg
        self.deep = deep
        self.undecodable = undecodable


def records(lines: Iterable[bytes] | Iterable[str], *, torn_ok: bool = False,
            skip_bad: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of `lines` (as iterating a binary file,
    io.BytesIO or io.StringIO(newline="\n") gives them: split at "\n" only, ends kept).
    `torn_ok`: a last line without its "\n" (a kill mid-write) is skipped; `skip_bad`: so is a line
    that does not parse, instead of raising BadLine."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if torn_ok and not line.endswith(b"\n" if isinstance(line, bytes) else "\n"):
            continue
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError as exc:
            if skip_bad:
                continue
            raise BadLine(lineno, str(exc), undecodable=True) from None
        try:
            yield lineno, json.loads(text)
        except json.JSONDecodeError as exc:
            if not skip_bad:
                raise BadLine(lineno, exc.msg) from None
        except RecursionError:
            if not skip_bad:
                raise BadLine(lineno, "nested too deeply", deep=True) from None


def split_lines(data: bytes | str) -> Iterator[bytes] | Iterator[str]:
    """The lines of a whole file's contents, split at "\n" only."""
    return iter(io.BytesIO(data)) if isinstance(data, bytes) else iter(io.StringIO(data, newline="\n"))


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a file phi-eval wrote itself; a torn last line from a kill is skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for _, record in records(fh, torn_ok=True):
            yield record


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
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
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
            raise write_error(self.path, exc) from None

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


def write_error(path: Path, exc: OSError) -> PhiEvalError:
    """The one line for a failed write (a full disk says what to do)."""
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


def read_data_jsonl(path: Path) -> list[dict[str, Any]]:
    """A benchmark's JSON Lines data file (.jsonl or .jsonl.gz), every line parsed; one line on error."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            rows = [row for _, row in records(fh)]
    except BadLine as exc:
        if exc.undecodable:
            raise PhiEvalError(f"cannot read data file {path}: {exc.msg}; is it a .jsonl or .jsonl.gz file?") from None
        raise PhiEvalError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from None
    except OSError as exc:
        raise PhiEvalError(f"cannot read data file {path}: {exc.strerror or exc}; check --data") from None
    except (EOFError, UnicodeDecodeError) as exc:
        raise PhiEvalError(f"cannot read data file {path}: {exc}; is it a .jsonl or .jsonl.gz file?") from None
    return rows
