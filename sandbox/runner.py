"""phi-eval's trusted runner: executes untrusted completions so that they cannot forge a verdict.

Stdlib only (it runs inside a bare container as PID 1, and on the host for `--sandbox local`).

Protocol: started as `python3 -I -u runner.py [--uids T,C[,N]]`, it prints one line
`{"ready": true, "runner": <sha256[:12] of this file>, "isolation": "uid"|"same-uid", ...}`, then reads
newline-delimited JSON jobs (phi_eval.jobs.ExecJob.to_json() plus optional `max_output_bytes`) on
stdin and answers each with one line `{"id", "outcome", "duration_s", "detail"}`.  EOF -> clean exit.
A reply with `"dirty": reason` says the sample left something that could not be removed for
certain: the runner exits right after it, without running the jobs queued behind, and the
executor re-sends those to a fresh runner (the verdict itself stands: the sample made the mess).

Why it is shaped like this (each sample is split across processes that cannot reach each other):
- The candidate process C runs the model's program.  It is forked by a *zygote*: a separate
  interpreter started once with a clean environment, which never holds anything of any sample (no
  test, no program: C reads its own from a memfd; no file name, no exit status), so C cannot find
  expected values or another sample's code in its own memory (gc, frames, /proc/self/mem).
- The test process T runs the benchmark's trusted tests and never executes candidate code.  It
  reaches into C only for the names the job lists (the functions and classes the tests mean to
  call, computed by the host from the task's reference solution); every other name is T's own
  (builtins, the prelude's imports) or a NameError, so nothing of the candidate computes an
  expected value.  A listed name resolves to a proxy: a call pickles (name, args) to C (trusted ->
  untrusted) and C answers in a tagged JSON that carries only plain values (builtin values, and
  deque, range, dict views, Fraction, Decimal, re.Match and iterators as T's own objects built from plain
  data), so a returned object with a rigged `__eq__` is impossible: T compares its own values.
- Any other object (an instance of a candidate class, a class, a function) stays in C, in a
  per-sample handle table; T gets a RemoteRef, its own class, which C's object can only be reached
  through by call, getattr and setattr (MBPP's `root.left = Node(2)`), each a round trip answered
  the same way.  Its ==, hash and str are the handle's; truth, len, order, arithmetic and iteration
  raise TypeError, so no candidate code decides a comparison or a truth test in T.
- T reports to the runner over a private pipe, and only after the tests ran to the end; an exit
  code, an early exit or a dead process is never a pass.
- As root, T and C run as different unprivileged uids with no groups, so C can neither signal,
  ptrace nor read /proc of T or the runner; each sample's C gets the next uid of a range of its
  own (`--uids T,C,N`), so nothing one sample left could signal the next or share its process
  limit.  Before a verdict is written, the runner itself (never switching its real uid, so
  nothing of the sample can signal it) kills every process of the sandbox uids but T, removes the
  sample's files from every writable root (whole trees, any depth or mode) and IPC objects, and
  in the container checks that the sample moved no pid counter, socket or loopback counter that
  the next sample could read.  What it cannot undo makes the runner dirty (see the protocol).
- T, which runs only trusted tests and only ever holds builtin values decoded from C, is one
  persistent process: each job runs in a fresh namespace, from the same interpreter state.  It is
  killed (and uid T swept) on a deadline, a broken channel, a sandbox error, after T_MAX_JOBS jobs,
  past T_MAX_RSS_KB, or after T_IDLE_S without work, so an idle runner holds no sandbox process.
"""

from __future__ import annotations

import _collections_abc
import builtins
import collections
import io
import json
import math
import os
import pickle
import re
import resource
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator

OUTCOMES = ("passed", "failed", "runtime_error", "syntax_error", "timeout", "oom", "killed", "sandbox_error")
DEFAULT_UIDS = (10001, 10002, 1)  # (test process, first candidate uid, number of candidate uids)
MAX_OUTPUT_BYTES = 65536
MAX_REPLY_BYTES = 32 << 20  # one value returned by the candidate, JSON-encoded
MAX_DEPTH = 100
MAX_ITEMS = 2_000_000
MAX_HANDLES = 1 << 40
DETAIL_CHARS = 300
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
# Every place a sandbox uid can write (the container's root is read-only; /dev/mqueue holds POSIX
# message queues, /dev/shm POSIX shared memory and semaphores).
SCRATCH_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
# Modules a candidate imported that the tests may name (e.g. `math.isclose` in MBPP asserts): the
# test process imports its own copy; anything else stays a proxy.
SAFE_MODULES = frozenset(
    "math cmath re string collections itertools functools heapq bisect operator statistics fractions "
    "decimal random datetime copy array struct typing numbers enum textwrap".split()
)
_BUILTIN_NAMES = frozenset(dir(builtins))
# Imported once here so that forked children get them for free (no per-sample imports), and so
# tests and candidates can use them where the interpreter's own files are unreadable to the
# sandbox uids (a Python installed under /root, in local mode).
# Only light modules: fork time grows with the parent's memory (about 35 us per MB on a small VM).
PRELOAD = (
    "typing",
    "math",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "random",
    "copy",
    "operator",
)
# Stdlib modules a child may import *before* it drops root when its source names them (side-effect
# free ones only): the rest are imported after the drop as usual.
PREIMPORT_OK = SAFE_MODULES | frozenset(
    "hashlib json abc dataclasses io time unicodedata binascii base64 zlib queue threading pprint difflib "
    "calendar keyword sys os".split()
)
_IMPORT_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+([A-Za-z_][\w.]*)[ \t]+import|import[ \t]+([A-Za-z_][\w. \t,]*))", re.M
)
# The persistent T: replaced after this many jobs, when its peak RSS passes this, or when the runner
# has had no job for this long (so nothing of the sandbox uids lingers between bursts of work).
T_MAX_JOBS = 500
T_MAX_RSS_KB = 256 << 10
T_IDLE_S = 1.0
MAX_REPORT_BYTES = 1 << 20
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

# fds inside the children (fixed numbers, everything else closed)
_ZYGOTE_FD = 3
_C_REQ, _C_REP, _C_SRC = 3, 4, 5  # candidate: requests in, replies out, its program (read once)
_T_REQ, _T_REP, _T_CTL = 3, 4, 5  # test process: requests out, replies in, socket to the runner


# ------------------------------------------------------------------------------------------ helpers


def _short(text: object, limit: int = DETAIL_CHARS) -> str:
    try:
        text = str(text)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the runner
        text = "<unprintable>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, struct.pack("<I", len(payload)) + payload)


_RBUF: dict[int, bytearray] = {}  # bytes read past the frame asked for, per fd (cleared per job)


