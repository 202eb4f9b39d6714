"""phi-eval's trusted runner: executes untrusted completions so that they cannot forge a verdict.

Stdlib only (it runs inside a bare container as PID 1, and on the host for `--sandbox local`).

Protocol: started as `python3 -I -u runner.py [--uids T,C]`, it prints one line
`{"ready": true, "runner": <sha256[:12] of this file>, "isolation": "uid"|"same-uid", ...}`, then reads
newline-delimited JSON jobs (phi_eval.jobs.ExecJob.to_json() plus optional `max_output_bytes`) on
stdin and answers each with one line `{"id", "outcome", "duration_s", "detail"}`.  EOF -> clean exit.

Why it is shaped like this (each sample is split across processes that cannot reach each other):
- The candidate process C runs the model's program.  It is forked by a *zygote*: a separate
  interpreter started once with a clean environment, which never sees a test, so C cannot find
  expected values in its own memory (gc, frames, /proc/self/mem).
- The test process T runs the benchmark's trusted tests and never executes candidate code.  Names
  the tests do not define resolve to proxies: a call pickles (name, args) to C (trusted -> untrusted)
  and C answers in a tagged JSON that can only carry exact builtin values, so a returned object
  with a rigged `__eq__` is impossible: T compares its own plain values.
- Any other object (an instance of a candidate class, a class, a generator) stays in C, in a
  per-sample handle table; T gets a RemoteRef, its own class, which C's object can only be reached
  through by call, getattr and setattr (MBPP's `root.left = Node(2)`), each a round trip answered
  the same way.  Its ==, hash and str are the handle's; truth, len, order, arithmetic and iteration
  raise TypeError, so no candidate code decides a comparison or a truth test in T.
- T reports to the runner over a private pipe, and only after the tests ran to the end; an exit
  code, an early exit or a dead process is never a pass.
- As root, T and C run as two different unprivileged uids with no groups, so C can neither signal,
  ptrace nor read /proc of T or the runner.  After each job every process of both uids is killed
  (kill(-1) from a helper that switched to that uid) and C's files are removed.
"""

from __future__ import annotations

import builtins
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
from collections.abc import Callable

OUTCOMES = ("passed", "failed", "runtime_error", "syntax_error", "timeout", "oom", "killed", "sandbox_error")
DEFAULT_UIDS = (10001, 10002)  # (test process, candidate process)
MAX_OUTPUT_BYTES = 65536
MAX_REPLY_BYTES = 32 << 20  # one value returned by the candidate, JSON-encoded
MAX_DEPTH = 100
MAX_ITEMS = 2_000_000
MAX_HANDLES = 1 << 40
DETAIL_CHARS = 300
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
SCRATCH_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")
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
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

# fds inside the children (fixed numbers, everything else closed)
_ZYGOTE_FD = 3
_C_REQ, _C_REP = 3, 4  # candidate: requests in, replies out
_T_REQ, _T_REP, _T_RPT = 3, 4, 5  # test process: requests out, replies in, report out


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


