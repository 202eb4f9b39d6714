"""The candidate process C: runs the model's program, then serves T's calls until EOF.

Forked by the zygote (zygote.py), one per sample.  Its tables below are filled only after that
fork, in C itself: the zygote imports this module but never runs a program, so what a C inherits
holds nothing of an earlier sample.  They are module-level because T's pickled arguments name
`_c_lookup` and `_c_ref` (see proxies.py), which resolve in whatever C unpickles them.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import resource
import sys

from . import envs
from .common import _C_REP, _C_REQ, _C_SRC, _short
from .encode import ITER_CHUNK_MAX, ITER_FIRST, _Unsupported, encode_value
from .framing import MAX_REPLY_BYTES, FrameReader, _send_frame
from .limits import _PR_SET_DUMPABLE, _drop_privileges, _prctl, _remap_fds
from .preload import _preimport_names


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


def _candidate_main(candidate: str, entry: str | None = None, env: str | None = None) -> None:
    """Runs in C after the privilege drop: the program's top level (in the job's environment, see
    envs.py), then serve calls until EOF."""
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
    envs.apply(env)  # a name the runner checked (verdict.check_job); evalplus's cannot fail
    try:
        exec(code, ns)
    except MemoryError:
        _c_send({"hello": "oom", "msg": "MemoryError at top level"})
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit at top level is an error too
        _c_send({"hello": "runtime_error", "msg": _short(f"{type(exc).__name__}: {exc}")})
        return
    _c_send({"hello": "ok", "fn": True} if _c_is_function(entry) else {"hello": "ok"})
    requests = FrameReader(_C_REQ)
    while True:
        frame = requests.recv(MAX_REPLY_BYTES)
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
                        reply = {"n": encode_value(obj, _c_handle, chunk=size, pending=_C_PENDING)}
                    else:
                        reply = {"r": encode_value(result, _c_handle, pending=_C_PENDING)}
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
        return {"k": "v", "v": encode_value(value, _c_handle, pending=_C_PENDING)}
    except _Unsupported:
        return {"k": "fn"}



def _c_view(kind: str, values: list) -> object:
    """Unpickled in C: a dict view T passes as an argument (T's own decoded view), rebuilt."""
    if kind == "K":
        return dict.fromkeys(values).keys()
    if kind == "V":
        return dict(enumerate(values)).values()
    return dict(values).items()


def _read_source(fd: int) -> tuple[str, str | None, str | None]:
    """C's own program, entry point and environment, from the memfd the runner filled (the zygote
    never reads it)."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    payload = json.loads(b"".join(chunks))
    entry, env = payload.get("entry"), payload.get("env")
    return payload["candidate"], entry if isinstance(entry, str) else None, env if isinstance(env, str) else None


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
        candidate, entry, env = _read_source(_C_SRC)
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
        _candidate_main(candidate, entry, env)
        code = 0
    except MemoryError:
        code = 71
    except BaseException:  # noqa: BLE001
        code = 70
    finally:
        os._exit(code)
