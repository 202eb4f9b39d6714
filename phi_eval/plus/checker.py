"""EvalPlus's checker as trusted test code: what a sample's jobs run in the sandbox's test process.

evalplus 0.3.1 (evalplus/eval/__init__.py) runs a sample twice, in two processes: once on the
base inputs, once on the extra ("plus") inputs, stopping at the first input that fails.  An input
passes when the call returns within max(1 s, 4 x the canonical solution's time) and the output
equals the expected one: `==`, or within `atol` (numpy's allclose, rtol 1e-7) where the task has
an atol or the expected value is a float (or a list or tuple of floats: then atol 1e-6 from that
input on), or by the task's special oracle; a part also fails when the whole of it runs past
min(60 s, the sum of its limits) + 2 s.  phi-eval builds the same two jobs; the test process
(trusted) holds the inputs, the expected outputs and this comparison, and reaches the candidate's
function through the sandbox's proxy, which returns plain builtin values only.  That round trip
carries the arguments and the answer between two processes, which evalplus's call does not, so
the time it takes is not held against the candidate (see check() and part_timeout()).

The rules are written here from evalplus's behaviour, not copied; `tests/test_evalplus.py` holds
them to evalplus's own verdicts.  One of them is a quirk kept on purpose: for HumanEval's
`find_zero` evalplus 0.3.1 never records an input as passed (its oracle skips the record), so no
sample of that task passes there, and none does here.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from phi_eval.jobs import ExecJob, job_id

MIN_TIME_LIMIT_S = 1.0  # evalplus.config.DEFAULT_MIN_TIME_LIMIT
TIME_LIMIT_FACTOR = 4.0  # evalplus.config.DEFAULT_GT_TIME_LIMIT_FACTOR
TASK_TIMEOUT_CAP_S = 60.0  # EVALPLUS_TIMEOUT_PER_TASK's default
PARTS = ("base", "plus")


MAX_VALUE_CHARS = 24 << 20  # an expected output this large cannot come back through the sandbox's
# proxy (32 MiB a reply), so no candidate could pass its input; it is stored as "too large"


_COERCE = (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)


class TooLarge(Exception):
    pass


def encode(value: Any, budget: list[int] | None = None) -> Any:
    """A JSON form of an input or expected output that keeps its exact type (the checker's _dec
    rebuilds it): tuples, sets, complex, dicts with any keys, big ints, nan/inf.  A value of any
    other type (a canonical solution's own object) becomes an opaque value equal to nothing.
    With a `budget` ([characters left]) raises TooLarge once the encoding would pass it."""
    if budget is not None:
        budget[0] -= len(value) + 2 if type(value) is str else 6
        if budget[0] < 0:
            raise TooLarge
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -(1 << 53) < value < (1 << 53) else {"I": hex(value)}
    if t is float:
        return value if math.isfinite(value) else {"X": repr(value)}
    if t is list:
        return [encode(v, budget) for v in value]
    if t is tuple:
        return {"T": [encode(v, budget) for v in value]}
    if t is set:
        return {"S": [encode(v, budget) for v in value]}
    if t is frozenset:
        return {"F": [encode(v, budget) for v in value]}
    if t is dict:
        return {"D": [[encode(k, budget), encode(v, budget)] for k, v in value.items()]}
    if t is complex:
        return {"C": [encode(value.real), encode(value.imag)]}
    if t is bytes:
        return {"B": value.hex()}
    for base in _COERCE:  # Counter, OrderedDict, namedtuple, IntEnum...: as the sandbox's proxy
        if isinstance(value, base):  # carries a candidate's (so Counter == Counter stays ==)
            return encode(base(value), budget)
    return {"U": f"{t.__module__}.{t.__qualname__}"}


def encode_expected(value: Any) -> Any:
    """An expected output, or the "too large" mark (see MAX_VALUE_CHARS)."""
    try:
        return encode(value, [MAX_VALUE_CHARS])
    except TooLarge:
        return {"L": MAX_VALUE_CHARS}


def time_limits(ref_times: list[float]) -> list[float]:
    return [max(MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR * t) for t in ref_times]


# What carrying a call's arguments and answer between the test and the candidate process may cost
# beyond the call (evalplus calls in the process that compares): per input, and per character of
# the expected answer's JSON (about 0.7 us measured here for the largest MBPP+ answers, 2 MB).
CARRY_PER_CALL_S = 0.002
CARRY_PER_CHAR_S = 1.5e-6


def part_timeout(limits: list[float], expected: list, cap_s: float | None = None) -> float:
    """The wall-clock limit of one job: evalplus's min(cap, sum of limits) + 1, its join's + 1, and
    what carrying the answers through the sandbox costs on top (see CARRY_PER_CALL_S)."""
    carry = sum(CARRY_PER_CALL_S + CARRY_PER_CHAR_S * len(json.dumps(e, separators=(",", ":")))
                for e in expected)
    return min(cap_s or TASK_TIMEOUT_CAP_S, sum(limits)) + 2.0 + carry


def tests_source(dataset: str, entry_point: str, part: str, inputs: list, expected: list, ref_times: list[float],
                 atol: float) -> str:
    """The data part of one job's trusted test code: `_SPEC`, parsed from one JSON literal (the
    checker itself is the job's prelude, see parts_of)."""
    spec = {
        "dataset": dataset,
        "entry": entry_point,
        "part": part,
        "atol": atol,
        "inputs": [encode(list(a)) for a in inputs],
        "expected": expected,
        "limits": time_limits(ref_times),
    }
    text = json.dumps(spec, separators=(",", ":"))  # ASCII, one line
    # A raw literal carries JSON as it is (no second escaping): JSON never holds three quotes in a
    # row (a quote inside a string is always escaped) and always ends in "}".
    literal = f'r"""{text}"""' if '"""' not in text else json.dumps(text)
    return f"_SPEC = _json.loads({literal})\n"


def parts_of(tests: str, entry_point: str) -> tuple[str, str]:
    """(prelude, tests) of a job: the checker itself as the prelude, which the test process compiles
    once and keeps (it is the same text for every job), and the job's data as its tests.  Where the
    entry point has a name the checker defines, the checker goes into the tests, after T has taken
    the entry point's name away from the prelude's names."""
    if entry_point in CHECKER_NAMES:
        return "", CHECKER + tests + _RUN
    return CHECKER, tests + _RUN


def plus_jobs(*, task_id: str, completion_id: int, candidate: str, entry_point: str, dataset: str,
              base_input: tuple, plus_input: tuple, atol: float, expected: dict[str, Any], memory_mb: int,
              cap_s: float | None = None, sources: dict[tuple[str, str], tuple[str, str, float]] | None = None,
              ) -> list[ExecJob]:
    """A sample's two jobs (base inputs, extra inputs), ids `<task>#<n>/base` and `/plus`.
    `sources` shares one prelude, test text and timeout per (task, part) among a task's samples."""
    sources = {} if sources is None else sources
    jobs = []
    for part, inputs in zip(PARTS, (base_input, plus_input), strict=True):
        if (task_id, part) not in sources:
            times = expected[f"{part}_time"]
            sources[(task_id, part)] = (
                *parts_of(tests_source(dataset, entry_point, part, list(inputs), expected[part], times, atol),
                          entry_point),
                part_timeout(time_limits(times), expected[part], cap_s),
            )
        prelude, tests, timeout_s = sources[(task_id, part)]
        jobs.append(ExecJob(
            id=f"{job_id(task_id, completion_id)}/{part}",
            candidate=candidate,
            prelude=prelude,
            tests=tests,
            entry_point=entry_point,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            parkable=False,  # its calls are timed against their limits: it keeps its share of the CPU
            env="evalplus",  # started as evalplus starts a sample (sandbox/runner/envs.py)
        ))
    return jobs


# The checker, run by the sandbox's trusted test process as a job's prelude (see parts_of); the job's
# tests then set `_SPEC` (the part's data) and define check().  Every name it uses is defined here
# or a builtin (a name the tests leave undefined would be looked up in the candidate), and no line
# starts with `assert`.  T calls check(<proxy of the entry point>).
CHECKER = r'''
import builtins as _builtins
import json as _json
import math as _math
import pickle as _pickle
import signal as _signal
import time as _time

_NUM = (bool, int, float, complex)
_SLACK_S = 0.1  # the alarm's allowance for a round trip's fixed cost (pipes, scheduling) ...
_CARRY_FACTOR = 6.0  # ... and for carrying the answer: this many times decoding the expected one
_CARRY_SHARE = 1.25  # the sandbox's carrying of an answer, in times what _transport takes for it (its
# encoder runs in the candidate's process and JSON crosses a pipe: 0.9 to 1.1 times in one process, measured)


class _Opaque:
    """An expected value phi-eval could not carry: equal to nothing but itself."""

    __slots__ = ()

    def __repr__(self):
        return "<opaque expected value>"


class _TooLarge:
    """An expected output too large for any answer to come back through the proxy."""

    __slots__ = ()


class _InputTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _InputTimeout()


def _dec(v):
    t = type(v)
    if t is list:
        return [_dec(e) for e in v]
    if t is dict:
        ((tag, body),) = v.items()
        if tag == "T":
            return tuple([_dec(e) for e in body])
        if tag == "S":
            return {_dec(e) for e in body}
        if tag == "F":
            return frozenset([_dec(e) for e in body])
        if tag == "D":
            return {_dec(k): _dec(x) for k, x in body}
        if tag == "C":
            return complex(_dec(body[0]), _dec(body[1]))
        if tag == "I":
            return int(body, 16)
        if tag == "X":
            return float(body)
        if tag == "B":
            return bytes.fromhex(body)
        if tag == "L":
            return _TooLarge()
        return _Opaque()
    return v


def _is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _array(x):
    """numpy's reading of x as a numeric array: (shape, flat values), or None where it has none."""
    if type(x) in (list, tuple):
        if not x:
            return (0,), []
        parts = [_array(e) for e in x]
        if any(p is None for p in parts):
            return None
        shape = parts[0][0]
        if any(p[0] != shape for p in parts):
            return None
        return (len(x),) + shape, [v for p in parts for v in p[1]]
    if type(x) in _NUM:
        return (), [x]
    return None


def _fits(v):
    return type(v) is not int or -(1 << 63) <= v < (1 << 64)


def _finite(y):
    if type(y) is complex:
        return _math.isfinite(y.real) and _math.isfinite(y.imag)
    return _math.isfinite(y)


def _close(x, y, atol, rtol):
    return (abs(x - y) <= atol + rtol * abs(y) and _finite(y)) or x == y


def _allclose(out, exp, atol, rtol=1e-07):
    """numpy.allclose(out, exp, rtol, atol) on builtin values; False where numpy would raise."""
    try:
        if type(out) in _NUM and type(exp) in _NUM:
            return bool(_close(out, float(exp) if type(exp) in (bool, int) else exp, atol, rtol))
        xa, ya = _array(out), _array(exp)
        if xa is None or ya is None:
            return False
        (sx, xs), (sy, ys) = xa, ya
        if not all(_fits(v) for v in ys):
            return False  # numpy keeps such an expected array as objects, and isfinite refuses them
        cast = complex if any(type(v) is complex for v in ys) else float
        ys = [cast(v) for v in ys]
        n = max(len(sx), len(sy))
        sx, sy = (1,) * (n - len(sx)) + sx, (1,) * (n - len(sy)) + sy
        shape = []
        for a, b in zip(sx, sy):
            if a != b and 1 not in (a, b):
                return False  # not broadcastable: numpy raises
            shape.append(b if a == 1 else a)
        total = 1
        for d in shape:
            total *= d
        for flat in range(total):
            ix = iy = 0
            rest = flat
            stride_x = stride_y = 1
            for d in range(n - 1, -1, -1):
                i = rest % shape[d]
                rest //= shape[d]
                if sx[d] != 1:
                    ix += i * stride_x
                if sy[d] != 1:
                    iy += i * stride_y
                stride_x *= sx[d]
                stride_y *= sy[d]
            if not _close(xs[ix], ys[iy], atol, rtol):
                return False
        return True
    except Exception:
        return False


def _poly(xs, x):
    return _builtins.sum([c * _math.pow(x, i) for i, c in enumerate(xs)])


def _surface_area(base_edge, height):
    slant = _math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def _digit_distance(a, b):
    sa, sb = str(a), str(b)
    width = max(len(sa), len(sb))
    sa, sb = sa.zfill(width), sb.zfill(width)
    return _builtins.sum(abs(int(p) - int(q)) for p, q in zip(sa, sb))


_SET_EQ = {"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
           "intersection_array", "find_dissimilar", "Diff"}
_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}


def _judge(dataset, entry, inp, out, exp, atol):
    """(verdict, atol from now on); verdict None: evalplus records nothing for this input."""
    exact = out == exp
    if dataset == "mbpp":
        if entry == "are_equivalent":
            exact = True
        elif entry == "sum_div":
            exact = exact or out == 0
        elif entry == "surface_Area":
            exact = exact or abs(out - _surface_area(*inp)) <= atol
        elif entry == "digit_distance_nums":
            exact = exact or out == _digit_distance(*inp)
        elif entry in _SET_EQ:
            exact = set(out) == set(exp)
        elif entry in _NOT_NONE:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry == "find_zero":
        return (None if abs(_poly(*inp, out)) <= atol else False), atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) != type(exp):
            return False, atol
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False, atol
        return _allclose(out, exp, atol), atol
    return bool(exact), atol


def _show(value, limit=120):
    try:
        text = repr(value)
    except Exception:
        text = "<unprintable>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(part, i, entry, inp):
    return f"{part} input #{i}: {entry}({_show(inp, 200)[1:-1]})"


def _late(part, i, entry, inp, limit):
    return f"{_where(part, i, entry, inp)} ran past its time limit of {limit:.2f}s"


def _enc(v):
    """The JSON form the sandbox carries a plain value in (its cost is what is timed, see _transport)."""
    t = type(v)
    if t is list:
        return [_enc(e) for e in v]
    if t in (tuple, set, frozenset):
        return {"T": [_enc(e) for e in v]}
    if t is dict:
        return {"D": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if t is complex:
        return {"C": [v.real, v.imag]}
    if t is float and not _math.isfinite(v):
        return {"X": repr(v)}
    if t is int and not -(1 << 53) < v < (1 << 53):
        return {"I": hex(v)}
    if t in (str, int, float, bool) or v is None:
        return v
    return None


def _transport(inp, out):
    """How long carrying this call's arguments to the candidate and its answer back takes here
    and now: what a round trip through the sandbox costs beyond the call that evalplus times."""
    start = _time.perf_counter()
    try:
        _pickle.loads(_pickle.dumps(inp, _pickle.HIGHEST_PROTOCOL))
        _dec(_json.loads(_json.dumps(_enc(out), separators=(",", ":"))))
    except Exception:
        pass
    return _time.perf_counter() - start


def _check_part(candidate):
    """evalplus's loop over one part's inputs, stopping at the first that fails.

    An input's time limit bounds the call, as in evalplus, where the call runs in the process
    that times it.  Here the call is a round trip to the candidate's process, which also carries
    the arguments there and the answer back; so the alarm allows for that on top of the limit
    (SLACK_S, and some times what decoding the expected output took), and a call that came back
    past the limit is over it only if it still is once the carrying of what it returned, timed
    here, is taken off."""
    spec = _SPEC
    dataset, entry, part, atol = spec["dataset"], spec["entry"], spec["part"], spec["atol"]
    previous = _signal.signal(_signal.SIGALRM, _alarm)
    try:
        recorded = 0
        for i, (raw, raw_exp, limit) in enumerate(zip(spec["inputs"], spec["expected"], spec["limits"])):
            inp = _dec(raw)
            if type(raw_exp) is dict and "L" in raw_exp:  # no answer this large comes back: fails
                raise AssertionError(f"{_where(part, i, entry, inp)}: its expected output is over "
                                     f"{raw_exp['L'] >> 20} MiB, more than the sandbox carries back")
            start = _time.perf_counter()
            exp = _dec(raw_exp)
            carry = _SLACK_S + _CARRY_FACTOR * (_time.perf_counter() - start)
            try:
                _signal.setitimer(_signal.ITIMER_REAL, limit + carry)
                start = _time.perf_counter()
                try:
                    out = candidate(*inp)
                finally:
                    took = _time.perf_counter() - start
                    _signal.setitimer(_signal.ITIMER_REAL, 0)
            except _InputTimeout:
                raise AssertionError(_late(part, i, entry, inp, limit)) from None
            except Exception as exc:
                raise RuntimeError(f"{_where(part, i, entry, inp)} raised {type(exc).__name__}: {_show(exc, 150)}") from None
            if took > limit and took - _CARRY_SHARE * _transport(inp, out) > limit:
                raise AssertionError(_late(part, i, entry, inp, limit))
            try:
                verdict, atol = _judge(dataset, entry, inp, out, exp, atol)
            except Exception:
                verdict = False
            if verdict is False:
                raise AssertionError(f"{_where(part, i, entry, inp)} returned {_show(out)}, expected {_show(exp)}")
            recorded += verdict is True
        if recorded != len(spec["inputs"]):
            raise AssertionError(f"{part}: evalplus 0.3.1 records no passing input for {entry}, so it never passes")
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _signal.signal(_signal.SIGALRM, previous)
'''

# The job's tests end with this: check() is defined after T took the entry point's name away, so a
# task whose function is called `check` still gets the checker's.
_RUN = "def check(candidate):\n    return _check_part(candidate)\n"
# The names the checker binds at its top level (imports, functions, classes, constants): an entry
# point with one of these names must not lose it to T's removal of the entry point's name.
CHECKER_NAMES = frozenset(
    name for node in ast.parse(CHECKER).body
    for name in ([t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign)
                 else [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                 else [(a.asname or a.name).split(".")[0] for a in node.names]
                 if isinstance(node, (ast.Import, ast.ImportFrom)) else [])
)
