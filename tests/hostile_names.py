"""Hostile MBPP-shaped samples that aim at how the test side resolves names and reads exceptions.

Shared by the local-runner and Docker tests (tests/test_names.py).  Each entry is a task (reference
solution, setup, assert lines, as MBPP, sanitized MBPP and MBPP+ have them) and a wrong program that
tries to win anyway: by supplying its own `set`/`sorted`/`abs`/`isinstance`..., which MBPP's tests
wrap around both sides of `==`; by supplying the module the tests use for the expected side
(`math`, `sys`, ...), which the reference imports for itself; or by raising StopIteration where
the tests iterate (`all(map(f, xs))`).  None may pass.

Each has two controls (tests/test_names.py runs both): the same program and tests exec'd in one
namespace, as MBPP's own harness runs them, do pass (the forgery is real); and through the runner
with `legacy` names handed to the candidate (what the old fall-through did: every name the tests
did not define, builtins at the start of an assert) it passes too, so what stops it is the
trusted-side resolution and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostileName:
    name: str
    reference: str  # the task's reference solution: what decides which names are the candidate's
    tests: str  # the task's assert lines
    program: str  # the attack
    asserts: str
    legacy: tuple[str, ...] = ()  # names the old fall-through took from the candidate; () = none
    setup: str = ""
    outcomes: frozenset[str] = frozenset({"failed", "runtime_error"})

    def allows(self, outcome: str) -> bool:
        return outcome != "passed" and outcome in self.outcomes


_SIMILAR = "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n"
_SQRT = "import math\ndef sqrt_of(x):\n    return math.sqrt(x)\n"

HOSTILE_NAMES: list[HostileName] = [
    # --- builtins the tests wrap around both sides of ==
    HostileName(
        "own_set",
        _SIMILAR,
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"
        "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))\n",
        "def set(*args):\n    return 0\ndef similar_elements(a, b):\n    return None\n",
        "sanitized MBPP 2: a candidate `set` returning 0 makes both sides 0; T's set is the builtin",
        legacy=("set",),
    ),
    HostileName(
        "own_sorted",
        "def sort_it(xs):\n    return sorted(xs)\n",
        "assert sorted(sort_it([3, 1, 2])) == sorted([1, 2, 3])\n",
        "sorted = lambda *a, **k: 'same'\ndef sort_it(xs):\n    return []\n",
        "a candidate `sorted` is not T's sorted",
        legacy=("sorted",),
    ),
    HostileName(
        "own_abs",
        "def area(r):\n    return 3.141592653589793 * r * r\n",
        "assert abs(area(2.0) - 12.566370614359172) < 1e-9\n",
        "def abs(x):\n    return 0\ndef area(r):\n    return -1\n",
        "MBPP+-style tolerance check: a candidate `abs` returning 0 passes any number",
        legacy=("abs",),
    ),
    HostileName(
        "own_int",
        "def parse(s):\n    return int(s)\n",
        "assert int(parse('12')) == int('12')\n",
        "def int(x):\n    return 0\ndef parse(s):\n    return 'nonsense'\n",
        "a candidate `int` returning 0 on both sides is never T's int",
        legacy=("int",),
    ),
    HostileName(
        "own_isinstance",
        "def make_list(n):\n    return list(range(n))\n",
        "assert isinstance(make_list(3), list)\nassert len(make_list(3)) == 3\n",
        "isinstance = lambda *a: True\nlen = lambda x: 3\nclass Thing:\n    pass\ndef make_list(n):\n    return Thing()\n",
        "isinstance and len of a handle are T's: a RemoteRef is no list",
        legacy=("isinstance", "len"),
    ),
    HostileName(
        "own_tuple_and_max",
        "def top(xs):\n    return tuple(sorted(xs)[-2:])\n",
        "assert tuple(top([5, 1, 9])) == (5, 9) and max(top([5, 1, 9])) == max([5, 9])\n",
        "def tuple(*a):\n    return (5, 9)\ndef max(*a):\n    return 0\ndef top(xs):\n    return 'wrong'\n",
        "tuple(...) on the left and max(...) on both sides stay T's",
        legacy=("tuple", "max"),
    ),
    # --- the module the expected side uses, imported by the reference for itself
    HostileName(
        "own_math_module",
        _SQRT,
        "assert math.isclose(sqrt_of(2.0), math.sqrt(2.0))\n",
        "class math:\n    isclose = staticmethod(lambda *a, **k: True)\n    sqrt = staticmethod(lambda x: 0)\n"
        "def sqrt_of(x):\n    return -7\n",
        "`math` is the reference's import, run in T: a candidate's fake module never answers",
        legacy=("math",),
    ),
    HostileName(
        "own_sys_getsizeof",
        "import sys\ndef tuple_size(tuple_list):\n  return (sys.getsizeof(tuple_list))\n",
        "assert tuple_size((1, 2, 3)) == sys.getsizeof((1, 2, 3))\n",
        "class sys:\n    getsizeof = staticmethod(lambda x: 0)\ndef tuple_size(t):\n    return 0\n",
        "MBPP 596: the expected side's sys.getsizeof is T's own",
        legacy=("sys",),
    ),
    HostileName(
        "own_module_function_object",
        "import heapq as hq\ndef largest(nums, n):\n    return hq.nlargest(n, nums)\n",
        "assert largest([1, 5, 3], 2) == hq.nlargest(2, [1, 5, 3])\n",
        "class hq:\n    @staticmethod\n    def nlargest(n, xs):\n        return 'forged'\ndef largest(nums, n):\n    return 'forged'\n",
        "an aliased import of the reference (`hq`) resolves in T too",
        legacy=("hq",),
    ),
    HostileName(
        "own_stdlib_module_unimported",
        "def mean_of(xs):\n    return sum(xs) / len(xs)\n",
        "assert mean_of([1, 2, 6]) == statistics.mean([1, 2, 6])\n",
        "class statistics:\n    mean = staticmethod(lambda xs: 'x')\ndef mean_of(xs):\n    return 'x'\n",
        "a stdlib module the tests name but nothing imports (MBPP+'s math.isclose) is T's import",
        legacy=("statistics",),
    ),
    HostileName(
        "own_helper_name",
        "def double(x):\n    return 2 * x\n",
        "assert double(4) == EXPECTED_DOUBLE_OF_4\n",
        "EXPECTED_DOUBLE_OF_4 = 'anything'\ndef double(x):\n    return 'anything'\n",
        "a name the tests use that no trusted code defines is a NameError, never the candidate's",
        legacy=("EXPECTED_DOUBLE_OF_4",),
        outcomes=frozenset({"runtime_error"}),
    ),
    HostileName(
        "builtin_named_helper_the_reference_lacks",
        "def add(a, b):\n    return a + b\n",
        "assert add(1, 2) == sum([1, 2])\n",
        "def sum(xs):\n    return 'x'\ndef add(a, b):\n    return 'x'\n",
        "the reference defines no `sum`: the tests' sum is the builtin, though the candidate has one",
        legacy=("sum",),
    ),
    # --- exceptions that end an iteration
    HostileName(
        "stopiteration_all_map",
        "def is_even(x):\n    return x % 2 == 0\n",
        "assert all(map(is_even, [2, 4, 7]))\n",
        "def is_even(x):\n    raise StopIteration\n",
        "StopIteration inside the tests' map would end all() early: it reaches them as RuntimeError",
        outcomes=frozenset({"runtime_error"}),
    ),
    HostileName(
        "stopiteration_not_any",
        "def is_odd(x):\n    return x % 2 == 1\n",
        "assert not any(map(is_odd, [2, 4, 7]))\n",
        "def is_odd(x):\n    raise StopIteration('done')\n",
        "`not any(map(f, xs))` the same way",
        outcomes=frozenset({"runtime_error"}),
    ),
    HostileName(
        "stopiteration_filter",
        "def keep(x):\n    return x > 2\n",
        "assert list(filter(keep, [1, 5, 9])) == []\n",
        "def keep(x):\n    raise StopIteration\n",
        "filter() ends silently on StopIteration in plain Python; never here",
        outcomes=frozenset({"runtime_error"}),
    ),
    HostileName(
        "stopiteration_zip_map",
        "def sq(x):\n    return x * x\n",
        "assert all(a == b for a, b in zip(map(sq, [1, 2, 3]), [1, 5, 9]))\n",
        "def sq(x):\n    if x == 2:\n        raise StopIteration\n    return x * x\n",
        "zip over map: the StopIteration from the second call would end both",
        outcomes=frozenset({"runtime_error"}),
    ),
]
HOSTILE_NAMES_BY_NAME = {h.name: h for h in HOSTILE_NAMES}
assert len(HOSTILE_NAMES_BY_NAME) == len(HOSTILE_NAMES), "hostile names must be unique"


@dataclass(frozen=True)
class HonestValue:
    """A correct program returning a value of a kind item 10 names; it must pass, as in Python."""

    name: str
    program: str
    tests: str


HONEST_VALUES: list[HonestValue] = [
    HonestValue(
        "generator",
        "def evens(n):\n    for i in range(0, n, 2):\n        yield i\n",
        "assert list(evens(7)) == [0, 2, 4, 6]\nassert evens(7) != [0, 2, 4, 6]\n"
        "assert sorted(evens(5), reverse=True) == [4, 2, 0]\nassert tuple(evens(3)) == (0, 2)\n"
        "assert set(evens(5)) == {0, 2, 4}\nassert sum(evens(10)) == 20\n",
    ),
    HonestValue(
        "generator_expression_and_iterators",
        "def squares(xs):\n    return (x * x for x in xs)\n"
        "def pairs(a, b):\n    return zip(a, b)\n"
        "def strs(xs):\n    return map(str, xs)\n"
        "def back(xs):\n    return reversed(xs)\n"
        "def odd(xs):\n    return filter(lambda x: x % 2, xs)\n"
        "def it(xs):\n    return iter(xs)\n",
        "assert list(squares([1, 2, 3])) == [1, 4, 9]\nassert dict(pairs('ab', [1, 2])) == {'a': 1, 'b': 2}\n"
        "assert list(strs([1, 2])) == ['1', '2']\nassert list(back([1, 2, 3])) == [3, 2, 1]\n"
        "assert list(odd(range(6))) == [1, 3, 5]\nassert next(it([7, 8])) == 7\n",
    ),
    HonestValue(
        "endless_and_long_generators",
        "import itertools\n"
        "def naturals():\n    n = 0\n    while True:\n        yield n\n        n += 1\n"
        "def count_from(k):\n    return itertools.count(k)\n"
        "def many(n):\n    return (i for i in range(n))\n",
        "import itertools\n"
        "assert list(itertools.islice(naturals(), 5)) == [0, 1, 2, 3, 4]\n"
        "assert next(count_from(3)) == 3\n"
        "assert sum(many(300000)) == sum(range(300000))\n",
    ),
    HonestValue(
        "generator_raises_where_python_raises",
        "def gen():\n    yield 1\n    raise ValueError('late')\n",
        "g = gen()\nassert next(g) == 1\ntry:\n    next(g)\n    raise AssertionError('no error')\nexcept ValueError:\n    pass\n",
    ),
    HonestValue(
        "deque",
        "from collections import deque\ndef rotate(xs, k):\n    d = deque(xs)\n    d.rotate(k)\n    return d\n",
        "from collections import deque\n"
        "assert list(rotate([1, 2, 3], 1)) == [3, 1, 2]\nassert rotate([1, 2, 3], 1) == deque([3, 1, 2])\n"
        "assert rotate([1, 2], 0) != [1, 2]\n",
    ),
    HonestValue(
        "range",
        "def upto(n):\n    return range(1, n + 1)\n",
        "assert list(upto(3)) == [1, 2, 3]\nassert upto(3) == range(1, 4)\nassert len(upto(10)) == 10\n"
        "assert 5 in upto(10)\n",
    ),
    HonestValue(
        "dict_views",
        "def keys_of(d):\n    return d.keys()\ndef items_of(d):\n    return d.items()\n"
        "def values_of(d):\n    return d.values()\n",
        "assert keys_of({'a': 1, 'b': 2}) == {'a', 'b'}\nassert items_of({'a': 1}) == {('a', 1)}\n"
        "assert sorted(values_of({'a': 2, 'b': 1})) == [1, 2]\nassert list(keys_of({'x': 0})) == ['x']\n"
        "assert set(keys_of({1: 0})) == {1}\n",
    ),
    HonestValue(
        "fraction_and_decimal",
        "from fractions import Fraction\nfrom decimal import Decimal\n"
        "def half():\n    return Fraction(1, 2)\ndef tenth():\n    return Decimal('0.1')\n",
        "from decimal import Decimal\n"
        "assert half() == 0.5\nassert half() == 1 / 2\nassert tenth() == Decimal('0.1')\n"
        "assert abs(float(tenth()) - 0.1) < 1e-12\nassert half() + half() == 1\n",
    ),
    HonestValue(
        "builtin_subclasses_with_overrides",
        "import enum\nfrom collections import Counter, OrderedDict, namedtuple\n"
        "class Color(str, enum.Enum):\n    RED = 'red'\n    def __str__(self):\n        return 'Color.RED'\n"
        "class Level(enum.IntEnum):\n    HIGH = 3\n"
        "class Loud(str):\n    def __str__(self):\n        return self.upper()\n"
        "class Quiet(list):\n    def __iter__(self):\n        return iter([])\n"
        "P = namedtuple('P', 'x y')\n"
        "def color():\n    return Color.RED\ndef level():\n    return Level.HIGH\n"
        "def loud():\n    return Loud('hi')\ndef quiet():\n    return Quiet([1, 2])\n"
        "def point():\n    return P(1, 2)\ndef counts(s):\n    return Counter(s)\n"
        "def ordered():\n    return OrderedDict(a=1)\n",
        "assert color() == 'red'\nassert level() == 3\nassert loud() == 'hi'\nassert quiet() == [1, 2]\n"
        "assert point() == (1, 2)\nassert counts('aab') == {'a': 2, 'b': 1}\nassert ordered() == {'a': 1}\n",
    ),
    HonestValue(
        "user_collections",
        "from collections import UserDict, UserList, UserString\n"
        "def s():\n    return UserString('abc')\ndef l():\n    return UserList([1, 2])\n"
        "def d():\n    return UserDict({'k': 1})\n",
        "assert s() == 'abc'\nassert l() == [1, 2]\nassert d() == {'k': 1}\nassert len(l()) == 2\n",
    ),
]
