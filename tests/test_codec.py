"""The value codec of the runner (sandbox/runner/encode.py and decode.py) on its own: what the candidate process sends, what the
test process builds from it.  The decoder is the trusted side's whole exposure to candidate data:
round trips keep values as Python compares them, and anything malformed, too deep or too large is
refused (TypeError), never built."""

from __future__ import annotations

import collections
import decimal
import enum
import fractions
import json
import re
import sys
from collections import Counter, OrderedDict, UserDict, UserList, UserString, deque, namedtuple

import pytest

from phi_eval.paths import sandbox_dir

sys.path.insert(0, str(sandbox_dir()))  # the runner package, as the image runs it (stdlib only)
sys.dont_write_bytecode, _saved = True, sys.dont_write_bytecode  # no cache files in sandbox/runner/
try:
    from runner import decode, encode, proxies
finally:
    sys.path.remove(str(sandbox_dir()))
    sys.dont_write_bytecode = _saved



def wire(value: object) -> object:
    """encode -> JSON text -> decode, as between the two processes."""
    return decode.decode_value(json.loads(json.dumps(encode.encode_value(value))))


class Color(str, enum.Enum):
    RED = "red"

    def __str__(self) -> str:
        return "Color.RED"


class Level(enum.IntEnum):
    HIGH = 3


class Lying(list):
    def __iter__(self):
        return iter(["lie"])

    def __eq__(self, other):
        return True

    __hash__ = None


class LoudStr(str):
    def __str__(self) -> str:
        return "LOUD"


P = namedtuple("P", "x y")


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -(1 << 80), 1.5, float("inf"), "s", b"\x00b", bytearray(b"x"), 1 + 2j,
        [1, [2]], (1, (2,)), {1: {"a": (2,)}}, {1, 2}, frozenset({3}), range(1, 10, 3), range(0),
        deque([1, 2]), deque([1], maxlen=4), fractions.Fraction(-3, 7), decimal.Decimal("0.1"),
        decimal.Decimal("-Infinity"),
    ],
)  # fmt: skip
def test_round_trip_keeps_value_and_type(value: object) -> None:
    back = wire(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, deque):
        assert back.maxlen == value.maxlen


def test_nan_and_signed_zero() -> None:
    assert wire(float("nan")) != wire(float("nan")) and str(wire(-0.0)) == "-0.0"
    assert str(wire(decimal.Decimal("NaN"))) == "NaN"


def test_generators_and_iterators_become_the_test_sides_generators() -> None:
    g = wire(i * i for i in range(4))
    assert type(g).__name__ == "generator" and g != [0, 1, 4, 9] and list(g) == [0, 1, 4, 9] and list(g) == []
    assert list(wire(map(str, [1, 2]))) == ["1", "2"]
    assert list(wire(zip("ab", [1, 2], strict=True))) == [("a", 1), ("b", 2)]
    assert list(wire(iter({1: 2}))) == [1]


def test_views_compare_as_python_compares_them() -> None:
    keys, items, values = wire({"a": 1}.keys()), wire({"a": 1}.items()), wire({"a": 1}.values())
    assert keys == {"a"} and items == {("a", 1)} and list(values) == [1]
    assert type(keys) is type({}.keys()) and type(items) is type({}.items())
    assert wire(OrderedDict(b=1).keys()) == {"b"} and wire(UserDict(c=2).keys()) == {"c"}


def test_builtin_subclasses_carry_their_base_value_without_their_overrides() -> None:
    assert wire(Color.RED) == "red" and type(wire(Color.RED)) is str  # not its __str__
    assert wire(Level.HIGH) == 3 and type(wire(Level.HIGH)) is int
    assert wire(LoudStr("hi")) == "hi"
    lying = Lying([1, 2])
    assert wire(lying) == [1, 2] and type(wire(lying)) is list  # not its __iter__, no rigged __eq__
    assert wire(P(1, 2)) == (1, 2) and type(wire(P(1, 2))) is tuple
    assert type(wire(Counter("aab"))) is dict and wire(Counter("aab")) == {"a": 2, "b": 1}
    assert wire(UserString("u")) == "u" and wire(UserList([1])) == [1] and wire(UserDict(k=1)) == {"k": 1}
    assert type(wire(collections.defaultdict(int, a=1))) is dict


def test_other_objects_need_a_handle() -> None:
    class Node:
        pass

    with pytest.raises(encode._Unsupported):
        encode.encode_value(Node())
    seen = []
    out = encode.encode_value([Node(), lambda: 1], lambda x: seen.append(x) or {"t": "ref", "id": len(seen) - 1, "type": "N"})
    back = decode.decode_value(out)
    assert [type(r) for r in back] == [proxies.RemoteRef, proxies.RemoteRef] and back[0] != back[1]


