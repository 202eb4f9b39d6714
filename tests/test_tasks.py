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


# ---------------------------------------------------------------- the task files are the only copy


def _task_copy(tmp_path: Path, monkeypatch, name: str, edit) -> Path:
    import phi_eval.tasks as tasks_module
    from phi_eval.paths import tasks_dir

    folder = tmp_path / "tasks"
    folder.mkdir()
    for toml in tasks_dir().glob("*.toml"):
        (folder / toml.name).write_text(toml.read_text())
    (folder / f"{name}.toml").write_text(edit((folder / f"{name}.toml").read_text()))
    monkeypatch.setattr(tasks_module, "tasks_dir", lambda: folder)
    return folder


def test_every_task_file_field_is_one_the_code_reads() -> None:
    from phi_eval.tasks import available_tasks

    for name in available_tasks():
        get_task(name)  # refuses a field it does not know


def test_an_unknown_field_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    _task_copy(tmp_path, monkeypatch, "humaneval", lambda t: t.replace("[source]\n", "[source]\npakage = \"x\"\n"))
    with pytest.raises(PhiEvalError, match=r"unknown field \[source\] pakage"):
        get_task("humaneval")


def test_templates_stops_and_data_come_from_the_task_file(tmp_path: Path, monkeypatch) -> None:
    from phi_eval.prompts import build_prompt, prompt_setup

    def edit(text: str) -> str:
        text = text.replace('"phi-1" = "{prompt}"', '"phi-1" = "# solve it\\n{prompt}"')
        text = text.replace('"phi-2-chat" = ["\\nAlice:"]', '"phi-2-chat" = ["\\nCarol:"]')
        return text.replace('"phi-2" = "{prompt}"\n', "")

    _task_copy(tmp_path, monkeypatch, "humaneval", edit)
    task = get_task("humaneval")
    problems, source = task.load()
    assert source.kind == "package" and source.location.endswith("data/HumanEval.jsonl.gz")  # [source]
    p = problems[0]
    assert build_prompt(task, p, "phi-1") == "# solve it\n" + p.prompt
    assert prompt_setup(task, "phi-2-chat", "m").stop == ("\nCarol:",)
    with pytest.raises(PhiEvalError, match="no prompt template for 'phi-2'"):  # no fallback copy in code
        build_prompt(task, p, "phi-2")


def test_exec_job_wire_form_has_every_field() -> None:
    """ExecJob.to_json is written out by hand (asdict deep-copies, and costs a quarter of the host's
    CPU per sample): it must stay the dataclass's fields, each as it is."""
    from dataclasses import asdict, fields

    from phi_eval.jobs import ExecJob

    job = ExecJob(id="t#0", candidate="c", prelude="p", tests="t", entry_point="f", timeout_s=3.0,
                  memory_mb=512, candidate_names=("f", "g"))
    assert job.to_json() == asdict(job)
    assert list(job.to_json()) == [f.name for f in fields(ExecJob)]
