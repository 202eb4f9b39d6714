"""The value codec, trusted side: T rebuilds a value from C's tagged JSON with its own
constructors only (see encode.py for the format)."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from .encode import ITER_CHUNK_MAX, ITER_FIRST, MAX_BIG_BITS, MAX_DECIMAL_CHARS, MAX_DEPTH, MAX_HANDLES
from .proxies import RemoteRef


def _replay(values: list, more: int | None = None, channel: object = None) -> Iterator[object]:
    """T's own generator over the values a candidate's iterator produces (so `f() == [..]` is
    False and `list(f())` is the list, as in Python): `values`, then, while C's iterator (handle
    `more`) has more, its next chunks through `channel`, each a round trip answered with plain values."""
    yield from values
    size = ITER_FIRST
    while more is not None:
        size = min(size * 2, ITER_CHUNK_MAX)
        values, going = channel.next_chunk(more, size)  # type: ignore[attr-defined]
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


def decode_value(data: object, channel: object = None) -> object:
    """Rebuild a value from encode_value's output using T's own constructors only (a handle becomes
    a RemoteRef, an iterator a replay, both reaching C through `channel`, this job's).

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
                return RemoteRef(handle, type_name[:80], channel)
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
            return _replay(items(body[0], depth), ref._rr_id, channel)
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

