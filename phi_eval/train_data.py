"""The training data: benchmark problems or a user's file as (prompt, completion) exercises, tokenised.

The examples are built in the very prompt format the model is evaluated with, and the loss counts
only the completion's tokens (labels are -100 on the prompt and padding), as in phi-1's
"CodeExercises" fine-tuning. The shuffle depends only on (seed, epoch), so a resumed run sees the
same order and can skip what it already trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_eval.contamination import TrainItem, build_eval_index, check, describe, normalise_task_id
from phi_eval.errors import PhiEvalError
from phi_eval.files import BadLine, records, split_lines

if TYPE_CHECKING:
    from phi_eval.train_config import TrainConfig

IGNORE = -100  # the label value cross-entropy skips
Example = TrainItem  # one type for a training pair, shared with the contamination guard


def load_examples(cfg: TrainConfig, fmt: str, tokenizer: Any = None) -> tuple[list[Example], dict[str, Any]]:
    if cfg.train_file is not None:
        return file_examples(cfg.train_file)
    if cfg.task is None:
        raise PhiEvalError(
            "no training data: pass --task mbpp --split train [--data PATH] or --train-file FILE.jsonl"
        )
    return task_examples(cfg.task, cfg.split, cfg.data, fmt, tokenizer, cfg.system_prompt)



def completion_for(prompt: str, solution: str) -> str:
    """The reference solution as the model should emit it after `prompt`, including any closing marker.

    Generation stops at the task's stop sequences, so the completion ends where a good sample would:
    a prompt that opened a ```python fence gets the fence closed, a [BEGIN] block gets its [DONE].
    """
    text = solution.replace("\r\n", "\n").rstrip() + "\n"
    if prompt.count("```") % 2 == 1:
        text += "```\n"
    tail = prompt[prompt.rfind("[BEGIN]") :] if "[BEGIN]" in prompt else ""
    if tail and "[DONE]" not in tail:
        text = text.rstrip("\n") + "\n[DONE]\n"
    return text


def chat_answer(program: str) -> str:
    """The assistant's answer a chat example teaches: the whole program in a ```python block, the
    shape the chat formats' extraction reads back (phi_eval/sanitize.py)."""
    return f"```python\n{program.strip()}\n```"


def task_examples(
    task_name: str, split: str, data: Path | None, fmt: str, tokenizer: Any = None, system_prompt: str | None = None
) -> tuple[list[Example], dict[str, Any]]:
    """A benchmark split as exercises: prompt = build_prompt(task, problem, fmt), completion = its reference.

    Chat formats: the prompt is the rendered conversation up to the assistant's turn, exactly as
    `run` renders it, and the completion is the answer (the whole program in a code block) followed
    by what the template writes after an answer (Phi-3: <|end|>), so the model learns to end its turn."""
    from phi_eval.prompts import CHAT_FORMATS, build_prompt
    from phi_eval.tasks import get_task

    task = get_task(task_name)
    problems, source = task.load(data, split)
    examples = []
    for p in problems:
        text = build_prompt(task, p, fmt)
        if fmt == "chat":
            from phi_eval.chat import render_exchange

            program = p.reference if p.completion_is_program else p.prompt + p.reference
            prompt, completion = render_exchange(tokenizer, text, chat_answer(program), system_prompt)
        elif fmt in CHAT_FORMATS:
            program = p.reference if p.completion_is_program else p.prompt + p.reference
            prompt = f"{system_prompt}\n{text}" if system_prompt else text
            completion = " " + chat_answer(program) + "\n"
        else:
            prompt, completion = text, completion_for(text, p.reference)
        examples.append(Example(prompt, completion, p.task_id, p.task_id))
    return examples, {"origin": "task", "task": task.name, **asdict(source)}