def _read_exact(fd: int, n: int) -> bytes | None:
    """n bytes, or None at EOF before the first byte; a short read mid-frame raises EOFError."""
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise EOFError("truncated frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _send_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, struct.pack("<I", len(payload)) + payload)


def _recv_frame(fd: int, limit: int) -> bytes | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack("<I", head)
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds {limit}")
    body = _read_exact(fd, size)
    if body is None and size:
        raise EOFError("truncated frame")
    return body or b""


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


def _preimport(source: str) -> None:
    """Import the allow-listed stdlib modules `source` names while still root.

    Locally the interpreter's files may be unreadable to the sandbox uids (a Python under /root);
    importing here (trusted stdlib code, before any untrusted code runs) makes `import hashlib`
    work there too, and costs nothing extra where it would be imported anyway.
    """
    for match in _IMPORT_RE.finditer(source):
        names = [match.group(1)] if match.group(1) else match.group(2).split(",")
        for name in names:
            name = name.split()[0] if name.split() else ""
            if name.split(".")[0] in PREIMPORT_OK and name not in sys.modules:
                try:
                    __import__(name)
                except Exception:  # noqa: BLE001 - the child's own import will report it
                    pass


def _drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("privilege drop failed")


def _set_limits(limits: dict[int, int]) -> None:
    for res, value in limits.items():
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort: the uid sweep does not depend on it
        pass


def _subreaper() -> None:
    """Orphans (a candidate's daemons) re-parent to this process, so they can be reaped and killed."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _reap_all() -> dict[int, int]:
    """Reap every exited child (PID 1 inherits orphans); returns {pid: status}."""
    out = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return out
        if pid == 0:
            return out
        out[pid] = status


# ------------------------------------------------------------- value encoding (candidate -> tests)


class _Unsupported(Exception):
    pass


_COERCE = (bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset)


def encode_value(value: object, handle: Callable[[object], dict] | None = None) -> object:
    """A JSON-ready, tagged form of a builtin value.

    Anything else (an instance of a candidate class, a class, a generator...) becomes
    `handle(x)` (C's opaque reference `{"t": "ref", "id": N, "type": name}`), or raises
    _Unsupported without a `handle`.  Runs in the candidate process, so it cannot be trusted to be
    honest: the decoder only ever builds builtin values and T's own RemoteRef, which is what makes
    a lie harmless (it is just a wrong return value).
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
        for base in _COERCE:  # Counter, OrderedDict, namedtuple, IntEnum, str subclasses...
            if isinstance(x, base):
                return enc(base(x), depth)
        if handle is not None:
            return handle(x)
        raise _Unsupported(f"returned a {t.__module__}.{t.__qualname__}, not a builtin value")

    return enc(value, 0)


def decode_value(data: object) -> object:
    """Rebuild a value from encode_value's output using builtin constructors only."""

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
        if t is dict and len(v) == 1:
            ((tag, body),) = v.items()
            if tag in "TSFDC" and type(body) is not list:
                raise TypeError("malformed value")
            if tag == "T":
                return tuple(dec(e, depth + 1) for e in body)
            if tag == "S":
                return {dec(e, depth + 1) for e in body}
            if tag == "F":
                return frozenset(dec(e, depth + 1) for e in body)
            if tag == "D":
                out = {}
                for pair in body:
                    if type(pair) is not list or len(pair) != 2:
                        raise TypeError("malformed dict")
                    out[dec(pair[0], depth + 1)] = dec(pair[1], depth + 1)
                return out
            if tag == "C" and len(body) == 2 and all(type(p) in (int, float) for p in body):
                return complex(body[0], body[1])
            if tag == "C" and len(body) == 2:
                return complex(dec(body[0], depth + 1), dec(body[1], depth + 1))
            if tag == "I" and type(body) is str:
                return int(body, 16)
            if tag == "X" and body in ("nan", "inf", "-inf"):
                return float(body)
            if tag == "B" and type(body) is str:
                return bytes.fromhex(body)
            if tag == "Y" and type(body) is str:
                return bytearray.fromhex(body)
        raise TypeError("malformed value from the candidate process")

    return dec(data, 0)


# ---------------------------------------------------------------------- candidate process (C)


def _c_lookup(name: str) -> object:
    """Unpickled in C: a proxy passed as an argument becomes the candidate's own object."""
    return _C_NS[name]


def _c_ref(handle: int) -> object:
    """Unpickled in C: a RemoteRef passed as an argument becomes the object its handle names."""
    return _C_REFS[handle]


_C_NS: dict = {}
_C_REFS: list = []  # handle id -> object C sent to T as a reference (kept alive for the sample)
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


def _c_send(obj: dict) -> None:
    _send_frame(_C_REP, json.dumps(obj, separators=(",", ":")).encode())


def _c_error(exc: BaseException) -> dict:
    return {"e": [type(exc).__name__, _short(exc, 200)]}


def _candidate_main(candidate: str) -> None:
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
    _c_send({"hello": "ok"})
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
                else:
                    raise ValueError(f"unknown operation {op!r}")
                try:
                    reply = {"r": encode_value(result, _c_handle)}
                except _Unsupported as exc:
                    reply = {"u": str(exc)}
            payload = json.dumps(reply, separators=(",", ":")).encode()
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
    if isinstance(value, type(sys)):
        return {"k": "mod", "n": value.__name__}
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
            payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
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
        if kind == "mod" and reply.get("n") in PREIMPORT_OK:  # T's own copy; only the name came from C
            return __import__(reply["n"])
        return RemoteFunction(name)

    def op(self, op: str, target: str | int, a: object, b: object, name: str) -> object:
        """One operation on C's object `target` (a global's name or a handle id): call, getattr or
        setattr.  The answer is a builtin value or a new RemoteRef; `name` labels errors."""
        reply = self._roundtrip((op, target, a, b))
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

    def _raise(self, name: str, type_name: str, message: str) -> object:
        if type_name == "MemoryError":
            raise self._fail("oom", f"MemoryError in {name}")
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
    """Stands in T for an object C could not send as a builtin value (a `Node`, a generator...).

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
    """T's globals: a name the tests do not define is looked up in C (MBPP asserts call by name)."""

    __slots__ = ()

    def __missing__(self, name: str) -> object:
        if name in _BUILTIN_NAMES or name.startswith("__"):
            raise KeyError(name)
        value = _CHANNEL.lookup(name)
        dict.__setitem__(self, name, value)
        return value


_TESTED_RE = re.compile(r"^assert[ \t(]+([A-Za-z_]\w*)[ \t]*\(", re.M)


def _tested_builtin_names(job: dict) -> set[str]:
    """Builtin names the tests call as *the function under test* (`assert sum(1, 2) == 3`).

    Only those may be taken from the candidate: every other builtin the tests use (abs, len,
    isinstance, ...) stays T's own, so a candidate that redefines `abs` cannot bend a comparison.
    """
    names = set(_TESTED_RE.findall(job.get("tests") or ""))
    if job.get("entry_point"):
        names.add(job["entry_point"])
    return names & _BUILTIN_NAMES


def _run_tests(job: dict) -> dict:
    """The whole trusted side of one sample; returns T's report."""
    ns = _TestNamespace(__name__="__main__", __builtins__=builtins)
    try:
        exec(compile(job.get("prelude") or "", "<prelude>", "exec"), ns, ns)
        entry = job.get("entry_point")
        if entry:  # the prompt's stub: the tests must reach the candidate's version by this name
            dict.pop(ns, entry, None)
        _CHANNEL.wait_hello()
        for name in _tested_builtin_names(job):  # MBPP 126 defines its own `sum`
            try:
                if isinstance(_CHANNEL.lookup(name), RemoteFunction):
                    dict.__setitem__(ns, name, RemoteFunction(name))
            except KeyError:  # not defined by the candidate: the builtin it is
                pass
        exec(compile(job.get("tests") or "", "<tests>", "exec"), ns, ns)
        if entry:
            check = dict.get(ns, "check")
            if not callable(check):
                return {"outcome": "runtime_error", "detail": "the tests define no check() function"}
            if not isinstance(_CHANNEL.lookup(entry), RemoteFunction):
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


def _test_child(job: dict, fds: dict[int, int], uid: int | None, timeout_s: float, memory_mb: int) -> None:
    """Body of T after fork; never returns."""
    report: dict = {"outcome": "sandbox_error", "detail": "test process failed to start"}
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a dead candidate is an OSError, not our death
        devnull = os.open(os.devnull, os.O_RDWR)
        _remap_fds({0: devnull, 1: devnull, 2: devnull, **fds})
        if uid is not None:
            _preimport((job.get("prelude") or "") + "\n" + (job.get("tests") or ""))
        cpu = int(math.ceil(timeout_s)) + 1
        _set_limits(
            {
                resource.RLIMIT_AS: max(2 * memory_mb, 2048) << 20,
                resource.RLIMIT_CPU: cpu,
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
        os.environ.clear()
        os.environ.update(CHILD_ENV, HOME="/")
        report = _run_tests(job)
    except BaseException as exc:  # noqa: BLE001
        report = {"outcome": "sandbox_error", "detail": _short(f"test process: {type(exc).__name__}: {exc}")}
    finally:
        try:
            _write_all(_T_RPT, json.dumps(report).encode())
        finally:
            os._exit(0)


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


def _candidate_child(msg: dict, fds: list[int], uid: int | None, scratch: str) -> None:
    """Body of C after fork (from the zygote); never returns."""
    code = 70
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        req_r, rep_w, out_w = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        _remap_fds({0: devnull, 1: out_w, 2: out_w, _C_REQ: req_r, _C_REP: rep_w})
        if uid is not None:
            _preimport(msg["candidate"])
        timeout_s, memory_mb = float(msg["timeout_s"]), int(msg["memory_mb"])
        nproc = 64 if uid is not None else _count_uid_processes(os.getuid()) + 64
        cpu = int(math.ceil(timeout_s)) + 1
        limits = {
            resource.RLIMIT_AS: memory_mb << 20,
            resource.RLIMIT_NPROC: nproc,
            resource.RLIMIT_FSIZE: 16 << 20,
            resource.RLIMIT_NOFILE: 64,
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_MEMLOCK: 0,
            resource.RLIMIT_MSGQUEUE: 0,
        }
        _set_limits(limits)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU first, SIGKILL a second later
        _drop_privileges(uid)
        # The uid change made C non-dumpable (its /proc owned by root); give it back its own
        # /proc/self like any process: nothing of another uid becomes reachable by this.
        _prctl(_PR_SET_DUMPABLE, 1)
        os.mkdir(scratch, 0o700)
        os.chdir(scratch)
        os.environ.clear()
        os.environ.update(CHILD_ENV, HOME=scratch, TMPDIR=scratch)
        _candidate_main(msg.pop("candidate"))
        code = 0
    except MemoryError:
        code = 71
    except BaseException:  # noqa: BLE001
        code = 70
    finally:
        os._exit(code)


def _sweep_uid(uid: int, files: bool = True) -> None:
    """Kill every process of `uid`, then remove its files from the scratch roots.

    The zygote (root) switches its real and effective uid to `uid` and keeps root only as the saved
    uid, so kill(-1) reaches exactly that uid's processes, without the cost of a fork; then it
    switches back.  Nothing of the sandbox uids is left alive at that point to signal it (their
    process trees were killed first); the ones that could be are killed by the first kill(-1).
    """
    os.setresuid(uid, uid, 0)
    try:  # nothing in here may import: the stdlib may be unreadable to `uid`
        for _ in range(3):  # kill(-1) reaches every process this uid may signal, except the caller
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                break
        if files:
            _remove_files_of(uid)
    except Exception:  # noqa: BLE001 - a failed cleanup must not take the zygote down
        pass
    finally:
        os.setresuid(0, 0, 0)


def _remove_files_of(uid: int) -> None:
    for root in SCRATCH_ROOTS:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    _rmtree_own(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _rmtree_own(path: str) -> None:
    """Remove a directory tree without following symlinks and without imports (in the sweep the
    zygote runs as a sandbox uid, which may not be able to read the stdlib)."""

    def clear(fd: int, depth: int) -> None:
        with os.scandir(fd) as entries:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in names:
            try:
                if is_dir and depth < 256:
                    os.chmod(name, 0o700, dir_fd=fd)  # the candidate may have made it unreadable
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    try:
                        clear(sub, depth + 1)
                    finally:
                        os.close(sub)
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError:
                pass

    try:
        os.chmod(path, 0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            clear(fd, 0)
        finally:
            os.close(fd)
        os.rmdir(path)
    except OSError:
        pass


def _children() -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as fh:
                kids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return kids


def zygote_main(sock_fd: int, uids: tuple[int, int] | None) -> None:
    """Fork candidate processes on request.  Started by exec, with a clean env: never holds a test."""
    _subreaper()
    sock = socket.socket(fileno=sock_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    cuid = uids[1] if uids else None
    cpid: int | None = None
    scratch: str | None = None
    serial = 0
    while True:
        try:
            msg, fds = _sock_recv(sock)
        except (OSError, EOFError, ValueError):
            msg, fds = None, []
        op = msg.get("op") if msg else "exit"
        if op == "spawn":
            _reap_all()
            serial += 1
            scratch = f"/tmp/phi-eval-{os.getpid()}-{serial}-{os.urandom(4).hex()}"
            cpid = os.fork()
            if cpid == 0:
                sock.close()
                _candidate_child(msg, fds, cuid, scratch)
            for fd in fds:
                os.close(fd)
            _sock_send(sock, {"pid": cpid})
        else:
            status = _zygote_sweep(uids, cpid, scratch)
            cpid = scratch = None
            if op == "exit":
                return
            _sock_send(sock, {"status": status})


def _zygote_sweep(uids: tuple[int, int] | None, cpid: int | None, scratch: str | None) -> int | None:
    """Kill C's tree, every orphan this subreaper adopted and every process of both sandbox uids;
    remove C's files; return C's exit status."""
    if cpid:
        for target in (-cpid, cpid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
    if uids:
        _sweep_uid(uids[1])
        _sweep_uid(uids[0], files=False)
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + 5
    while True:
        statuses.update(_reap_all())
        kids = _children()
        if not kids or time.monotonic() > deadline:
            break
        for pid in kids:
            for target in (-pid, pid):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.0002)
    if scratch and os.path.lexists(scratch):  # same-uid mode (the uid sweep removed it otherwise)
        _rmtree_own(scratch)
    return statuses.get(cpid) if cpid else None


def _sock_send(sock: socket.socket, msg: dict, fds: list[int] | None = None) -> None:
    body = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [b"F"], fds)
    else:
        sock.sendall(b"N")
    sock.sendall(struct.pack("<I", len(body)) + body)


def _sock_recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 1, 8)
    if not data:
        return None, []
    head = _sock_exact(sock, 4)
    (size,) = struct.unpack("<I", head)
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


class Runner:
    """Reads jobs, runs each as a (T, C) pair, writes verdicts."""

    def __init__(self, uids: tuple[int, int] | None) -> None:
        self.uids = uids
        self.source = os.path.abspath(__file__)
        self.zygote: int | None = None
        self.zsock: socket.socket | None = None
        self.statuses: dict[int, int] = {}
        self._start_zygote()

    def _start_zygote(self) -> None:
        """Exec a fresh interpreter (not a fork: it must never have seen a test) with a clean env."""
        self._stop_zygote(wait=0)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if theirs.fileno() == _ZYGOTE_FD:  # dup2 onto itself would keep close-on-exec set
            moved = socket.socket(fileno=os.dup(theirs.fileno()))
            theirs.close()
            theirs = moved
        args = [sys.executable, "-I", "-S", "-u", self.source, "--zygote", str(_ZYGOTE_FD)]
        if self.uids:
            args += ["--uids", f"{self.uids[0]},{self.uids[1]}"]
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
        _sock_send(ours, {"op": "sweep"})  # a crashed predecessor may have left processes behind
        if _sock_recv(ours)[0] is None:
            raise RuntimeError("the zygote did not start")

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
            "uids": list(self.uids) if self.uids else None,
            "pid": os.getpid(),
            "zygote": self.zygote,
        }

    def serve(self, inp, out) -> None:  # noqa: ANN001 - binary file objects
        out.write(json.dumps(self.ready_line()) + "\n")
        out.flush()
        while True:
            line = inp.readline()
            if not line:
                break
            if not line.strip():
                continue
            reply = self.handle_line(line)
            out.write(json.dumps(reply) + "\n")
            out.flush()
            self.statuses.update(_reap_all())
        self._shutdown()

    def _shutdown(self) -> None:
        self._stop_zygote(wait=10)

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
        except (ValueError, RecursionError) as exc:
            return self._reply(job_id, "sandbox_error", t0, f"bad request: {exc}")
        try:
            outcome, detail = self.run_job(job)
        except Exception as exc:  # noqa: BLE001 - keep serving; the zygote is restarted
            outcome, detail = "sandbox_error", f"runner: {type(exc).__name__}: {exc}"
            try:
                self._start_zygote()
            except Exception as exc2:  # noqa: BLE001
                detail += f"; zygote restart failed: {exc2}"
        return self._reply(job_id, outcome, t0, detail)

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
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        rpt_r, rpt_w = os.pipe()
        spawn = {"op": "spawn", "candidate": job["candidate"], "timeout_s": timeout_s, "memory_mb": memory_mb}
        try:
            _sock_send(self.zsock, spawn, [req_r, rep_w, out_w])
        finally:
            for fd in (req_r, rep_w, out_w):
                os.close(fd)
        tpid = os.fork()
        if tpid == 0:
            self.zsock.close()
            _test_child(
                job,
                {_T_REQ: req_w, _T_REP: rep_r, _T_RPT: rpt_w},
                self.uids[0] if self.uids else None,
                timeout_s,
                memory_mb,
            )
        for fd in (req_w, rep_r, rpt_w):
            os.close(fd)
        reply, _ = _sock_recv(self.zsock)
        if reply is None:
            raise RuntimeError("zygote closed its socket")
        cpid = reply["pid"]
        report, output, timed_out = self._collect(rpt_r, out_r, deadline, max_out)
        os.close(rpt_r)
        os.close(out_r)
        if not self.uids:
            for pid in (tpid, cpid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        _sock_send(self.zsock, {"op": "finish"})
        fin, _ = _sock_recv(self.zsock)
        if fin is None:
            raise RuntimeError("zygote closed its socket")
        if not self.uids:
            try:
                os.killpg(tpid, signal.SIGKILL)
            except OSError:
                pass
        tstatus = self._wait(tpid)
        return self._verdict(report, output, timed_out, fin.get("status"), tstatus, timeout_s)

    def _wait(self, pid: int) -> int | None:
        if pid in self.statuses:
            return self.statuses.pop(pid)
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

    @staticmethod
    def _collect(rpt_r: int, out_r: int, deadline: float, max_out: int) -> tuple[bytes, bytes, bool]:
        """Read T's report until T closes it; drain C's output (keeping max_out bytes)."""
        report, output = bytearray(), bytearray()
        watch = [rpt_r, out_r]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(report), bytes(output), True
            ready, _, _ = select.select(watch, [], [], left)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if fd == rpt_r:
                    if not chunk:
                        return bytes(report), bytes(output), False
                    if len(report) < 1 << 16:
                        report += chunk
                elif not chunk:
                    watch.remove(out_r)
                elif len(output) < max_out:
                    output += chunk[: max_out - len(output)]

    @staticmethod
    def _verdict(
        report: bytes,
        output: bytes,
        timed_out: bool,
        cstatus: int | None,
        tstatus: int | None,
        timeout_s: float,
    ) -> tuple[str, str]:
        rep = None
        if report:
            try:
                rep = json.loads(report)
            except ValueError:
                rep = None
        if isinstance(rep, dict) and rep.get("outcome") in OUTCOMES + ("candidate_died",):
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


def _parse_uids(text: str) -> tuple[int, int]:
    t, c = (int(p) for p in text.split(","))
    if t == c or min(t, c) <= 0:
        raise ValueError("--uids needs two different non-root uids")
    return t, c


def main(argv: list[str]) -> int:
    uids: tuple[int, int] | None = DEFAULT_UIDS
    zygote_fd = None
    i = 0
    while i < len(argv):
        if argv[i] == "--uids":
            uids = _parse_uids(argv[i + 1])
            i += 2
        elif argv[i] == "--zygote":
            zygote_fd = int(argv[i + 1])
            i += 2
        elif argv[i] == "--sweep":  # host-side cleanup after a runner was killed: --sweep U1,U2,...
            todo = [int(p) for p in argv[i + 1].split(",")]
            if os.geteuid() == 0 and all(u > 0 for u in todo):
                for uid in todo:
                    _sweep_uid(uid)
                _reap_all()
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
