"""T's stand-ins for what lives in C: a function by its global name, an object by its handle.

Each holds the channel of the job that made it; every use is a round trip through it.
"""

from __future__ import annotations

from .candidate import _c_lookup, _c_ref


class _Remote:
    """What T may do with an object that lives in C: call it, get and set its attributes.

    Each of these is a round trip whose answer is a builtin value or another handle.  Nothing
    else is delegated: comparisons, hashing, truth, len, iteration, arithmetic and str are T's own
    (or TypeError), so no code of the candidate runs when a test compares or tests a value.
    """

    __slots__ = ("_rr_ch",)  # the job's channel to C (T's side of the pipes)

    def _target(self) -> tuple[str | int, str]:  # (name or handle id, label for errors)
        raise NotImplementedError

    def __call__(self, *args: object, **kwargs: object) -> object:
        target, label = self._target()
        return self._rr_ch.op("call", target, args, kwargs, label)

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("_rr_") or (attr.startswith("__") and attr.endswith("__")):
            raise AttributeError(attr)  # T's own slots, and protocol probes (copy, pickle, ...)
        target, label = self._target()
        return self._rr_ch.op("getattr", target, attr, None, f"{label}.{attr}")

    def __setattr__(self, attr: str, value: object) -> None:
        target, label = self._target()
        self._rr_ch.op("setattr", target, attr, value, f"{label}.{attr}")

    def __delattr__(self, attr: str) -> None:
        raise TypeError("deleting an attribute of a candidate object is not supported")


class RemoteFunction(_Remote):
    """Stands in T for a function (or class) that lives in C, by its global name."""

    __slots__ = ("_rr_name",)

    def __init__(self, name: str, channel: object) -> None:
        object.__setattr__(self, "_rr_name", name)
        object.__setattr__(self, "_rr_ch", channel)

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

    def __init__(self, handle: int, type_name: str, channel: object = None) -> None:
        object.__setattr__(self, "_rr_id", handle)
        object.__setattr__(self, "_rr_type", type_name)
        object.__setattr__(self, "_rr_ch", channel)

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