def file_examples(path: Path) -> tuple[list[Example], dict[str, Any]]:
    """A jsonl file of {"prompt", "completion"[, "task_id"]} lines; a bad line is one error naming it."""
    examples = []
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            raw_lines = fh.read()
    except OSError as exc:
        raise PhiEvalError(f"cannot read --train-file {path}: {exc.strerror or exc}") from None
    digest.update(raw_lines)
    try:
        rows = list(records(split_lines(raw_lines.decode("utf-8", errors="replace"))))
    except BadLine as exc:
        raise PhiEvalError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg}); fix or remove it") from None
    for lineno, row in rows:
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("prompt"), str)
            or not isinstance(row.get("completion"), str)
        ):
            raise PhiEvalError(
                f'{path}: line {lineno} needs a string "prompt" and a string "completion"; fix or remove it'
            )
        if not row["completion"].strip():
            raise PhiEvalError(f"{path}: line {lineno} has an empty completion; fix or remove it")
        examples.append(
            Example(row["prompt"], row["completion"], f"line {lineno}", normalise_task_id(row.get("task_id")))
        )
    if not examples:
        raise PhiEvalError(f"{path} holds no training examples")
    return examples, {
        "origin": "train-file",
        "kind": "file",
        "location": str(path),
        "sha256": digest.hexdigest(),
    }


def examples_digest(examples: Sequence[Example]) -> str:
    """sha256 of the exact training text, so a resume can tell it is fed the same data."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.prompt, ex.completion]).encode())
    return digest.hexdigest()


def encode(tokenizer: Any, example: Example, max_length: int) -> dict[str, list[int]]:
    """Token ids and labels: -100 on the prompt, the completion's ids plus EOS as targets.

    Prompt and completion are tokenised separately because at evaluation time the model sees the
    prompt's tokens alone and continues from there; joint tokenisation could merge across the seam.
    Too long: the prompt loses tokens from its start first, then the completion from its end.
    """
    prompt_ids = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    if not completion_ids or completion_ids[-1] != tokenizer.eos_token_id:  # a chat template may end with EOS
        completion_ids.append(tokenizer.eos_token_id)
    room = max_length - len(completion_ids)
    if room < len(prompt_ids):
        prompt_ids = prompt_ids[len(prompt_ids) - max(room, 0) :] if room > 0 else []
    completion_ids = completion_ids[: max_length - len(prompt_ids)]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE] * len(prompt_ids) + completion_ids,
    }


class Collator:
    """Right-pads a batch to its longest row; padding is masked out of attention and loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, mask = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append(r["input_ids"] + [self.pad_id] * pad)
            labels.append(r["labels"] + [IGNORE] * pad)
            mask.append([1] * len(r["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


class EpochSampler:
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same order and can skip."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        import torch

        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())


def guard(
    cfg: TrainConfig, examples: list[Example], source: dict[str, Any], warn: Any
) -> tuple[list[Example], dict[str, Any]]:
    """Run the contamination guard; near-duplicates inside a benchmark's own train split are dropped.

    A user's train file that shares text with the eval set is refused: it points at a data pipeline
    that copied benchmark problems. MBPP's published train split, however, carries ~70 problems that
    restate test problems (MBPP's own duplication); those are dropped with a warning so the standard
    train->test protocol stays clean. Shared task ids are always refused.
    """
    mbpp_data = cfg.data if cfg.data is not None else None
    index = build_eval_index(cfg.eval_tasks or None, mbpp_data)
    items = list(examples)
    overlaps = check(items, index, allow=True)
    report: dict[str, Any] = {
        "eval_sets": list(index.names),
        "eval_problems": index.size,
        "overlaps": len(overlaps),
    }
    if not overlaps:
        return examples, report
    by_id = any(o.kind == "task id" for o in overlaps)
    if cfg.allow_overlap:
        warn(
            f"WARNING: {describe(overlaps, index)}; training on them anyway (--allow-overlap): scores on these "
            "benchmarks will be inflated"
        )
        report.update(allowed=True, examples=[asdict(o) for o in overlaps[:20]])
        return examples, report
    if source.get("origin") == "task" and not by_id:
        bad = {o.where for o in overlaps}
        warn(
            f"dropped {len(bad)} of {len(examples)} {source.get('task')} {cfg.split} problems that restate "
            f"evaluation problems (e.g. {overlaps[0].where} ~ {overlaps[0].eval_id} {overlaps[0].kind})"
        )
        report.update(dropped=sorted(bad), examples=[asdict(o) for o in overlaps[:20]])
        kept = [ex for ex in examples if ex.where not in bad]
        if not kept:
            raise PhiEvalError(
                "every training example overlaps the evaluation set; choose other training data"
            )
        return kept, report
    check(items, index, allow=False)  # raises the one-line refusal
    return examples, report
