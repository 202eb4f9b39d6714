"""Strict samples parsing and the run folder's refuse-to-overwrite rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phi_eval import files, runfolder
from phi_eval.errors import PhiEvalError
from phi_eval.samples import read_samples
from phi_eval.tasks import get_task


@pytest.fixture(scope="module")
def he_problems():
    problems, _ = get_task("humaneval").load()
    return {p.task_id: p for p in problems}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_both_forms_and_numbers_samples(tmp_path: Path, he_problems) -> None:
    path = _write(tmp_path, [
        json.dumps({"task_id": "HumanEval/0", "completion": "    return True\n"}),
        json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}),
        json.dumps({"task_id": "HumanEval/1", "solution": "def separate_paren_groups(s):\n    return []\n"}),
    ])
    samples = read_samples(path, he_problems)
    assert [(s.task_id, s.completion_id, s.is_program) for s in samples] == [
        ("HumanEval/0", 0, False), ("HumanEval/0", 1, False), ("HumanEval/1", 0, True)]


@pytest.mark.parametrize("lines,message", [
    (['{"task_id": "HumanEval/0", "completion": "x"}', "{not json"], r"samples.jsonl:2: not valid JSON"),
    (['{"task_id": "HumanEval/999", "completion": "x"}'], r":1: unknown task id 'HumanEval/999'"),
    (['{"task_id": "HumanEval/0"}'], r":1: missing 'completion'"),
    (['{"completion": "x"}'], r":1: missing 'task_id'"),
    (['{"task_id": "HumanEval/0", "completion": 3}'], r"'completion' must be a string"),
    (['[1, 2]'], r"expected a JSON object"),
    ([""], r"holds no samples"),
    (['{"task_id": "HumanEval/0", "completion": "a", "completion_id": 0}',
      '{"task_id": "HumanEval/0", "completion": "b", "completion_id": 0}'], r":2: duplicate sample"),
])
def test_bad_samples_name_the_line(tmp_path: Path, he_problems, lines: list[str], message: str) -> None:
    with pytest.raises(PhiEvalError, match=message):
        read_samples(_write(tmp_path, lines), he_problems)


def test_mbpp_accepts_bare_integer_ids(tmp_path: Path, mbpp_path: Path) -> None:
    problems, _ = get_task("mbpp").load(mbpp_path)
    path = _write(tmp_path, [json.dumps({"task_id": 11, "completion": "def f(): pass"})])
    assert read_samples(path, {p.task_id: p for p in problems})[0].task_id == "Mbpp/11"


def test_existing_run_folder_is_refused_then_resumed_or_forced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    runfolder.open_folder(run, resume=False, force=False).release()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(PhiEvalError, match="already exists; pass --resume"):
        runfolder.open_folder(run, resume=False, force=False)
    assert (run / "metrics.json").read_text() == "{}"
    runfolder.open_folder(run, resume=True, force=False).release()
    assert (run / "metrics.json").exists()
    runfolder.open_folder(run, resume=False, force=True).release()
    assert not (run / "metrics.json").exists()
    with pytest.raises(PhiEvalError, match="holds no run to continue"):
        runfolder.open_folder(tmp_path / "fresh", resume=True, force=False)
    assert not (tmp_path / "fresh").exists()


def test_appender_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')  # killed mid-write
    assert [r["a"] for r in files.iter_jsonl(path)] == [1]
    with files.JsonlAppender(path) as out:
        out.write([{"a": 3}])
    assert [r["a"] for r in files.iter_jsonl(path)] == [1, 3]


def test_write_json_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    files.write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert list(tmp_path.iterdir()) == [path]
