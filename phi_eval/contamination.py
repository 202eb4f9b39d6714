"""The overlap guard: refuse training data that contains the problems a model will be evaluated on.

A fine-tuned model's HumanEval/MBPP score means nothing if it saw the answers, so `phi-eval train`
checks every training item against the evaluation set before it spends a single step:

- the same task id (MBPP test ids 11-510, HumanEval/N) in a train file that carries `task_id`;
- the same prompt or solution text once whitespace is normalised;
- a long shared run of text: any SHINGLE-character window of an eval prompt or canonical solution
  (normalised) that appears inside a training prompt or completion. The eval windows are hashed
  into one set, built once, so checking a training item costs one set lookup per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phi_eval.errors import PhiEvalError

SHINGLE = 50  # characters of normalised text; long enough that boilerplate does not collide
DEFAULT_EVAL_TASKS = ("humaneval", "mbpp")  # HumanEval's 164 problems and MBPP's test split

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Collapse every run of whitespace to one space so indentation and line ends do not hide a copy."""
    return _WS.sub(" ", text).strip()


def normalise_task_id(raw: object) -> str | None:
    """A train file's task_id in the eval sets' spelling: ints and `Mbpp/N` -> `Mbpp/N`; others as given."""
    if raw is None or raw == "":
        return None
    from phi_eval.tasks import mbpp_task_id

    text = str(raw).strip()
    try:
        return mbpp_task_id(text)  # MBPP's own rows carry bare integer ids
    except ValueError:
        pass
    if text.lower().startswith("humaneval/"):
        return "HumanEval/" + text.split("/", 1)[1]
    return text


@dataclass(frozen=True)
class TrainItem:
    """One training pair, as training and the guard both see it; `where` names it in messages
    (`line 12` of a train file, or `Mbpp/601`)."""

    prompt: str
    completion: str
    where: str
    task_id: str | None = None


# What matched: the task id, the whole prompt or solution, or a shared run of SHINGLE characters of one.
KINDS = ("task id", "prompt", "solution", "prompt text", "solution text")


@dataclass(frozen=True)
class Overlap:
    where: str
    eval_id: str
    kind: str  # one of KINDS


@dataclass
class EvalIndex:
    """Everything the guard compares against, built once from the evaluation problems."""

    names: tuple[str, ...]
    ids: set[str] = field(default_factory=set)
    prompts: dict[str, str] = field(default_factory=dict)  # normalised prompt -> eval id
    solutions: dict[str, str] = field(default_factory=dict)  # normalised solution -> eval id
    shingles: dict[int, tuple[str, str]] = field(
        default_factory=dict
    )  # hash -> (eval id, "prompt"/"solution")
    size: int = 0

    def add(self, task_id: str, prompt: str, solution: str) -> None:
        self.size += 1
        self.ids.add(task_id)
        for kind, text, exact in (("prompt", prompt, self.prompts), ("solution", solution, self.solutions)):
            norm = normalise(text)
            if not norm:
                continue
            exact.setdefault(norm, task_id)
            for i in range(max(len(norm) - SHINGLE + 1, 0)):
                self.shingles.setdefault(hash(norm[i : i + SHINGLE]), (task_id, kind))

    def match(self, item: TrainItem) -> Overlap | None:
        """The first reason this item overlaps the eval set, or None."""
        if item.task_id is not None and item.task_id in self.ids:
            return Overlap(item.where, item.task_id, "task id")
        prompt, completion = normalise(item.prompt), normalise(item.completion)
        if prompt in self.prompts:
            return Overlap(item.where, self.prompts[prompt], "prompt")
        if completion in self.solutions:
            return Overlap(item.where, self.solutions[completion], "solution")
        for text in (prompt, completion):
            for i in range(len(text) - SHINGLE + 1):
                hit = self.shingles.get(hash(text[i : i + SHINGLE]))
                if hit is not None:
                    return Overlap(item.where, hit[0], f"{hit[1]} text")
        return None


def build_eval_index(eval_tasks: Sequence[str] | None = None, mbpp_data: Path | None = None) -> EvalIndex:
    """Index the evaluation problems: each task's eval split (HumanEval: all 164; MBPP: test).

    MBPP's test split is read from `mbpp_data` (mbpp.jsonl) or the hub; when neither works the guard
    refuses to run rather than silently checking less than it says.
    """
    from phi_eval.tasks import get_task

    names = tuple(eval_tasks) if eval_tasks else DEFAULT_EVAL_TASKS
    index = EvalIndex(names=names)
    for name in names:
        task = get_task(name)
        data = mbpp_data if task.loader == "mbpp" else None
        try:
            problems, _ = task.load(data, "test")
        except PhiEvalError as exc:
            why = str(exc).split("; ")[0]  # the loader's own advice names other flags
            raise PhiEvalError(
                f"the contamination guard needs the {name} test split but cannot load it ({why}); "
                f"pass --data PATH/mbpp.jsonl, or --eval-task to name only the benchmarks you will evaluate on"
            ) from None
        for p in problems:
            index.add(p.task_id, p.prompt, p.reference)
    return index


def find_overlaps(items: Iterable[TrainItem], index: EvalIndex) -> list[Overlap]:
    return [hit for item in items if (hit := index.match(item)) is not None]


def describe(overlaps: Sequence[Overlap], index: EvalIndex) -> str:
    """One line: how many items overlap, which eval set, and the first example."""
    sets = "/".join("HumanEval" if n == "humaneval" else n.upper() if n == "mbpp" else n for n in index.names)
    first = overlaps[0]
    noun = "item matches" if len(overlaps) == 1 else "items match"
    return (
        f"training data overlaps the evaluation set: {len(overlaps)} {noun} {sets} problems "
        f"(e.g. {first.where} ~ {first.eval_id} {first.kind})"
    )


def check(items: Sequence[TrainItem], index: EvalIndex, allow: bool = False) -> list[Overlap]:
    """Raise PhiEvalError on any overlap unless `allow`; return the overlaps either way (for the config)."""
    overlaps = find_overlaps(items, index)
    if overlaps and not allow:
        raise PhiEvalError(describe(overlaps, index) + "; remove them or pass --allow-overlap")
    return overlaps
