"""T's channel to C: one per job, over that job's pipe pair (requests out, replies in).

Every answer of C's is checked here: a malformed or oversized reply, a dead C, a MemoryError in C
all become the job's fault (once set, never a pass); a value is decoded into T's own objects.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle

from .candidate import _c_view
from .common import _T_REP, _T_REQ, _short
from .decode import _replay, decode_value
from .encode import MAX_ITEMS
from .framing import MAX_REPLY_BYTES, FrameReader, _send_frame
from .proxies import RemoteFunction

_BUILTIN_NAMES = frozenset(dir(builtins))


class CandidateFault(Exception):
    """The candidate broke the protocol or died: the sample can no longer pass."""


class Channel:
    """T's side of this job's pipe pair to C."""

    def __init__(self) -> None:
        self.fault: tuple[str, str] | None = None  # (outcome, detail); once set, never a pass
        self.hello: dict | None = None
        self.replies = FrameReader(_T_REP)

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
            frame = self.replies.recv(MAX_REPLY_BYTES)
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
            frame = self.replies.recv(1 << 16)
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
                return decode_value(reply.get("v"), self)
            except (TypeError, ValueError, RecursionError):
                raise self._fail("runtime_error", f"candidate sent a malformed value for {name}") from None
        return RemoteFunction(name, self)

    def op(self, op: str, target: str | int, a: object, b: object, name: str) -> object:
        """One operation on C's object `target` (a global's name or a handle id): call, getattr or
        setattr.  The answer is a builtin value or a new RemoteRef; `name` labels errors."""
        return self.op_reply(self._roundtrip((op, target, a, b)), name)

    def op_reply(self, reply: dict, name: str) -> object:
        """The value of C's answer to an operation, or the exception it reports raised here."""
        if "r" in reply:
            try:
                return decode_value(reply["r"], self)
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
                    return decode_value(body[0], self), body[1]
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




# Exceptions that end an iteration: raised again as they are, a candidate's StopIteration inside the
# tests' `all(map(f, xs))` would end it early and pass.  They reach the tests as RuntimeError, as
# Python itself turns a StopIteration inside a generator into one (PEP 479).
_ENDS_ITERATION = frozenset({"StopIteration", "StopAsyncIteration", "GeneratorExit"})


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