def test_a_long_iterator_goes_in_chunks_with_a_handle() -> None:
    handles = []

    def handle(x: object) -> dict:
        handles.append(x)
        return {"t": "ref", "id": len(handles) - 1, "type": "generator"}

    def naturals():
        n = 0
        while True:
            yield n
            n += 1

    enc = encode.encode_value(naturals(), handle)
    assert set(enc) == {"Gi"} and len(enc["Gi"][0]) <= encode.ITER_FIRST and len(handles) == 1
    values, more = encode.encode_value(handles[0], handle, chunk=10)
    assert more is True and values == list(range(len(enc["Gi"][0]), len(enc["Gi"][0]) + 10))


def test_bounds_depth_and_size() -> None:
    deep: list = []
    for _ in range(encode.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(encode._Unsupported, match="deeply"):
        encode.encode_value(deep)
    with pytest.raises(TypeError):
        decode.decode_value(json.loads("[" * (encode.MAX_DEPTH + 10) + "]" * (encode.MAX_DEPTH + 10)))

    def endless():
        while True:
            yield 1

    with pytest.raises(encode._Unsupported, match="too large"):  # without a handle: all of it, bounded
        encode.encode_value(endless())
    with pytest.raises(TypeError):  # a Fraction T would have to normalise at any cost
        decode.decode_value({"Fr": [{"I": hex(1 << 70000)}, 3]})
    with pytest.raises(TypeError):
        decode.decode_value({"Dc": "1" * (encode.MAX_DECIMAL_CHARS + 1)})


@pytest.mark.parametrize(
    "data",
    [
        {"T": 1}, {"S": "ab"}, {"D": [[1]]}, {"D": [[[1], 2]]}, {"S": [[1]]}, {"K": [[1]]}, {"W": [[1, 2, 3]]},
        {"C": ["1", 2]}, {"C": [True, 1]}, {"I": 5}, {"I": "zz"}, {"X": "1e999"}, {"B": "0g"}, {"R": [1, 2]},
        {"R": [1, 2, 0]}, {"R": [1.0, 2, 1]}, {"R": [True, 2, 1]}, {"Q": [[1], -1]}, {"Q": [[1], 1 << 70]},
        {"Q": [1, None]}, {"Fr": [1, 0]}, {"Fr": [1.5, 2]}, {"Dc": "x"}, {"Dc": 1}, {"G": {}}, {"Gi": [[1], 5]},
        {"Gi": [[1], {"t": "ref", "id": -1, "type": "g"}]}, {"t": "ref", "id": "0", "type": "x"},
        {"t": "ref", "id": 1 << 41, "type": "x"}, {"SF": [1]}, {"TS": [1]}, {"A": 1, "B": 2}, {}, {"?": 1},
    ],
)  # fmt: skip
def test_malformed_input_is_refused(data: object) -> None:
    with pytest.raises(TypeError):
        decode.decode_value(data)


def test_a_dict_shaped_like_a_tag_is_plain_data() -> None:
    """The encoder tags every dict, so a candidate's dict that looks like a tag or a handle crosses
    as the dict it is."""
    for forged in ({"Fr": [1, 3]}, {"t": "ref", "id": 0, "type": "x"}, {"G": [1]}):
        assert wire(forged) == forged and type(wire(forged)) is dict


def test_a_match_is_true_and_carries_its_groups() -> None:
    m = wire(re.search(r"(?P<a>b+)(c)?", "xabbd"))
    assert bool(m) and m.group() == "bb" and m.group(1, 2) == ("bb", None) and m["a"] == "bb"
    assert m.span() == (2, 4) and m.groups("-") == ("bb", "-") and m.groupdict() == {"a": "bb"}
    assert m.lastgroup == "a" and m.re.pattern == "(?P<a>b+)(c)?" and m.string == "xabbd"
    assert wire(re.search(rb"b", b"abc")).group() == b"b"
    for bad in (
        {"M": [1]},
        {"M": ["s", 0, 1, [[0, 9]], [], None, "p", 0]},  # a span past the string
        {"M": ["s", 0, 1, [[0, 1]], [["a", 5]], None, "p", 0]},  # a group that is not there
        {"M": ["s", 0, 1, [[-1, -1]], [], None, "p", 0]},  # group 0 always matched
        {"M": ["s", 0, 1, [[0, 1]], [], None, b"p", 0]},  # pattern and string of two kinds
    ):
        with pytest.raises(TypeError):
            decode.decode_value(bad)