def _recv_frame(fd: int, limit: int) -> bytes | None:
    """One length-prefixed frame; None at EOF before its first byte.  A frame usually comes whole in
    the first read (one syscall, not two); what a read returns beyond it waits for the next call."""
    buf = _RBUF.setdefault(fd, bytearray())
    while len(buf) < 4:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if not buf:
                return None
            raise EOFError("truncated frame")
        buf += chunk
    (size,) = struct.unpack_from("<I", buf)
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds {limit}")
    end = 4 + size
    while len(buf) < end:
        chunk = os.read(fd, min(end - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("truncated frame")
        buf += chunk
    body = bytes(buf[4:end])
    del buf[:end]
    return body


def _remap_fds(mapping: dict[int, int]) -> None:
    """Put each source fd at its target number and close every other fd (so nothing leaks in)."""
    high = {target: os.dup(src) for target, src in mapping.items()}  # dup first: sources may collide
    for target, tmp in high.items():
        os.dup2(tmp, target)
    top = max(mapping) + 1
    os.closerange(top, 1 << 16)
    for fd in range(top):
        if fd not in mapping:
            try:
                os.close(fd)
            except OSError:
                pass


def _preimport_names(source: str) -> list[str]:
    """The allow-listed stdlib modules `source` names that are not imported yet.

    C imports them while still root: locally the interpreter's files may be unreadable to the
    sandbox uids (a Python under /root); importing before the drop (trusted stdlib code, before any
    untrusted code runs) makes `import hashlib` work there too, and costs nothing extra where it
    would be imported anyway.  Computed in C itself, from its own program, before the drop.
    """
    out = []
    for match in _IMPORT_RE.finditer(source):
        names = [match.group(1)] if match.group(1) else match.group(2).split(",")
        for name in names:
            name = name.split()[0] if name.split() else ""
            if name.split(".")[0] in PREIMPORT_OK and name not in sys.modules and name not in out:
                out.append(name)
    return out


def _drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("privilege drop failed")


def _limit_pairs(limits: dict[int, int]) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) for each limit, never above the current hard limit (a child
    inherits its parent's, so the zygote can work this out before the fork)."""
    pairs = []
    for res, value in limits.items():
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        pairs.append((res, (value, value)))
    return pairs


def _set_limits(limits: dict[int, int]) -> None:
    for res, pair in _limit_pairs(limits):
        resource.setrlimit(res, pair)


def _prctl(option: int, value: int) -> None:
    """libc's prctl (looked up before the zygote forks: a first ctypes call costs ~0.2 ms)."""
    try:
        _libc().prctl(option, value, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort: the uid sweep does not depend on it
        pass


def _set_env(**extra: str) -> None:
    """Make os.environ exactly CHILD_ENV plus `extra`, touching only what differs (the zygote's
    environment already is CHILD_ENV)."""
    want = {**CHILD_ENV, **extra}
    for key in [k for k in os.environ if k not in want]:
        del os.environ[key]
    for key, value in want.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _subreaper() -> None:
    """Orphans (a candidate's daemons) re-parent to this process, so they can be reaped and killed."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _reap(statuses: dict[int, int]) -> bool:
    """Reap every exited child into `statuses`; True while some child is still alive."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        statuses[pid] = status


def _reap_all() -> dict[int, int]:
    """Reap every exited child (PID 1 inherits orphans); returns {pid: status}."""
    out: dict[int, int] = {}
    _reap(out)
    return out


# ------------------------------------------------------------- value encoding (candidate -> tests)


_WARM_SOURCE = '''
from typing import List
import math
def _w(xs: List[int], k: int = 2) -> list:
    """doc"""
    out = [x * k for x in xs if x % 2 == 0]
    d = {str(i): (i, [i], {i}) for i in range(3)}
    try:
        assert sum(out) >= 0, f"{out!r} {d}"
    except (ValueError, KeyError) as exc:
        raise RuntimeError(str(exc)) from None
    while k > 0:
        k -= 1
    return sorted(out, key=lambda v: -v)
class _C:
    def __init__(self, a):
        self.a = a
def check(candidate):
    assert candidate([1, 2, 3]) == [4]
    assert abs(math.sqrt(4.0) - 2.0) < 1e-6
check(_w)
'''


def _warm_up() -> None:
    """Do once, before any fork, what every child does once: a process's first compile, exec,
    json and pickle fill caches; done here, each forked child starts warm (measured: a child's
    first compile drops from ~1.6 ms to ~0.6 ms of CPU)."""
    exec(compile(_WARM_SOURCE, "<warm-up>", "exec"), {"__name__": "__warm__"})
    json.loads(json.dumps({"a": [1, 2.5, None, "x"], "b": {"c": True}}))
    pickle.loads(pickle.dumps(("call", "f", (1, [2], {"k": 3}), {}), protocol=pickle.HIGHEST_PROTOCOL))


class _Unsupported(Exception):
    pass


# A builtin subclass (Counter, OrderedDict, namedtuple, IntEnum, a str-valued Enum...) is carried as
# its base value, read through the base type's own slot: never a __str__/__iter__/__int__ it overrides.
_BASE_VALUE: tuple[tuple[type, Callable[[object], object]], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (complex, lambda x: complex(complex.real.__get__(x), complex.imag.__get__(x))),
    (str, str.__str__),
    (bytes, lambda x: bytes.__getitem__(x, slice(None))),
    (bytearray, bytearray.copy),
    (list, list.copy),
    (tuple, lambda x: tuple.__getitem__(x, slice(None))),
    (dict, lambda x: {k: v for k, v in dict.items(x)}),
    (set, lambda x: set(set.__iter__(x))),
    (frozenset, lambda x: frozenset(frozenset.__iter__(x))),
)
_KEYS, _VALUES, _ITEMS = _collections_abc.KeysView, _collections_abc.ValuesView, _collections_abc.ItemsView
# A returned iterator: this many items go with the reply (or what ITER_CHUNK_S of its time yields),
# the rest in chunks that double up to ITER_CHUNK_MAX as the tests iterate, so an endless or slow
# generator costs what the tests take of it, as in Python.
ITER_FIRST, ITER_CHUNK_MAX, ITER_CHUNK_S = 256, 1 << 16, 0.02
MAX_BIG_BITS = 1 << 16  # a Fraction's numerator and denominator (T normalises them: gcd)
MAX_DECIMAL_CHARS = 1 << 16


def encode_value(
    value: object, handle: Callable[[object], dict] | None = None, chunk: int | None = None
) -> object:
    """A JSON-ready, tagged form of a value the tests can compare as Python would.

    Builtin values as they are; a builtin subclass as its base value; a generator or other
    iterator of a library type (map, zip, itertools...) materialised, at most the whole item budget
    (an endless one fails, it never stalls); deque, range, dict views, Fraction, Decimal and
    UserString/UserList/UserDict as what they hold.  Anything else (an instance of a candidate
    class, a class, a function) becomes `handle(x)` (C's opaque reference `{"t": "ref", "id": N,
    "type": name}`), or raises _Unsupported without a `handle`.  Runs in the candidate process, so
    it cannot be trusted to be honest: the decoder only ever builds builtin values and T's own
    objects from plain data, which is what makes a lie harmless (it is just a wrong return value).
    """
    budget = [MAX_ITEMS]

    def enc(x: object, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise _Unsupported("value nested too deeply")
        budget[0] -= 1
        if budget[0] < 0:
            raise _Unsupported("value too large")
        if x is None or x is True or x is False:
            return x
        t = type(x)
        if t is str:
            return x
        if t is int:
            return x if -(1 << 53) < x < (1 << 53) else {"I": hex(x)}
        if t is float:
            return x if math.isfinite(x) else {"X": repr(x)}
        if t is list:
            return [enc(v, depth + 1) for v in x]
        if t is tuple:
            return {"T": [enc(v, depth + 1) for v in x]}
        if t is dict:
            return {"D": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
        if t is set:
            return {"S": [enc(v, depth + 1) for v in x]}
        if t is frozenset:
            return {"F": [enc(v, depth + 1) for v in x]}
        if t is complex:
            return {"C": [enc(x.real, depth + 1), enc(x.imag, depth + 1)]}
        if t is bytes:
            return {"B": x.hex()}
        if t is bytearray:
            return {"Y": x.hex()}
        if t is range:
            return {"R": [enc(x.start, depth + 1), enc(x.stop, depth + 1), enc(x.step, depth + 1)]}
        for base, value_of in _BASE_VALUE:
            if issubclass(t, base):
                return enc(value_of(x), depth)
        if issubclass(t, collections.deque):
            items = [enc(v, depth + 1) for v in collections.deque.__iter__(x)]
            return {"Q": [items, collections.deque.maxlen.__get__(x)]}
        if issubclass(t, (collections.UserString, collections.UserList, collections.UserDict)):
            return enc(x.data, depth)
        if issubclass(t, _ITEMS):
            return {"W": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x]}
        if issubclass(t, _KEYS):
            return {"K": [enc(v, depth + 1) for v in x]}
        if issubclass(t, _VALUES):
            return {"V": [enc(v, depth + 1) for v in x]}
        fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
        if fractions is not None and issubclass(t, fractions.Fraction):
            num, den = fractions.Fraction.numerator.__get__(x), fractions.Fraction.denominator.__get__(x)
            return {"Fr": [enc(num, depth + 1), enc(den, depth + 1)]}
        if decimal is not None and issubclass(t, decimal.Decimal):
            return {"Dc": decimal.Decimal.__str__(x)}
        re_mod = sys.modules.get("re")
        if re_mod is not None and t is re_mod.Match:  # MBPP+'s `return re.search(...)`: its spans
            spans = [list(x.span(g)) for g in range(x.re.groups + 1)]
            names = [[k, v] for k, v in x.re.groupindex.items()]
            body = [x.string, x.pos, x.endpos, spans, names, x.lastindex, x.re.pattern, x.re.flags]
            return {"M": [enc(v, depth + 1) for v in body]}
        if hasattr(t, "__next__") and getattr(t, "__module__", None) != "__candidate__":
            # a generator, map, zip...: its items now (the candidate's own code runs here, in C), the
            # rest, if any, by later round trips as the tests iterate; without a handle, all of it
            values, more = take(x, depth, ITER_FIRST if handle is not None else None, handle is not None)
            return {"Gi": [values, handle(x)]} if more else {"G": values}
        if handle is not None:
            return handle(x)
        raise _Unsupported(f"returned a {t.__module__}.{t.__qualname__}, not a builtin value")

    def take(it: object, depth: int, limit: int | None, defer: bool = False) -> tuple[list, bool]:
        """Up to `limit` items of iterator `it`, or as many as ITER_CHUNK_S allows (at least one);
        and whether it may have more.  An exception the iterator raises is, with `defer`, kept
        for the round trip that asks for the item after the last one (Python raises it there)."""
        out: list = []
        end = time.monotonic() + ITER_CHUNK_S
        iterator = iter(it)  # type: ignore[call-overload]
        while True:
            try:
                v = next(iterator)
            except StopIteration:
                return out, False
            except MemoryError:
                raise
            except Exception as exc:
                if not defer:
                    raise
                _C_PENDING[id(it)] = exc
                return out, True
            out.append(enc(v, depth + 1))
            if limit is not None and (len(out) >= limit or time.monotonic() > end):
                return out, True

    if chunk is not None:  # the next items of an iterator T holds a handle to
        pending = _C_PENDING.pop(id(value), None)
        if pending is not None:
            raise pending
        values, more = take(value, 0, chunk, True)
        return [values, more]
    return enc(value, 0)


def _replay(values: list, more: int | None = None) -> Iterator[object]:
    """T's own generator over the values a candidate's iterator produces (so `f() == [..]` is
    False and `list(f())` is the list, as in Python): `values`, then, while C's iterator (handle
    `more`) has more, its next chunks, each a round trip answered with plain values."""
    yield from values
    size = ITER_FIRST
    while more is not None:
        size = min(size * 2, ITER_CHUNK_MAX)
        values, going = _CHANNEL.next_chunk(more, size)
        yield from values
        if not going:
            return


class _Match:
    """T's stand-in for a re.Match the candidate returned, built from its spans: true like a match,
    with its groups, spans and string (MBPP+ asserts `assert check_str("annie")`)."""

    __slots__ = ("string", "pos", "endpos", "lastindex", "_spans", "_names", "_pattern", "_flags")

    def __init__(self, body: list) -> None:
        string, pos, endpos, spans, names, lastindex, pattern, flags = body
        if type(string) not in (str, bytes) or type(pattern) is not type(string) or type(flags) is not int:
            raise TypeError("malformed match")
        n = len(string)
        if not (type(spans) is list and spans and all(type(sp) is tuple and len(sp) == 2 for sp in spans)):
            raise TypeError("malformed match")
        for a, b in spans:
            if not (type(a) is int and type(b) is int and (a == b == -1 or 0 <= a <= b <= n)):
                raise TypeError("malformed match")
        if spans[0][0] == -1 or type(names) is not list:
            raise TypeError("malformed match")
        index = {}
        for pair in names:
            if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not int:
                raise TypeError("malformed match")
            if not 0 < pair[1] < len(spans):
                raise TypeError("malformed match")
            index[pair[0]] = pair[1]
        if lastindex is not None and not (type(lastindex) is int and 0 < lastindex < len(spans)):
            raise TypeError("malformed match")
        for name, value in (("string", string), ("pos", _int_part(pos)), ("endpos", _int_part(endpos))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "lastindex", lastindex)
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(self, "_names", index)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_flags", flags)

    def _index(self, g: object) -> int:
        i = self._names.get(g) if type(g) is str else g
        if type(i) is not int or not 0 <= i < len(self._spans):
            raise IndexError("no such group")
        return i

    def _get(self, g: object, default: object = None) -> object:
        a, b = self._spans[self._index(g)]
        return default if a == -1 else self.string[a:b]

    def group(self, *groups: object) -> object:
        values = tuple(self._get(g) for g in groups or (0,))
        return values[0] if len(values) == 1 else values

    __getitem__ = _get

    def groups(self, default: object = None) -> tuple:
        return tuple(self._get(i, default) for i in range(1, len(self._spans)))

    def groupdict(self, default: object = None) -> dict:
        return {name: self._get(i, default) for name, i in self._names.items()}

    def span(self, g: object = 0) -> tuple[int, int]:
        return self._spans[self._index(g)]

    def start(self, g: object = 0) -> int:
        return self.span(g)[0]

    def end(self, g: object = 0) -> int:
        return self.span(g)[1]

    @property
    def lastgroup(self) -> str | None:
        return next((n for n, i in self._names.items() if i == self.lastindex), None)

    @property
    def re(self) -> object:
        import re

        return re.compile(self._pattern, self._flags)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<re.Match object; span={self.span()!r}, match={self.group()!r}>"


def _int_part(v: object, bits: int | None = None) -> int:
    if type(v) is not int or (bits is not None and v.bit_length() > bits):
        raise TypeError("malformed number")
    return v


def decode_value(data: object) -> object:
    """Rebuild a value from encode_value's output using T's own constructors only.

    Every tag has one exact shape; anything else, too deep, or rejected by its constructor is a
    TypeError (the caller's "malformed value").  Nothing here calls code of the candidate: the input
    is plain JSON data.
    """

    def items(body: object, depth: int) -> list:
        if type(body) is not list:
            raise TypeError("malformed value")
        return [dec(e, depth + 1) for e in body]

    def pairs(body: object, depth: int) -> list[tuple[object, object]]:
        if type(body) is not list:
            raise TypeError("malformed value")
        out = []
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise TypeError("malformed pair")
            out.append((dec(pair[0], depth + 1), dec(pair[1], depth + 1)))
        return out

    def dec(v: object, depth: int) -> object:
        if depth > MAX_DEPTH + 2:
            raise TypeError("value nested too deeply")
        t = type(v)
        if v is None or t is bool or t is str or t is int or t is float:
            return v
        if t is list:
            return [dec(e, depth + 1) for e in v]
        if t is dict and len(v) == 3 and v.get("t") == "ref":  # C's handle: T's own opaque stand-in
            handle, type_name = v.get("id"), v.get("type")
            if type(handle) is int and 0 <= handle < MAX_HANDLES and type(type_name) is str:
                return RemoteRef(handle, type_name[:80])
            raise TypeError("malformed handle from the candidate process")
        if t is not dict or len(v) != 1:
            raise TypeError("malformed value from the candidate process")
        ((tag, body),) = v.items()
        if tag == "T":
            return tuple(items(body, depth))
        if tag == "S":
            return set(items(body, depth))
        if tag == "F":
            return frozenset(items(body, depth))
        if tag == "D":
            return dict(pairs(body, depth))
        if tag == "C" and type(body) is list and len(body) == 2:
            re_, im = (dec(p, depth + 1) for p in body)
            if not all(type(p) is float or type(p) is int for p in (re_, im)):
                raise TypeError("malformed complex")
            return complex(re_, im)
        if tag == "I" and type(body) is str:
            return int(body, 16)
        if tag == "X" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "B" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "Y" and type(body) is str:
            return bytearray.fromhex(body)
        if tag == "G":
            return _replay(items(body, depth))
        if tag == "Gi" and type(body) is list and len(body) == 2:
            ref = dec(body[1], depth + 1)
            if type(ref) is not RemoteRef:
                raise TypeError("malformed iterator")
            return _replay(items(body[0], depth), ref._rr_id)
        if tag == "R" and type(body) is list and len(body) == 3:
            return range(*(_int_part(dec(p, depth + 1)) for p in body))
        if tag == "Q" and type(body) is list and len(body) == 2:
            maxlen = body[1]
            if maxlen is not None:
                _int_part(maxlen, 62)
            return collections.deque(items(body[0], depth), maxlen)
        if tag == "K":
            return dict.fromkeys(items(body, depth)).keys()
        if tag == "V":
            return dict(enumerate(items(body, depth))).values()
        if tag == "W":
            return dict(pairs(body, depth)).items()
        if tag == "M" and type(body) is list and len(body) == 8:
            parts = items(body, depth)
            if type(parts[3]) is list:
                parts[3] = [tuple(sp) if type(sp) is list else sp for sp in parts[3]]
            if type(parts[4]) is list:
                parts[4] = [tuple(p) if type(p) is list else p for p in parts[4]]
            return _Match(parts)
        if tag == "Fr" and type(body) is list and len(body) == 2:
            num, den = (_int_part(dec(p, depth + 1), MAX_BIG_BITS) for p in body)
            import fractions  # T's own (preimported)

            return fractions.Fraction(num, den)
        if tag == "Dc" and type(body) is str and len(body) <= MAX_DECIMAL_CHARS:
            import decimal

            try:
                return decimal.Decimal(body)
            except decimal.InvalidOperation:
                raise TypeError("malformed Decimal") from None
        raise TypeError("malformed value from the candidate process")

    try:
        return dec(data, 0)
    except (ValueError, OverflowError, ZeroDivisionError, KeyError, IndexError) as exc:
        raise TypeError(f"malformed value from the candidate process ({type(exc).__name__})") from None


# ---------------------------------------------------------------------- candidate process (C)


def _c_lookup(name: str) -> object:
    """Unpickled in C: a proxy passed as an argument becomes the candidate's own object."""
    return _C_NS[name]


def _c_ref(handle: int) -> object:
    """Unpickled in C: a RemoteRef passed as an argument becomes the object its handle names."""
    return _C_REFS[handle]


_C_NS: dict = {}
_C_REFS: list = []  # handle id -> object C sent to T as a reference (kept alive for the sample)
_C_PENDING: dict[int, Exception] = {}  # id(iterator) -> what it raised after the items T was sent
_C_REF_IDS: dict[int, int] = {}  # id(object) -> handle id: one object, one handle


def _c_handle(x: object) -> dict:
    """Keep `x` in C's handle table and describe it to T as an opaque reference."""
    handle = _C_REF_IDS.get(id(x))
    if handle is None:
        handle = len(_C_REFS)
        _C_REFS.append(x)
        _C_REF_IDS[id(x)] = handle
    try:
        name = type.__dict__["__qualname__"].__get__(type(x))  # not a metaclass's property
    except Exception:  # noqa: BLE001
        name = "?"
    return {"t": "ref", "id": handle, "type": _short(name, 80)}


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once, before the fork (json.dumps with
# options builds a new encoder per call)


def _c_send(obj: dict) -> None:
    _send_frame(_C_REP, _COMPACT.encode(obj).encode())


def _c_error(exc: BaseException) -> dict:
    return {"e": [type(exc).__name__, _short(exc, 200)]}


def _c_is_function(name: object) -> bool:
    """Whether global `name` is callable (what T's lookup of the entry point would be told), sent
    with the greeting to save T that round trip.  Only a claim of C's, like any answer of C's."""
    try:
        if type(name) is not str or name not in _C_NS:
            return False
        value = _C_NS[name]
        return not isinstance(value, type(sys)) and callable(value)
    except BaseException:  # noqa: BLE001 - T then asks the usual way
        return False


def _candidate_main(candidate: str, entry: str | None = None) -> None:
    """Runs in C after the privilege drop: the program's top level, then serve calls until EOF."""
    ns = _C_NS
    ns.update({"__name__": "__candidate__", "__builtins__": builtins})
    try:
        code = compile(candidate, "<candidate>", "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
        _c_send({"hello": "syntax_error", "msg": _short(f"{type(exc).__name__}: {exc}")})
        return
    except MemoryError:
        _c_send({"hello": "oom", "msg": "MemoryError while compiling"})
        return
    try:
        exec(code, ns)
    except MemoryError:
        _c_send({"hello": "oom", "msg": "MemoryError at top level"})
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit at top level is an error too
        _c_send({"hello": "runtime_error", "msg": _short(f"{type(exc).__name__}: {exc}")})
        return
    _c_send({"hello": "ok", "fn": True} if _c_is_function(entry) else {"hello": "ok"})
    while True:
        frame = _recv_frame(_C_REQ, MAX_REPLY_BYTES)
        if frame is None:
            return
        try:
            op, target, a, b = pickle.loads(frame)
            if op == "lookup":
                reply = _c_describe(target)
            else:
                obj = ns[target] if type(target) is str else _C_REFS[target]
                if op == "call":
                    result = obj(*a, **b)
                elif op == "getattr":
                    result = getattr(obj, a)
                elif op == "setattr":
                    setattr(obj, a, b)
                    result = None
                elif op != "next":
                    raise ValueError(f"unknown operation {op!r}")
                try:
                    if op == "next":  # the next chunk of an iterator whose first items T has
                        size = a if type(a) is int and 0 < a <= ITER_CHUNK_MAX else ITER_FIRST
                        reply = {"n": encode_value(obj, _c_handle, chunk=size)}
                    else:
                        reply = {"r": encode_value(result, _c_handle)}
                except _Unsupported as exc:
                    reply = {"u": str(exc)}
            payload = _COMPACT.encode(reply).encode()
        except MemoryError:
            payload = b'{"e":["MemoryError",""]}'
        except BaseException as exc:  # noqa: BLE001 - the candidate raised: tell T which builtin type
            try:
                payload = json.dumps(_c_error(exc)).encode()
            except BaseException:  # noqa: BLE001
                payload = b'{"e":["RuntimeError","unprintable exception"]}'
        _send_frame(_C_REP, payload)


def _c_describe(name: str) -> dict:
    if name not in _C_NS:
        return {"k": "none"}
    value = _C_NS[name]
    if callable(value):
        return {"k": "fn"}
    try:  # a plain value, or a handle to an object (MBPP's setup builds `root = Node(1)` in C)
        return {"k": "v", "v": encode_value(value, _c_handle)}
    except _Unsupported:
        return {"k": "fn"}


# --------------------------------------------------------------------------- test process (T)


class CandidateFault(Exception):
    """The candidate broke the protocol or died: the sample can no longer pass."""


class _Channel:
    """T's side of the pipe pair to C."""

    def __init__(self) -> None:
        self.fault: tuple[str, str] | None = None  # (outcome, detail); once set, never a pass
        self.hello: dict | None = None

    def _fail(self, outcome: str, detail: str) -> CandidateFault:
        if self.fault is None:
            self.fault = (outcome, _short(detail))
        return CandidateFault(self.fault[1])

    def _roundtrip(self, request: tuple) -> dict:
        if self.hello is None:
            self.wait_hello()
        if self.fault is not None:
            raise CandidateFault(self.fault[1])
        try:
            payload = _t_pickle(request)
        except Exception as exc:
            raise TypeError(f"cannot send arguments to the candidate: {exc}") from None
        try:
            _send_frame(_T_REQ, payload)
            frame = _recv_frame(_T_REP, MAX_REPLY_BYTES)
        except ValueError as exc:
            raise self._fail("runtime_error", f"candidate reply refused: {exc}") from None
        except (OSError, EOFError) as exc:
            raise self._fail("candidate_died", f"candidate channel broke: {exc}") from None
        if frame is None:
            raise self._fail("candidate_died", "candidate process closed its channel")
        try:
            reply = json.loads(frame)
        except (ValueError, RecursionError):
            raise self._fail("runtime_error", "candidate sent a malformed reply") from None
        if type(reply) is not dict:
            raise self._fail("runtime_error", "candidate sent a malformed reply")
        return reply

    def wait_hello(self) -> None:
        if self.hello is not None:
            if self.fault is not None:
                raise CandidateFault(self.fault[1])
            return
        self.hello = {}
        try:
            frame = _recv_frame(_T_REP, 1 << 16)
        except (OSError, EOFError, ValueError) as exc:
            raise self._fail("candidate_died", f"candidate channel broke: {exc}") from None
        if frame is None:
            raise self._fail("candidate_died", "candidate process exited before it was ready")
        try:
            hello = json.loads(frame)
            state = hello["hello"]
            self.hello = hello
        except (ValueError, KeyError, TypeError, RecursionError):
            raise self._fail("runtime_error", "candidate sent a malformed greeting") from None
        if state != "ok":
            outcome = state if state in ("syntax_error", "oom") else "runtime_error"
            raise self._fail(outcome, str(hello.get("msg", state)))

    def lookup(self, name: str) -> object:
        reply = self._roundtrip(("lookup", name, (), {}))
        kind = reply.get("k")
        if kind == "none":
            raise KeyError(name)
        if kind == "v":
            try:
                return decode_value(reply.get("v"))
            except (TypeError, ValueError, RecursionError):
                raise self._fail("runtime_error", f"candidate sent a malformed value for {name}") from None
        return RemoteFunction(name)

    def op(self, op: str, target: str | int, a: object, b: object, name: str) -> object:
        """One operation on C's object `target` (a global's name or a handle id): call, getattr or
        setattr.  The answer is a builtin value or a new RemoteRef; `name` labels errors."""
        return self.op_reply(self._roundtrip((op, target, a, b)), name)

    def op_reply(self, reply: dict, name: str) -> object:
        """The value of C's answer to an operation, or the exception it reports raised here."""
        if "r" in reply:
            try:
                return decode_value(reply["r"])
            except (TypeError, ValueError, RecursionError):
                raise self._fail("runtime_error", f"{name} returned a malformed value") from None
        if "u" in reply:
            raise self._fail("runtime_error", f"{name} {reply['u']}")
        err = reply.get("e")
        if type(err) is list and len(err) == 2 and all(type(p) is str for p in err):
            return self._raise(name, err[0], err[1])
        raise self._fail("runtime_error", "candidate sent a malformed reply")

    def next_chunk(self, handle: int, size: int) -> tuple[list, bool]:
        """The next items of C's iterator `handle`, and whether it may have more."""
        reply = self._roundtrip(("next", handle, size, None))
        if "n" in reply:
            body = reply["n"]
            if type(body) is list and len(body) == 2 and type(body[0]) is list and type(body[1]) is bool:
                try:
                    return decode_value(body[0]), body[1]
                except (TypeError, ValueError, RecursionError):
                    pass
            raise self._fail("runtime_error", "an iterator of the candidate sent a malformed chunk")
        self.op_reply(reply, "<iterator>")
        raise self._fail("runtime_error", "candidate sent a malformed reply")

    def _raise(self, name: str, type_name: str, message: str) -> object:
        if type_name == "MemoryError":
            raise self._fail("oom", f"MemoryError in {name}")
        if type_name in _ENDS_ITERATION:  # never a silent end of the tests' map/filter/all/any
            raise RuntimeError(f"{name} raised {type_name}: {message}")
        exc_type = getattr(builtins, type_name, None) if type_name in _BUILTIN_NAMES else None
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            if exc_type is not None and issubclass(exc_type, BaseException):  # SystemExit & co.
                raise self._fail("runtime_error", f"{name} raised {type_name}: {message}")
            raise RuntimeError(f"{name} raised {type_name}: {message}")
        try:
            exc = exc_type(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
            exc = RuntimeError(f"{type_name}: {message}")
        raise exc


_CHANNEL = _Channel()
# Exceptions that end an iteration: raised again as they are, a candidate's StopIteration inside the
# tests' `all(map(f, xs))` would end it early and pass.  They reach the tests as RuntimeError, as
# Python itself turns a StopIteration inside a generator into one (PEP 479).
_ENDS_ITERATION = frozenset({"StopIteration", "StopAsyncIteration", "GeneratorExit"})


def _c_view(kind: str, values: list) -> object:
    """Unpickled in C: a dict view T passes as an argument (T's own decoded view), rebuilt."""
    if kind == "K":
        return dict.fromkeys(values).keys()
    if kind == "V":
        return dict(enumerate(values)).values()
    return dict(values).items()


_VIEW_KIND = {type({}.keys()): "K", type({}.values()): "V", type({}.items()): "W"}


class _TPickler(pickle.Pickler):
    """T's arguments for C: what pickle cannot carry as it is, T's generators (its replay of a
    candidate's, or the tests' own `f(x for x in xs)`) and dict views, goes as its values."""

    def reducer_override(self, obj: object) -> object:
        kind = _VIEW_KIND.get(type(obj))
        if kind is not None:
            return (_c_view, (kind, list(obj)))
        if type(obj) is _GENERATOR:
            import itertools

            values = list(itertools.islice(obj, MAX_ITEMS + 1))
            if len(values) > MAX_ITEMS:
                raise TypeError(f"a generator argument yields more than {MAX_ITEMS} values")
            return (iter, (values,))
        return NotImplemented


_GENERATOR = type(_replay([]))


def _t_pickle(request: tuple) -> bytes:
    try:  # the common case, at C speed; a generator or view refuses to pickle before it is touched
        return pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
    except TypeError:
        pass
    buf = io.BytesIO()
    _TPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(request)
    return buf.getvalue()


class _Remote:
    """What T may do with an object that lives in C: call it, get and set its attributes.

    Each of these is a round trip whose answer is a builtin value or another handle.  Nothing
    else is delegated: comparisons, hashing, truth, len, iteration, arithmetic and str are T's own
    (or TypeError), so no code of the candidate runs when a test compares or tests a value.
    """

    __slots__ = ()

    def _target(self) -> tuple[str | int, str]:  # (name or handle id, label for errors)
        raise NotImplementedError

    def __call__(self, *args: object, **kwargs: object) -> object:
        target, label = self._target()
        return _CHANNEL.op("call", target, args, kwargs, label)

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("_rr_") or (attr.startswith("__") and attr.endswith("__")):
            raise AttributeError(attr)  # T's own slots, and protocol probes (copy, pickle, ...)
        target, label = self._target()
        return _CHANNEL.op("getattr", target, attr, None, f"{label}.{attr}")

    def __setattr__(self, attr: str, value: object) -> None:
        target, label = self._target()
        _CHANNEL.op("setattr", target, attr, value, f"{label}.{attr}")

    def __delattr__(self, attr: str) -> None:
        raise TypeError("deleting an attribute of a candidate object is not supported")


class RemoteFunction(_Remote):
    """Stands in T for a function (or class) that lives in C, by its global name."""

    __slots__ = ("_rr_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_rr_name", name)

    def _target(self) -> tuple[str | int, str]:
        return self._rr_name, self._rr_name

    def __reduce__(self) -> tuple:
        return (_c_lookup, (self._rr_name,))

    def __repr__(self) -> str:
        return f"<candidate function {self._rr_name}>"

    def __bool__(self) -> bool:
        return True


class RemoteRef(_Remote):
    """Stands in T for an object C could not send as a builtin value (a `Node`, a class, a function...).

    Defined here, in T: equality is the identity of C's handle (one object, one handle), the hash
    is the handle's, and the truth value raises.  A rigged `__eq__`/`__bool__`/`__len__` of the
    candidate's class is never reached: `assert f(1) == 2` is False, `assert f(1)` and
    `len(f(1))` raise TypeError.
    """

    __slots__ = ("_rr_id", "_rr_type")

    def __init__(self, handle: int, type_name: str) -> None:
        object.__setattr__(self, "_rr_id", handle)
        object.__setattr__(self, "_rr_type", type_name)

    def _target(self) -> tuple[str | int, str]:
        return self._rr_id, f"<{self._rr_type} object>"

    def __reduce__(self) -> tuple:  # as an argument, C resolves the handle back to its object
        return (_c_ref, (self._rr_id,))

    def __eq__(self, other: object) -> bool:
        return type(other) is RemoteRef and other._rr_id == self._rr_id

    def __ne__(self, other: object) -> bool:
        return not (type(other) is RemoteRef and other._rr_id == self._rr_id)

    def __hash__(self) -> int:
        return hash(("RemoteRef", self._rr_id))

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a non-builtin value returned by the candidate is not trusted")

    def __repr__(self) -> str:
        return f"<candidate {self._rr_type} object #{self._rr_id}>"

    __str__ = __repr__


class _TestNamespace(dict):
    """T's globals.  A name the tests do not define is T's own builtin (or a NameError), unless the
    job lists it as one the tests take from the candidate: its functions and classes, the objects
    MBPP's setup builds there, and a builtin name only where the task's reference solution defines
    it too (MBPP 126's `sum`).  Modules, constants and helpers come from T's prelude and tests."""

    __slots__ = ("allowed",)

    def __init__(self, allowed: frozenset[str], **names: object) -> None:
        super().__init__(**names)
        self.allowed = allowed

    def __missing__(self, name: str) -> object:
        if name not in self.allowed:
            raise KeyError(name)  # on to T's builtins, then NameError
        try:
            value = _CHANNEL.lookup(name)
        except KeyError:
            if name not in _BUILTIN_NAMES:
                raise
            value = getattr(builtins, name)  # not the candidate's: the builtin it is
        dict.__setitem__(self, name, value)
        return value


def _allowed_names(job: dict) -> frozenset[str]:
    """The names T may take from C: the job's list (computed by the host from the task) and the
    entry point, never a dunder."""
    names = job.get("candidate_names") or ()
    if not isinstance(names, (list, tuple)):
        raise ValueError("candidate_names must be a list of names")
    out = {n for n in names if type(n) is str and n.isidentifier() and not n.startswith("__")}
    entry = job.get("entry_point")
    if type(entry) is str and entry.isidentifier():
        out.add(entry)
    return frozenset(out)


_CODE_CACHE: dict[tuple[str, str], object] = {}  # T's compiled preludes and tests (trusted text)


def _compiled(source: str, name: str) -> object:
    """The code object of a trusted prelude or test suite, compiled once per persistent T: the ten
    samples of a problem share it (code objects are immutable, so sharing leaks nothing)."""
    key = (source, name)
    code = _CODE_CACHE.get(key)
    if code is None:
        code = compile(source, name, "exec")
        if len(_CODE_CACHE) >= 1024:
            _CODE_CACHE.clear()
        _CODE_CACHE[key] = code
    return code


def _run_tests(job: dict) -> dict:
    """The whole trusted side of one sample, in a fresh namespace; returns T's report."""
    try:
        ns = _TestNamespace(_allowed_names(job), __name__="__main__", __builtins__=builtins)
        exec(_compiled(job.get("prelude") or "", "<prelude>"), ns, ns)
        entry = job.get("entry_point")
        if entry:  # the prompt's stub: the tests must reach the candidate's version by this name
            dict.pop(ns, entry, None)
        _CHANNEL.wait_hello()
        exec(_compiled(job.get("tests") or "", "<tests>"), ns, ns)
        if entry:
            check = dict.get(ns, "check")
            if not callable(check):
                return {"outcome": "runtime_error", "detail": "the tests define no check() function"}
            if _CHANNEL.hello.get("fn") is not True and not isinstance(
                _CHANNEL.lookup(entry), RemoteFunction
            ):
                return {"outcome": "runtime_error", "detail": f"{entry} is not a function in the candidate"}
            check(RemoteFunction(entry))
    except AssertionError as exc:
        if _CHANNEL.fault:
            return {"outcome": _CHANNEL.fault[0], "detail": _CHANNEL.fault[1]}
        return {
            "outcome": "failed",
            "detail": _short(f"AssertionError: {exc}" if str(exc) else "AssertionError"),
        }
    except KeyError as exc:
        if _CHANNEL.fault:
            return {"outcome": _CHANNEL.fault[0], "detail": _CHANNEL.fault[1]}
        return {"outcome": "runtime_error", "detail": _short(f"KeyError: {exc}")}
    except BaseException as exc:  # noqa: BLE001 - anything else the tests raised
        if _CHANNEL.fault:
            return {"outcome": _CHANNEL.fault[0], "detail": _CHANNEL.fault[1]}
        return {"outcome": "runtime_error", "detail": _short(f"{type(exc).__name__}: {exc}")}
    if _CHANNEL.fault:  # the tests swallowed a fault: still never a pass
        return {"outcome": _CHANNEL.fault[0], "detail": _CHANNEL.fault[1]}
    return {"outcome": "passed", "detail": ""}


def _test_worker(sock_fd: int, uid: int | None, as_bytes: int) -> None:
    """Body of the persistent test process T after fork; never returns.

    T only ever runs trusted tests and sees decoded builtin values (and its own RemoteRefs) from C,
    so one T serves many samples: per job it gets the job and that job's two pipe ends to C over
    its socket, runs prelude and tests in a fresh namespace and answers with its report.  Any
    anomaly (deadline, broken socket, sandbox error) makes the runner kill it and start another.
    """
    code = 0
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a dead candidate is an OSError, not our death
        devnull = os.open(os.devnull, os.O_RDWR)
        # fds 3 and 4 hold /dev/null between jobs, so the pipe ends received per job land elsewhere
        _remap_fds({0: devnull, 1: devnull, 2: devnull, _T_REQ: devnull, _T_REP: devnull, _T_CTL: sock_fd})
        if uid is not None:  # what a test may import, while the stdlib is surely readable (root)
            for name in sorted(PREIMPORT_OK):
                try:
                    __import__(name)
                except Exception:  # noqa: BLE001 - the tests' own import will report it
                    pass
        _set_limits(
            {
                resource.RLIMIT_AS: as_bytes,
                resource.RLIMIT_NPROC: 64
                if uid is not None
                else resource.getrlimit(resource.RLIMIT_NPROC)[1],
                resource.RLIMIT_FSIZE: 16 << 20,
                resource.RLIMIT_NOFILE: 64,
                resource.RLIMIT_CORE: 0,
            }
        )
        _drop_privileges(uid)
        os.chdir("/")
        _set_env(HOME="/")
        _serve_tests(socket.socket(fileno=_T_CTL))
    except BaseException:  # noqa: BLE001 - the runner sees the closed socket and replaces T
        code = 70
    finally:
        os._exit(code)


def _serve_tests(sock: socket.socket) -> None:
    """T's job loop: every job starts from the same interpreter state the first one saw."""
    global _CHANNEL
    import random

    random_state = random.getstate()  # HumanEval/38, /50 draw from the shared generator
    recursion_limit = sys.getrecursionlimit()
    while True:
        msg, fds = _sock_recv(sock)
        if msg is None:
            return
        try:
            if len(fds) != 2 or min(fds) <= _T_CTL:
                raise RuntimeError("a job needs exactly two new pipe ends")
            os.dup2(fds[0], _T_REQ)
            os.dup2(fds[1], _T_REP)
            for fd in fds:
                os.close(fd)
            _CHANNEL = _Channel()
            _RBUF.clear()  # nothing of the last job's pipes carries over
            random.setstate(random_state)
            sys.setrecursionlimit(recursion_limit)
            report = _run_tests(msg)
            _CHANNEL = _Channel()
            os.dup2(0, _T_REQ)  # closes this job's pipe ends: C sees EOF and ends
            os.dup2(0, _T_REP)
        except BaseException as exc:  # noqa: BLE001 - say so for this job; the runner replaces T
            report = {
                "outcome": "sandbox_error",
                "detail": _short(f"test process: {type(exc).__name__}: {exc}"),
            }
        report["seq"] = msg.get("seq")
        report["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        body = json.dumps(report).encode()
        sock.sendall(struct.pack("<I", len(body)) + body)


# ------------------------------------------------------------------------------------ zygote


def _count_uid_processes(uid: int) -> int:
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _candidate_limits(msg: dict, uid: int | None) -> list[tuple[int, tuple[int, int]]]:
    """C's resource limits (and its CPU seconds), computed in the zygote before the fork: every
    object a fresh child touches costs it a copied page, so the child only makes the syscalls."""
    timeout_s, memory_mb = float(msg["timeout_s"]), int(msg["memory_mb"])
    nproc = 64 if uid is not None else _count_uid_processes(os.getuid()) + 64
    limits = {
        resource.RLIMIT_AS: memory_mb << 20,
        resource.RLIMIT_NPROC: nproc,
        resource.RLIMIT_FSIZE: 16 << 20,
        resource.RLIMIT_NOFILE: 64,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_MEMLOCK: 0,
        resource.RLIMIT_MSGQUEUE: 0,
    }
    cpu = int(math.ceil(timeout_s)) + 1
    return [*_limit_pairs(limits), (resource.RLIMIT_CPU, (cpu, cpu + 1))]  # SIGXCPU, then SIGKILL


def _read_source(fd: int) -> tuple[str, str | None]:
    """C's own program and entry point, from the memfd the runner filled (the zygote never reads it)."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    payload = json.loads(b"".join(chunks))
    entry = payload.get("entry")
    return payload["candidate"], entry if isinstance(entry, str) else None


def _candidate_child(
    fds: list[int],
    stdin: int,
    uid: int | None,
    scratch: str,
    limits: list[tuple[int, tuple[int, int]]],
) -> None:
    """Body of C after fork (from the zygote, which already set SIGINT to its default, HOME and
    TMPDIR to `scratch`, and worked out the limits); never returns.  C reads its own program from
    the runner's memfd, so the process it was forked from never held any sample's code."""
    code = 70
    try:
        os.setsid()
        src, req_r, rep_w, out_w = fds
        _remap_fds({0: stdin, 1: out_w, 2: out_w, _C_REQ: req_r, _C_REP: rep_w, _C_SRC: src})
        candidate, entry = _read_source(_C_SRC)
        for name in _preimport_names(candidate) if uid is not None else ():
            try:
                __import__(name)
            except Exception:  # noqa: BLE001 - the candidate's own import will report it
                pass
        for res, pair in limits:
            resource.setrlimit(res, pair)
        _drop_privileges(uid)
        # The uid change made C non-dumpable (its /proc owned by root); give it back its own
        # /proc/self like any process: nothing of another uid becomes reachable by this.
        _prctl(_PR_SET_DUMPABLE, 1)
        os.mkdir(scratch, 0o700)
        os.chdir(scratch)
        _candidate_main(candidate, entry)
        code = 0
    except MemoryError:
        code = 71
    except BaseException:  # noqa: BLE001
        code = 70
    finally:
        os._exit(code)


def zygote_main(sock_fd: int, uids: tuple[int, int, int] | None) -> None:
    """Fork candidate processes on request; never returns a sample's data.

    Started by exec, with a clean env.  It never holds anything of a sample, so that no C can find
    an earlier sample in the memory it inherits: no test, no program (C reads its own from a
    memfd), no file name, no exit status in a Python object (C's status goes to the runner from a
    fixed ctypes buffer, zeroed after), no orphan (it is no subreaper: a C's daemons re-parent to
    the runner).  Each request carries only the job's limits, a uid and a scratch path.
    """
    import ctypes

    libc = _libc()
    libc.prctl, libc.waitpid  # noqa: B018 - resolved once here, not in every C
    status = ctypes.c_int(0)
    status_view = memoryview(status).cast("B")
    _warm_up()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # inherited by every C (no handler of ours in there)
    sock = socket.socket(fileno=sock_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    c_stdin = os.open(os.devnull, os.O_RDONLY)
    _set_env(HOME="/", TMPDIR="/tmp")  # from here on only these two change, per C
    limits_for: dict[tuple, list] = {}  # (timeout_s, memory_mb) -> C's limits
    _sock_send(sock, {"ready": True})  # warm: no job's deadline pays for our start
    while True:
        try:
            msg, fds = _sock_recv(sock)
        except (OSError, EOFError, ValueError):
            msg, fds = None, []
        op = msg.get("op") if msg else "exit"
        if op == "spawn":
            if msg.get("reap"):  # the last C, dead already (the runner saw it exit): its status is not needed
                libc.waitpid(int(msg["reap"]), ctypes.byref(status), 0)
                status.value = 0
            cuid = msg.get("uid") if uids else None
            key = (msg.get("timeout_s"), msg.get("memory_mb"), cuid is None)
            if key not in limits_for:
                if len(limits_for) >= 64:
                    limits_for.clear()
                limits_for[key] = _candidate_limits(msg, cuid)
            scratch = msg["scratch"]
            os.environ["HOME"] = os.environ["TMPDIR"] = scratch  # C's environment (CHILD_ENV + these)
            try:
                cpid = os.fork()
            except OSError:
                cpid = -1
            if cpid == 0:
                sock.close()
                _candidate_child(fds, c_stdin, cuid, scratch, limits_for[key])
            for fd in fds:
                os.close(fd)
            _sock_send(sock, {"pid": cpid})
        elif op == "reap":  # C was killed by the runner: wait for it, hand its status on untouched
            if libc.waitpid(int(msg["pid"]), ctypes.byref(status), 0) < 0:
                status.value = -1
            try:
                sock.sendall(status_view)
            finally:
                status.value = 0
        else:
            return


_LIBC: list = []


def _libc():  # noqa: ANN202 - a ctypes.CDLL
    """libc through ctypes, loaded once (before forks: ctypes costs ~0.2 ms a load)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


# ----------------------------------------------------------------- after each sample: the sweep


class Dirty(Exception):
    """A sample left something the runner cannot remove for certain: the runner answers, then exits
    (the executor replaces it), so no later sample ever runs beside what it left."""


def _proc_uids(pid: str) -> tuple[int, ...] | None:
    """A process's real, effective, saved and filesystem uids (None once it is gone).  From
    /proc/PID/status, not the owner of /proc/PID: a non-dumpable process's entry is root's."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    at = text.find(b"\nUid:")
    if at < 0:
        return None
    return tuple(int(u) for u in text[at + 5 : text.find(b"\n", at + 5)].split())


class _Sweeper:
    """Kills every process of the sandbox uids and removes their files, as the runner itself.

    Processes: found by scanning /proc (each process's uids from its status) and killed with the
    runner's CAP_KILL, never by switching to their uid, so nothing they do can signal the runner.
    A /proc entry already seen to belong to another uid is remembered by (pid, inode): a new
    process, even on a reused pid, has a new inode.  Files: removed with the filesystem uid set to
    their owner (the runner has no CAP_DAC_OVERRIDE in the container), whole trees however deep,
    odd permissions included.  Whatever cannot be removed for certain raises Dirty.
    """

    def __init__(self, uids: frozenset[int], reap: Callable[[], None]) -> None:
        self.uids, self.reap = uids, reap
        self.safe: set[tuple[int, int]] = set()  # (pid, /proc inode) of processes of other uids
        self.watch: _RootWatch | None = None
        try:
            self.watch = _RootWatch()
        except Exception:  # noqa: BLE001 - no inotify: every sweep lists the roots
            pass
        self.roots = [r for r in SCRATCH_ROOTS if os.path.isdir(r)]

    def kill_processes(self, keep: set[int], timeout: float = 5.0) -> bool:
        """SIGKILL every process of a sandbox uid but `keep`, until none is left (zombies reaped);
        returns whether there were any.  Dirty if some outlive `timeout`."""
        me = os.getpid()
        found = False
        deadline = time.monotonic() + timeout
        while True:
            alive = False
            for entry in os.scandir("/proc"):
                name = entry.name
                if not name.isdigit():
                    continue
                pid = int(name)
                if pid == me or pid in keep:
                    continue
                try:
                    ident = (pid, entry.inode())
                except OSError:
                    continue
                if ident in self.safe:
                    continue
                uids = _proc_uids(name)
                if uids is None:
                    continue
                if not self.uids.intersection(uids):
                    if len(self.safe) > 65536:
                        self.safe.clear()
                    self.safe.add(ident)
                    continue
                alive = found = True
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not alive:
                return found
            self.reap()
            if time.monotonic() > deadline:
                raise Dirty("a process of the sample survived SIGKILL")
            time.sleep(0.0005)

    def remove_files(self, uids: frozenset[int], full: bool = False) -> bool:
        """Remove every entry of `uids` from the writable roots (only the names that appeared
        since the last look, unless `full` or the watch overflowed); returns whether there were
        any besides empty scratch directories.  Dirty if one cannot be removed."""
        names = None if full or self.watch is None else self.watch.created()
        litter = False
        for root in self.roots:
            listed = names.get(root) if names is not None else None
            try:
                paths = [e.path for e in os.scandir(root)] if listed is None else [f"{root}/{n}" for n in listed]
            except OSError:
                continue
            for path in paths:
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_uid not in uids:
                    continue
                if not _remove_as(st.st_uid, path, st.st_mode & 0o170000 == 0o040000):
                    raise Dirty(f"could not remove {path}")
                if not (root == "/tmp" and os.path.basename(path).startswith("phi-eval-")):
                    litter = True
        return litter

    def remove_ipc(self, uids: frozenset[int]) -> bool:
        """Remove the System V IPC objects (shared memory, semaphores, message queues) of `uids`;
        the container's sysctls forbid making any, so this matters for --sandbox local."""
        found = False
        for kind in ("shm", "sem", "msg"):
            try:
                with open(f"/proc/sysvipc/{kind}", "rb") as fh:
                    header, *rows = fh.read().split(b"\n")
            except OSError:
                continue
            cols = header.split()
            try:
                at_id, at_uid, at_cuid = 1, cols.index(b"uid"), cols.index(b"cuid")
            except ValueError:
                continue
            for row in rows:
                fields = row.split()
                if len(fields) <= max(at_uid, at_cuid):
                    continue
                owner = next((int(fields[i]) for i in (at_cuid, at_uid) if int(fields[i]) in uids), None)
                if owner is None:
                    continue
                found = True
                if not _ipc_remove(kind, int(fields[at_id]), owner):
                    raise Dirty(f"could not remove a System V {kind} object")
        return found


def _remove_as(uid: int, path: str, is_dir: bool) -> bool:
    """Remove `path` (a whole tree when a directory) with the filesystem uid set to its owner;
    True once it is gone."""
    libc = _libc()
    libc.setfsuid(uid)
    try:
        if is_dir:
            try:
                os.rmdir(path)  # the common case: C's scratch, left empty
            except OSError:
                _rmtree_deep(path)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
        return not os.path.lexists(path)
    finally:
        libc.setfsuid(0)


def _ipc_remove(kind: str, ident: int, owner: int) -> bool:
    """IPC_RMID as the object's owner (only it, or CAP_SYS_ADMIN, may): the runner's effective
    uid changes, its real and saved uids stay root, so no process of `owner` could signal it."""
    libc = _libc()
    os.setresuid(-1, owner, -1)
    try:
        if kind == "shm":
            rc = libc.shmctl(ident, 0, None)
        elif kind == "sem":
            rc = libc.semctl(ident, 0, 0)
        else:
            rc = libc.msgctl(ident, 0, None)
    finally:
        os.setresuid(-1, 0, -1)
    return rc == 0


def _rmtree_deep(path: str, budget_s: float = 10.0) -> None:
    """Remove a directory tree of any depth without following symlinks: one directory fd at a time
    (a tree deeper than the fd limit is fine), each directory made accessible first (the candidate
    may have made it unreadable).  Needs no imports (the stdlib may be unreadable)."""
    deadline = time.monotonic() + budget_s
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        os.chmod(path, 0o700, follow_symlinks=False)
        cur = os.open(path, flags)
    except OSError:
        return
    names: list[str] = []  # the path below `path`, one name per level
    try:
        while time.monotonic() < deadline:
            sub = None
            with os.scandir(cur) as entries:
                listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for name, is_dir in listed:
                if is_dir:
                    sub = name
                    continue
                try:
                    os.unlink(name, dir_fd=cur)
                except OSError:
                    pass
            if sub is not None:
                try:
                    os.chmod(sub, 0o700, dir_fd=cur, follow_symlinks=False)
                    nxt = os.open(sub, flags, dir_fd=cur)
                except OSError:
                    return
                os.close(cur)
                cur = nxt
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=cur)
            os.close(cur)
            cur = parent
            try:
                os.rmdir(names.pop(), dir_fd=cur)
            except OSError:
                return
    finally:
        os.close(cur)
    try:
        os.rmdir(path)
    except OSError:
        pass


_IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW, _IN_IGNORED = 0x80, 0x100, 0x4000, 0x8000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


class _RootWatch:
    """The names that appeared in the scratch roots since the last look (inotify), so that the
    sweep after each job need not list and stat every entry of /tmp.

    Complete by construction: an entry can only appear in a directory by create, mkdir, mknod,
    symlink, link or a rename into it, and each of those is an IN_CREATE or IN_MOVED_TO event on
    the directory.  An overflowed queue or a lost watch makes the next sweep list the roots again.
    """

    def __init__(self) -> None:
        import ctypes

        libc = _libc()
        self.fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.roots: dict[int, str] = {}
        for root in SCRATCH_ROOTS:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(root), _IN_CREATE | _IN_MOVED_TO)
            if wd >= 0:
                self.roots[wd] = root

    def created(self) -> dict[str, set[str]] | None:
        """{root: names that appeared}; a root without a working watch is absent (so listed);
        None after an overflow (list every root)."""
        out: dict[str, set[str]] = {root: set() for root in self.roots.values()}
        overflow = False
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            pos = 0
            while pos + 16 <= len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16 : pos + 16 + size].split(b"\0", 1)[0]
                pos += 16 + size
                if mask & _IN_Q_OVERFLOW:
                    overflow = True
                elif mask & _IN_IGNORED:
                    out.pop(self.roots.pop(wd, ""), None)
                elif wd in self.roots and name:
                    out[self.roots[wd]].add(os.fsdecode(name))
        return None if overflow else {root: out[root] for root in self.roots.values() if root in out}


class _Counter:
    """A kernel counter read through an fd kept open (a pread costs ~1-10 us, an open ~100 us)."""

    def __init__(self, path: str) -> None:
        try:
            self.fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self.fd = None

    def read(self) -> bytes | None:
        if self.fd is None:
            return None
        try:
            return os.pread(self.fd, 64, 0)
        except OSError:
            return None


# The pid most recently allocated in this pid namespace, and the packets sent over `lo` (the only
# interface: --network none).  Whatever a sample could leave in its network namespace for the next
# one to see (a socket in TIME_WAIT, traffic) took packets over lo; a socket that never carried any
# dies with its process.
_LAST_PID = _Counter("/proc/sys/kernel/ns_last_pid")
_LO_PACKETS = _Counter("/sys/class/net/lo/statistics/tx_packets")


def _ipc_forbidden() -> bool:
    """Whether no System V IPC object can be made here (the container's sysctls: no segment,
    semaphore set or message queue identifiers at all), so there is none to look for."""
    try:
        with open("/proc/sys/kernel/shmmni", "rb") as fh:
            shm = int(fh.read())
        with open("/proc/sys/kernel/msgmni", "rb") as fh:
            msg = int(fh.read())
        with open("/proc/sys/kernel/sem", "rb") as fh:
            sem = int(fh.read().split()[3])
    except (OSError, ValueError, IndexError):
        return False
    return shm == msg == sem == 0


def _sock_send(sock: socket.socket, msg: dict, fds: list[int] | None = None) -> None:
    """One message (and fds) in one sendmsg; a dead peer is an OSError (EPIPE), never a SIGPIPE."""
    body = json.dumps(msg).encode()
    data = (b"F" if fds else b"N") + struct.pack("<I", len(body)) + body
    sent = socket.send_fds(sock, [data], fds or [], socket.MSG_NOSIGNAL)
    if sent < len(data):
        sock.sendall(data[sent:], socket.MSG_NOSIGNAL)


def _sock_recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 5, 8)
    if not data:
        return None, []
    if len(data) < 5:
        data += _sock_exact(sock, 5 - len(data))
    (size,) = struct.unpack("<I", data[1:5])
    return json.loads(_sock_exact(sock, size)), list(fds)


def _sock_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("zygote socket closed")
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------------------------ runner


class _Broken(Exception):
    """The sandbox itself failed before the job could run (the zygote cannot fork): the runner
    exits without a verdict, so the executor runs the job again on a fresh one."""


class Runner:
    """Reads jobs, runs each as a (T, C) pair, checks the sample left nothing, writes verdicts."""

    def __init__(self, uids: tuple[int, int, int] | None) -> None:
        self.uids = uids  # (uid of T, first candidate uid, number of candidate uids), or None
        self.source = os.path.abspath(__file__)
        self.zygote: int | None = None
        self.zsock: socket.socket | None = None
        self.statuses: dict[int, int] = {}
        self.t: _TestProcess | None = None
        self.seq = 0
        self.dirty: str | None = None  # what the last sample left: answer, then exit
        self.reap_owed = 0  # a dead C the zygote reaps with the next spawn
        self.next_ino: dict[str, int] = {}  # per tmpfs root: the inode number the next probe must get
        self.sweeper = (
            _Sweeper(frozenset([uids[0], *range(uids[1], uids[1] + uids[2])]), self._reap_orphans)
            if uids
            else None
        )
        # PID 1 in a container of its own: the pid counter and the network namespace are the
        # sandbox's alone, so a sample that moved them is seen (in --sandbox local they are the host's).
        self.own_namespaces = os.getpid() == 1 and _LAST_PID.read() is not None
        self.net = _LO_PACKETS.read() if self.own_namespaces else None
        self.ipc_possible = not (self.own_namespaces and _ipc_forbidden())
        if self.own_namespaces:  # the baseline for the first sample's inode check
            try:
                self._probe_inodes()
            except Dirty:
                pass
        _warm_up()
        self._start_zygote()

    def _candidate_uid(self) -> int | None:
        """A candidate uid per sample, in turn through the range: a process a sample left could
        never signal the next sample's, nor share its process limit (and the sweep kills it)."""
        if not self.uids:
            return None
        return self.uids[1] + self.seq % self.uids[2]

    def _reap_orphans(self) -> None:
        """Reap every exited child; only T's and the zygote's statuses are kept (the rest are a
        sample's orphans, which re-parent to the runner)."""
        keep = {self.zygote, self.t.pid if self.t else None}
        for pid, status in _reap_all().items():
            if pid in keep:
                self.statuses[pid] = status

    def _sweep_all(self) -> None:
        """Kill every process of the sandbox uids and remove all their files (at start, after a
        zygote died, at the end): nothing of an earlier runner or sample survives it."""
        if self.sweeper is None:
            return
        try:
            keep = {p for p in (self.zygote, self.t.pid if self.t else None) if p}
            self.sweeper.kill_processes(keep)
            self.sweeper.remove_files(self.sweeper.uids, full=True)
            self.sweeper.remove_ipc(self.sweeper.uids)
        except Dirty as exc:
            self.dirty = str(exc)

    def _start_zygote(self) -> None:
        """Exec a fresh interpreter (not a fork: it must never have seen a test) with a clean env."""
        self._kill_t()
        self._stop_zygote(wait=0)
        self.reap_owed = 0  # the old zygote's children re-parent to the runner, which reaps them
        self._sweep_all()  # a crashed predecessor may have left processes behind
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if theirs.fileno() == _ZYGOTE_FD:  # dup2 onto itself would keep close-on-exec set
            moved = socket.socket(fileno=os.dup(theirs.fileno()))
            theirs.close()
            theirs = moved
        args = [sys.executable, "-I", "-S", "-u", self.source, "--zygote", str(_ZYGOTE_FD)]
        if self.uids:
            args += ["--uids", ",".join(map(str, self.uids))]
        self.zygote = os.posix_spawn(
            sys.executable,
            args,
            dict(CHILD_ENV),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), _ZYGOTE_FD),
            ],
        )
        theirs.close()
        self.zsock = ours
        if _sock_recv(ours)[0] is None:
            raise RuntimeError("the zygote did not start")

    # -- the persistent test process

    def _test_process(self, as_bytes: int) -> _TestProcess:
        """The live T, replaced when it has served its share or needs a larger memory limit."""
        t = self.t
        if t is not None and (t.jobs >= T_MAX_JOBS or t.as_bytes < as_bytes):
            self._retire_t()
            t = None
        if t is None:
            t = self.t = self._start_t(as_bytes)
        return t

    def _start_t(self, as_bytes: int) -> _TestProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self.zsock.close()
            _test_worker(theirs.detach(), self.uids[0] if self.uids else None, as_bytes)
        theirs.close()
        return _TestProcess(pid, ours, as_bytes)

    def _kill_t(self) -> int | None:
        """Kill the current T (if any) and reap it; returns its wait status."""
        t, self.t = self.t, None
        if t is None:
            return None
        t.sock.close()
        for target in (-t.pid, t.pid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        return self._wait(t.pid)

    def _retire_t(self) -> None:
        """Kill T between jobs (idle, recycled or resized); it never forks, so nothing of its uid
        is left (the next sweep would kill it)."""
        self._kill_t()

    def _stop_zygote(self, wait: float) -> None:
        if self.zsock is not None:
            try:
                if wait:
                    _sock_send(self.zsock, {"op": "exit"})
            except OSError:
                pass
            self.zsock.close()
            self.zsock = None
        if self.zygote is None:
            return
        end = time.monotonic() + wait
        while True:
            try:
                pid, _ = os.waitpid(self.zygote, os.WNOHANG)
            except ChildProcessError:
                break
            if pid or time.monotonic() >= end:
                if not pid:
                    os.kill(self.zygote, signal.SIGKILL)
                    os.waitpid(self.zygote, 0)
                break
            time.sleep(0.005)
        self.statuses.pop(self.zygote, None)
        self.zygote = None

    def ready_line(self) -> dict:
        try:
            from _sha256 import sha256  # hashlib would pull OpenSSL (4 MB) into every fork
        except ImportError:
            from hashlib import sha256
        with open(self.source, "rb") as fh:
            digest = sha256(fh.read()).hexdigest()[:12]
        return {
            "ready": True,
            "runner": digest,
            "isolation": "uid" if self.uids else "same-uid",
            "uids": list(self.uids[:2]) if self.uids else None,
            "candidate_uids": self.uids[2] if self.uids else 0,
            "pid": os.getpid(),
            "zygote": self.zygote,
        }

    def serve(self, inp, out) -> None:  # noqa: ANN001 - binary file objects
        out.write(json.dumps(self.ready_line()) + "\n")
        out.flush()
        try:
            for line in self._lines(inp):
                if not line.strip():
                    continue
                reply = self.handle_line(line)
                out.write(json.dumps(reply) + "\n")
                out.flush()
                self._reap_orphans()
                if self.dirty:  # the jobs already queued here run on the executor's next runner
                    break
        except _Broken:
            pass
        self._shutdown()

    def _lines(self, inp) -> Iterator[bytes]:  # noqa: ANN001 - a binary file object
        """Job lines from `inp`.  While none comes for T_IDLE_S, the idle T is retired: between
        bursts of work no process of the sandbox uids stays alive."""
        try:
            fd = inp.fileno()
        except (AttributeError, OSError, ValueError):
            yield from iter(inp.readline, b"")
            return
        pending: list[bytes] = []
        while True:
            if self.t is not None and not select.select([fd], [], [], T_IDLE_S)[0]:
                try:
                    self._retire_t()
                except Exception:  # noqa: BLE001 - the next job starts a new T either way
                    pass
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if pending:
                    yield b"".join(pending)
                return
            start = 0
            while (nl := chunk.find(b"\n", start)) >= 0:
                pending.append(chunk[start : nl + 1])
                yield b"".join(pending)
                pending.clear()
                start = nl + 1
            if start < len(chunk):
                pending.append(chunk[start:])

    def _shutdown(self) -> None:
        self._kill_t()
        self._stop_zygote(wait=10)
        self._sweep_all()

    def handle_line(self, line: bytes) -> dict:
        t0 = time.monotonic()
        job_id = None
        try:
            job = json.loads(line)
            if not isinstance(job, dict):
                raise ValueError("a job must be a JSON object")
            job_id = job.get("id")
            for key, kind in (
                ("id", str),
                ("candidate", str),
                ("timeout_s", (int, float)),
                ("memory_mb", int),
            ):
                if not isinstance(job.get(key), kind):
                    raise ValueError(f"field {key!r} missing or not {getattr(kind, '__name__', 'a number')}")
            if job["timeout_s"] <= 0 or job["memory_mb"] <= 0:
                raise ValueError("timeout_s and memory_mb must be positive")
            names = job.get("candidate_names")
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise ValueError("field 'candidate_names' must be a list of names")
        except (ValueError, RecursionError) as exc:
            return self._reply(job_id, "sandbox_error", t0, f"bad request: {exc}")
        try:
            outcome, detail = self.run_job(job)
        except _Broken:
            raise
        except Exception as exc:  # noqa: BLE001 - keep serving; the zygote is restarted
            outcome, detail = "sandbox_error", f"runner: {type(exc).__name__}: {exc}"
            try:
                self._start_zygote()  # and a fresh T
            except Exception as exc2:  # noqa: BLE001
                detail += f"; zygote restart failed: {exc2}"
        reply = self._reply(job_id, outcome, t0, detail)
        if self.dirty:
            reply["dirty"] = _short(self.dirty)
        return reply

    @staticmethod
    def _reply(job_id: object, outcome: str, t0: float, detail: str) -> dict:
        return {
            "id": job_id if isinstance(job_id, str) else None,
            "outcome": outcome,
            "duration_s": round(time.monotonic() - t0, 4),
            "detail": _short(detail),
        }

    def run_job(self, job: dict) -> tuple[str, str]:
        timeout_s, memory_mb = float(job["timeout_s"]), int(job["memory_mb"])
        max_out = int(job.get("max_output_bytes") or MAX_OUTPUT_BYTES)
        deadline = time.monotonic() + timeout_s
        as_bytes = max(2 * memory_mb, 2048) << 20
        self.seq += 1
        entry = job.get("entry_point") if isinstance(job.get("entry_point"), str) else None
        work = {
            "seq": self.seq,
            "prelude": job.get("prelude") or "",
            "tests": job.get("tests") or "",
            "entry_point": job.get("entry_point"),
            "candidate_names": job.get("candidate_names") or [],
        }
        cuid = self._candidate_uid()
        scratch = f"/tmp/phi-eval-{os.getpid()}-{self.seq}-{os.urandom(4).hex()}"
        # C's program goes to C alone, through a memfd only it reads: never through the zygote.
        src = os.memfd_create("candidate", os.MFD_CLOEXEC)
        fds = [src]
        try:
            _write_all(src, json.dumps({"candidate": job["candidate"], "entry": entry}).encode())
            os.lseek(src, 0, os.SEEK_SET)
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            fds += [req_r, req_w, rep_r, rep_w]
            out_r, out_w = os.pipe()
            fds.append(out_w)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        try:
            t = self._test_process(as_bytes)
            try:
                _sock_send(t.sock, work, [req_w, rep_r])
            except OSError:  # T died while idle: a fresh one takes the job
                self._retire_t()
                t = self._test_process(as_bytes)
                _sock_send(t.sock, work, [req_w, rep_r])
            t.jobs += 1
            spawn = {
                "op": "spawn",
                "timeout_s": timeout_s,
                "memory_mb": memory_mb,
                "uid": cuid,
                "scratch": scratch,
                "reap": self.reap_owed,
            }
            self.reap_owed = 0
            _sock_send(self.zsock, spawn, [src, req_r, rep_w, out_w])
        except BaseException:
            os.close(out_r)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        try:
            reply, _ = _sock_recv(self.zsock)
            if reply is None:
                raise RuntimeError("zygote closed its socket")
            cpid = int(reply["pid"])
            if cpid <= 0:  # no process can be made (pids exhausted?): not the sample's doing
                self._kill_t()
                raise _Broken("the zygote cannot fork")
            report, output, timed_out = self._collect(t.sock.fileno(), out_r, deadline, max_out)
        finally:
            os.close(out_r)
        rep = _parse_report(report, self.seq)
        tstatus = None
        if rep is None or rep["outcome"] in ("sandbox_error", "oom") or rep.get("rss_kb", 0) > T_MAX_RSS_KB:
            tstatus = self._kill_t()  # anything odd, or a T grown big: the next job gets a fresh one
        need_status = rep is None or rep["outcome"] == "candidate_died"
        cstatus = self._end_candidate(cpid, cuid, scratch, need_status)
        return self._verdict(rep, output, timed_out, cstatus, tstatus, timeout_s)

    def _end_candidate(self, cpid: int, cuid: int | None, scratch: str, need_status: bool) -> int | None:
        """Kill C's tree, get C's exit status from the zygote, then make sure the sample left
        nothing: no process of a sandbox uid but T, no file of its uid in a writable root, no IPC
        object; in the container also no new process (the pid counter) and no socket or loopback
        traffic.  What cannot be undone for certain marks the runner dirty.  Returns C's status
        when `need_status` (else None: in the container C is only seen to exit, and the zygote
        reaps it with the next spawn, saving a round trip per sample)."""
        lazy = self.own_namespaces and not need_status
        pidfd = None
        if lazy:
            try:
                pidfd = os.pidfd_open(cpid)
            except (AttributeError, OSError):
                lazy = False
        for target in (-cpid, cpid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        status = None
        if pidfd is not None:
            try:
                if not select.select([pidfd], [], [], 5.0)[0]:
                    self.dirty = "the candidate process did not die"
                    return None
            finally:
                os.close(pidfd)
            self.reap_owed = cpid
        else:
            status = self._reap_candidate(cpid)
            if self.dirty:
                return None
        if self.sweeper is None:  # same-uid mode: C's own scratch (its group was killed above)
            if os.path.lexists(scratch):
                _rmtree_deep(scratch)
            return status
        return self._check_clean(cpid, cuid, status)

    def _probe_inodes(self) -> None:
        """A tmpfs numbers its inodes one by one, so a file a sample made, even one it deleted,
        would show in the numbers the next sample's files get.  A probe directory per root, made
        after each sample, must get the number the last probe predicts (after one scratch
        directory, in /tmp); a higher one means the sample made files: dirty."""
        for root in ("/tmp", "/dev/shm"):
            probe = f"{root}/.phi-eval-probe-{os.getpid()}"
            try:
                os.mkdir(probe, 0o700)
                ino = os.lstat(probe).st_ino
                os.rmdir(probe)
            except OSError:
                continue
            expected = self.next_ino.get(root)
            self.next_ino[root] = ino + (2 if root == "/tmp" else 1)  # /tmp: the next C's scratch first
            if expected is not None and ino > expected:
                self.next_ino.clear()
                raise Dirty(f"the sample made files in {root} (its inode numbers moved)")

    def _reap_candidate(self, cpid: int) -> int | None:
        """C's wait status, from the zygote (its parent), which reaps it now."""
        try:
            self.zsock.settimeout(5.0)
            _sock_send(self.zsock, {"op": "reap", "pid": cpid})
            raw = _sock_exact(self.zsock, 4)
            self.zsock.settimeout(None)
            (value,) = struct.unpack("i", raw)
            return None if value < 0 else value
        except (OSError, EOFError) as exc:
            self.dirty = f"the candidate process could not be reaped ({exc})"
            return None

    def _check_clean(self, cpid: int, cuid: int | None, status: int | None) -> int | None:
        """The sweep after C is dead (see _end_candidate)."""
        assert self.sweeper is not None
        try:
            keep = {p for p in (self.zygote, self.t.pid if self.t else None) if p}
            # In the container nothing but C makes a process between the spawn and here, so an
            # unmoved pid counter proves the sample left no process (no /proc scan needed).
            forked = not self.own_namespaces or _LAST_PID.read() != b"%d\n" % cpid
            if forked:
                if self.reap_owed == cpid:  # its zombie would count as a process of its uid
                    self.reap_owed = 0
                    self._reap_candidate(cpid)
                self.sweeper.kill_processes(keep)
            self.sweeper.remove_files(frozenset([cuid]))
            if self.ipc_possible:
                self.sweeper.remove_ipc(self.sweeper.uids)
            if self.own_namespaces:
                if forked:
                    raise Dirty("the sample started processes or threads (the pid counter moved)")
                if _LO_PACKETS.read() != self.net:
                    raise Dirty("the sample used sockets or the loopback device")
                self._probe_inodes()
        except Dirty as exc:
            self.dirty = str(exc)
        return status

    def _wait(self, pid: int) -> int | None:
        if pid in self.statuses:
            return self.statuses.pop(pid)
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

    @staticmethod
    def _collect(t_fd: int, out_r: int, deadline: float, max_out: int) -> tuple[bytes, bytes, bool]:
        """Read T's report frame (b"" if T closed its socket first); drain C's output (keeping
        max_out bytes)."""
        report, output = bytearray(), bytearray()
        watch = [t_fd, out_r]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"", bytes(output), True
            ready, _, _ = select.select(watch, [], [], left)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if fd == t_fd:
                    if not chunk:
                        return b"", bytes(output), False
                    report += chunk
                    if len(report) >= 4:
                        (size,) = struct.unpack("<I", report[:4])
                        if size > MAX_REPORT_BYTES:
                            return b"", bytes(output), False
                        if len(report) >= 4 + size:
                            return bytes(report[4 : 4 + size]), bytes(output), False
                elif not chunk:
                    watch.remove(out_r)
                elif len(output) < max_out:
                    output += chunk[: max_out - len(output)]

    @staticmethod
    def _verdict(
        rep: dict | None,
        output: bytes,
        timed_out: bool,
        cstatus: int | None,
        tstatus: int | None,
        timeout_s: float,
    ) -> tuple[str, str]:
        if rep is not None:
            outcome, detail = rep["outcome"], str(rep.get("detail", ""))
            if outcome != "candidate_died":
                return outcome, detail
        elif timed_out:
            return "timeout", f"no verdict within {timeout_s:g}s"
        else:
            outcome, detail = (
                "killed",
                _describe_status("test process", tstatus) or "test process gave no verdict",
            )
            if cstatus is None:
                return outcome, detail
        # The candidate died during the tests: say how, never pass.
        if cstatus is not None and os.WIFSIGNALED(cstatus):
            sig = os.WTERMSIG(cstatus)
            if sig == signal.SIGXCPU:
                return "timeout", "candidate exceeded its CPU time limit"
            if sig == signal.SIGXFSZ:
                return "runtime_error", "candidate exceeded the file size limit"
            return "killed", _describe_status("candidate process", cstatus)
        if cstatus is not None and os.WIFEXITED(cstatus):
            code = os.WEXITSTATUS(cstatus)
            if code == 71:
                return "oom", "candidate process ran out of memory"
            tail = output.decode("utf-8", "replace").strip()[-150:]
            return "runtime_error", f"candidate process exited with code {code}" + (
                f"; output: {tail}" if tail else ""
            )
        return "killed", detail


class _TestProcess:
    """The runner's handle on its persistent T."""

    __slots__ = ("pid", "sock", "as_bytes", "jobs")

    def __init__(self, pid: int, sock: socket.socket, as_bytes: int) -> None:
        self.pid, self.sock, self.as_bytes, self.jobs = pid, sock, as_bytes, 0


def _parse_report(report: bytes, seq: int) -> dict | None:
    """T's report for job `seq`, or None when there is none or it is malformed."""
    try:
        rep = json.loads(report) if report else None
    except (ValueError, RecursionError):
        return None
    if not (
        isinstance(rep, dict)
        and rep.get("seq") == seq
        and rep.get("outcome") in OUTCOMES + ("candidate_died",)
    ):
        return None
    if not isinstance(rep.get("rss_kb", 0), int):
        return None
    return rep


def _describe_status(who: str, status: int | None) -> str:
    if status is None:
        return ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"{who} killed by {name}"
    return f"{who} exited with code {os.WEXITSTATUS(status)}"


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
    uids: tuple[int, int, int] | None = DEFAULT_UIDS
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
            todo = _parse_uid_list(argv[i + 1])
            if os.geteuid() == 0 and todo and min(todo) > 0:
                sweeper = _Sweeper(todo, _reap_all)
                try:
                    sweeper.kill_processes(set())
                    sweeper.remove_files(todo, full=True)
                    sweeper.remove_ipc(todo)
                except Dirty as exc:
                    print(f"runner.py: {exc}", file=sys.stderr)
                    return 1
            return 0
        else:
            print(f"runner.py: unknown argument {argv[i]!r}", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        uids = None  # cannot switch uids: T and C share ours (announced in the ready line)
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    if zygote_fd is not None:
        zygote_main(zygote_fd, uids)
        return 0
    _subreaper()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    Runner(uids).serve(sys.stdin.buffer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
