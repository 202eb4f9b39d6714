"""The value codec, candidate side: what C sends for a value the tests asked for (tagged JSON of
plain values, or a handle to an object that stays in C).  Its limits are the decoder's too."""

from __future__ import annotations

import _collections_abc
import collections
import math
import sys
import time
from collections.abc import Callable

MAX_DEPTH = 100
MAX_ITEMS = 2_000_000
MAX_HANDLES = 1 << 40

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
    value: object,
    handle: Callable[[object], dict] | None = None,
    chunk: int | None = None,
    pending: dict[int, Exception] | None = None,
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
    With `chunk`, the next `chunk` items of iterator `value` and whether it may have more; what it
    raised after the items already sent waits in `pending` (C's table) for the next chunk.
    """
    budget = [MAX_ITEMS]
    if pending is None:
        pending = {}

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
                pending[id(it)] = exc
                return out, True
            out.append(enc(v, depth + 1))
            if limit is not None and (len(out) >= limit or time.monotonic() > end):
                return out, True

    if chunk is not None:  # the next items of an iterator T holds a handle to
        raised = pending.pop(id(value), None)
        if raised is not None:
            raise raised
        values, more = take(value, 0, chunk, True)
        return [values, more]
    return enc(value, 0)
