"""Task files and loaders on the real data: HumanEval from the package, MBPP from shared/."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi_eval.errors import PhiEvalError
from phi_eval.tasks import available_tasks, get_task, mbpp_task_id


def test_humaneval_has_164_problems_offline() -> None:
    problems, source = get_task("humaneval").load()
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[0].entry_point == "has_close_elements"
    assert source.kind == "package" and len(source.sha256) == 64


@pytest.mark.parametrize("split,count,first,last", [
    ("test", 500, 11, 510), ("validation", 90, 511, 600), ("train", 374, 601, 974), ("prompt", 10, 1, 10),
    ("all", 974, 1, 974),
])
def test_mbpp_splits(mbpp_path: Path, split: str, count: int, first: int, last: int) -> None:
    problems, source = get_task("mbpp").load(mbpp_path, split)
    assert len(problems) == count
    assert problems[0].task_id == f"Mbpp/{first}" and problems[-1].task_id == f"Mbpp/{last}"
    assert source.split == split and source.sha256


def test_mbpp_default_split_is_test(mbpp_path: Path) -> None:
    problems, _ = get_task("mbpp").load(mbpp_path)
    assert len(problems) == 500 and all(p.completion_is_program and p.test_list for p in problems)


def test_variant_includes_its_base() -> None:
    sanitized = get_task("mbpp-sanitized")
    assert sanitized.source["hf_config"] == "sanitized"
    assert sanitized.timeout_s == get_task("mbpp").timeout_s
    assert sanitized.stop == get_task("mbpp").stop
    assert {"humaneval", "mbpp", "mbpp-sanitized"} <= set(available_tasks())


def test_unknown_task_and_split_and_data() -> None:
    with pytest.raises(PhiEvalError, match="unknown task 'nope'; known tasks: humaneval"):
        get_task("nope")
    with pytest.raises(PhiEvalError, match="unknown split"):
        get_task("mbpp").load(Path("x.jsonl"), "dev")
    with pytest.raises(PhiEvalError, match="cannot read data file"):
        get_task("mbpp").load(Path("/nonexistent/mbpp.jsonl"))


def test_task_id_forms() -> None:
    assert mbpp_task_id(11) == mbpp_task_id("11") == mbpp_task_id("Mbpp/11") == "Mbpp/11"
    with pytest.raises(ValueError):
        mbpp_task_id("HumanEval/1")
