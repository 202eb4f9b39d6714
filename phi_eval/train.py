"""Exercise-style fine-tuning with Accelerate: (prompt, completion) pairs -> a model folder `run` can evaluate.

The examples are built in the very prompt format the model is evaluated with, and the loss counts only
the completion's tokens (labels are -100 on the prompt and padding), as in phi-1's "CodeExercises"
fine-tuning. The same loop runs on one CPU process or many GPUs/nodes under `accelerate launch`;
checkpoints are `accelerator.save_state` folders plus a small trainer_state.json (step, epoch, batch
position), so `--resume-from` continues the step count, optimizer, scheduler and RNG exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi_eval.contamination import TrainItem, build_eval_index, check, describe, normalise_task_id
from phi_eval.errors import PhiEvalError

IGNORE = -100  # the label value cross-entropy skips
STATE_FILE = "trainer_state.json"
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; written to DIR/train_config.json."""

    model: str
    out: Path
    task: str | None = "mbpp"
    split: str = "train"
    data: Path | None = None
    train_file: Path | None = None
    max_steps: int | None = None
    epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 8
    grad_accum: int = 1
    seed: int = 0
    mixed_precision: str = "no"
    resume_from: Path | None = None
    checkpoint_every: int = 0
    prompt_format: str = "auto"
    system_prompt: str | None = None  # chat formats only
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 1024
    log_every: int = 1
    eval_tasks: tuple[str, ...] = ()  # empty: HumanEval and MBPP's test split
    allow_overlap: bool = False
    force: bool = False
    progress: bool = True


Example = TrainItem  # one type for a training pair, shared with the contamination guard


@dataclass
class TrainResult:
    out: Path
    steps: int
    first_loss: float | None
    last_loss: float | None
    elapsed_s: float
    examples: int
    dropped: list[str] = field(default_factory=list)
    main_process: bool = True  # the CLI prints its summary from rank 0 only


# ---------------------------------------------------------------- data


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
    for lineno, line in enumerate(raw_lines.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PhiEvalError(
                f"{path}: line {lineno} is not valid JSON ({exc.msg}); fix or remove it"
            ) from None
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


# ---------------------------------------------------------------- output folder and checkpoints


def prepare_out(cfg: TrainConfig, checkpoint: Path | None = None) -> None:
    """Refuse to write into a non-empty folder unless resuming there or --force (nothing is overwritten).

    --force clears the folder's checkpoints, so it is refused when the checkpoint to resume from is
    one of them: clearing first would delete the very state the run is about to load.
    """
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise PhiEvalError(f"--out {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if cfg.force and checkpoint is not None and checkpoint.resolve().is_relative_to(out.resolve()):
            raise PhiEvalError(
                f"--force would delete checkpoint {checkpoint}, which --resume-from resumes from; "
                "drop --force to resume inside --out, or choose another --out"
            )
        if cfg.force:
            for name in ("checkpoints", "train_log.jsonl"):
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        elif cfg.resume_from is None:
            raise PhiEvalError(
                f"--out {out} exists and is not empty; pass --resume-from or --force, or choose another folder"
            )


def find_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or the newest checkpoints/step-N under a training output folder."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    steps = [p for p in (path / "checkpoints").glob("step-*") if (p / STATE_FILE).is_file()]
    if not steps:
        raise PhiEvalError(f"--resume-from {path} holds no checkpoint ({STATE_FILE} or checkpoints/step-N/)")
    return max(steps, key=lambda p: int(p.name.split("-", 1)[1]))


def carry_log(cfg: TrainConfig, checkpoint: Path | None, step: int) -> None:
    """Keep the log lines up to the resumed step (from this folder's log, or the checkpoint's run)."""
    log = cfg.out / "train_log.jsonl"
    source = log if log.is_file() else (checkpoint.parent.parent / "train_log.jsonl" if checkpoint else None)
    lines: list[str] = []
    if checkpoint is not None and source is not None and source.is_file():
        lines = [
            ln for ln in source.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
        ]
    log.write_text("".join(ln + "\n" for ln in lines))


def versions() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    from phi_eval import __version__

    return {
        "phi_eval": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# ---------------------------------------------------------------- the loop


def load_examples(cfg: TrainConfig, fmt: str, tokenizer: Any = None) -> tuple[list[Example], dict[str, Any]]:
    if cfg.train_file is not None:
        return file_examples(cfg.train_file)
    if cfg.task is None:
        raise PhiEvalError(
            "no training data: pass --task mbpp --split train [--data PATH] or --train-file FILE.jsonl"
        )
    return task_examples(cfg.task, cfg.split, cfg.data, fmt, tokenizer, cfg.system_prompt)


def load_tokenizer(model: str) -> Any:
    """The model's tokenizer through the loader generation uses (generate/loading.py)."""
    from phi_eval.generate import loading

    source, local_only = loading.resolve_source(model)
    return loading.load_tokenizer(source, model, local_only=local_only)


def load_model(model: str) -> Any:
    """The model in float32 (the optimizer's precision; --mixed-precision casts on the fly), through
    the loader generation uses, so both read a folder or a hub id alike and fail in the same words."""
    from phi_eval.generate import loading

    source, local_only = loading.resolve_source(model)
    return loading.load_model(source, model, "float32", local_only=local_only)


def resolve_train_format(cfg: TrainConfig, tokenizer: Any) -> str:
    """The prompt format to train in: `auto` as `run` resolves it (chat for an instruct model with a
    chat template), so the checkpoint is evaluated in the format it learned."""
    from phi_eval.chat import chat_template
    from phi_eval.prompts import check_system_prompt, resolve_format

    has_template = chat_template(tokenizer) is not None
    fmt = resolve_format(cfg.prompt_format, cfg.model, chat_template=has_template)
    check_system_prompt(fmt, cfg.system_prompt)
    if fmt == "chat" and not has_template:
        raise PhiEvalError(
            "--prompt-format chat needs a tokenizer with a chat template and this model's has none; "
            "use a base format (phi-1, phi-2, plain) or phi-2-chat"
        )
    return fmt


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


def train(cfg: TrainConfig, echo: Any = None) -> TrainResult:
    """Fine-tune cfg.model on the chosen examples and save a from_pretrained folder at cfg.out."""
    from accelerate import PartialState

    say = echo or (lambda msg: print(msg, file=sys.stderr))
    main = PartialState().is_main_process  # under `accelerate launch` only rank 0 talks

    def echo(msg: str) -> None:
        if main:
            say(msg)

    if cfg.mixed_precision not in MIXED_PRECISION:
        raise PhiEvalError(
            f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}; got {cfg.mixed_precision!r}"
        )
    for name in ("batch_size", "grad_accum", "epochs", "max_length", "log_every"):
        if getattr(cfg, name) < 1:
            raise PhiEvalError(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise PhiEvalError("--max-steps must be at least 1")
    if cfg.checkpoint_every < 0 or cfg.warmup_steps < 0:
        raise PhiEvalError("--checkpoint-every and --warmup-steps cannot be negative")
    checkpoint = find_checkpoint(cfg.resume_from) if cfg.resume_from is not None else None
    prepare_out(cfg, checkpoint)

    tokenizer = load_tokenizer(cfg.model)
    fmt = resolve_train_format(cfg, tokenizer)
    examples, source = load_examples(cfg, fmt, tokenizer)
    examples, contamination = guard(cfg, examples, source, echo)

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    try:
        accelerator = Accelerator(
            gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision
        )
    except (ValueError, RuntimeError) as exc:
        raise PhiEvalError(
            f"cannot set up Accelerate with --mixed-precision {cfg.mixed_precision}: {exc}"
        ) from None
    try:
        return _train(cfg, checkpoint, fmt, examples, source, contamination, accelerator)
    finally:
        # One process may train twice (tests, notebooks): let the next Accelerator pick its own settings.
        AcceleratorState._reset_state()
        GradientState._reset_state()


def _train(
    cfg: TrainConfig,
    checkpoint: Path | None,
    fmt: str,
    examples: list[Example],
    source: dict[str, Any],
    contamination: dict[str, Any],
    accelerator: Any,
) -> TrainResult:
    """The Accelerate loop proper; `train` has validated the settings and picked the data."""
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    digest = examples_digest(examples)

    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model)
    if tokenizer.eos_token_id is None:
        raise PhiEvalError(f"the tokenizer of {cfg.model} has no EOS token; exercise training appends one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    rows = [encode(tokenizer, ex, cfg.max_length) for ex in examples]
    rows = [r for r in rows if any(label != IGNORE for label in r["labels"])]
    sampler = EpochSampler(len(rows), cfg.seed)
    loader = DataLoader(
        rows, batch_size=cfg.batch_size, sampler=sampler, collate_fn=Collator(tokenizer.pad_token_id)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    updates_per_epoch = math.ceil(
        math.ceil(len(rows) / cfg.batch_size / accelerator.num_processes) / cfg.grad_accum
    )
    total = cfg.max_steps or updates_per_epoch * cfg.epochs
    # AcceleratedScheduler steps once per process per update, so the schedule is counted in those units.
    scheduler = get_linear_schedule_with_warmup(
        optimizer, cfg.warmup_steps * accelerator.num_processes, total * accelerator.num_processes
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "tokens": 0, "elapsed_s": 0.0, "data_sha256": digest}
    if checkpoint is not None:
        saved = json.loads((checkpoint / STATE_FILE).read_text())
        if saved.get("data_sha256") != digest or saved.get("batch_size") != cfg.batch_size:
            raise PhiEvalError(
                f"checkpoint {checkpoint} was trained on other data or batch size; resume with the same "
                "training data, --prompt-format and --batch-size"
            )
        accelerator.load_state(str(checkpoint))
        state.update({k: saved[k] for k in ("step", "epoch", "batch_in_epoch", "tokens", "elapsed_s")})
        if state["step"] >= total:
            raise PhiEvalError(
                f"checkpoint {checkpoint} is already at step {state['step']}; raise --max-steps to go on"
            )

    if accelerator.is_main_process:
        cfg.out.mkdir(parents=True, exist_ok=True)
        carry_log(cfg, checkpoint, state["step"])
        config_doc = {k: _jsonable(v) for k, v in asdict(cfg).items()}
        from phi_eval.chat import template_sha256

        config_doc.update(
            prompt_format=fmt,
            chat_template_sha256=template_sha256(tokenizer) if fmt == "chat" else None,
            data_source=source,
            data_sha256=digest,
            examples=len(rows),
            total_steps=total,
            num_processes=accelerator.num_processes,
            resumed_from=str(checkpoint) if checkpoint else None,
            resumed_at_step=state["step"] if checkpoint else None,
            contamination=contamination,
            versions=versions(),
        )
        (cfg.out / "train_config.json").write_text(json.dumps(config_doc, indent=2) + "\n")
    accelerator.wait_for_everyone()

    log_path = cfg.out / "train_log.jsonl"
    started = time.perf_counter() - state["elapsed_s"]
    losses: list[float] = []
    first_logged: float | None = None
    step, epoch, tokens = state["step"], state["epoch"], state["tokens"]
    skip = state["batch_in_epoch"]
    if skip >= len(loader):
        epoch, skip = epoch + 1, 0
    progress, bar = _progress(accelerator.is_main_process and cfg.progress, total, step)
    model.train()
    try:
        while step < total:
            sampler.set_epoch(epoch)
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            position = skip
            step_loss, step_tokens, micro = 0.0, 0, 0
            for batch in batches:
                position += 1
                with accelerator.accumulate(model):
                    out = model(**batch)
                    accelerator.backward(out.loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                step_loss += out.loss.detach().float()
                step_tokens += (batch["labels"] != IGNORE).sum()
                micro += 1
                if not accelerator.sync_gradients:
                    continue
                step += 1
                tokens += int(accelerator.reduce(step_tokens, reduction="sum").item())
                step_tokens = 0
                loss = accelerator.reduce(step_loss / micro, reduction="mean").item()
                step_loss, micro = 0.0, 0
                losses.append(loss)
                first_logged = loss if first_logged is None else first_logged
                if step % cfg.log_every == 0 or step == total:
                    record = {
                        "step": step,
                        "loss": round(loss, 6),
                        "lr": scheduler.get_last_lr()[0],
                        "epoch": round(epoch + position / len(loader), 4),
                        "tokens": tokens,
                        "elapsed_s": round(time.perf_counter() - started, 3),
                    }
                    if accelerator.is_main_process:
                        with log_path.open("a") as fh:
                            fh.write(json.dumps(record) + "\n")
                if progress is not None:
                    progress.update(bar, completed=step, loss=f"{loss:.4f}")
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                    _save_checkpoint(
                        cfg, accelerator, step, epoch, position, tokens, time.perf_counter() - started, digest
                    )
                if step >= total:
                    break
            epoch, skip = epoch + 1, 0
    finally:
        if progress is not None:
            progress.stop()

    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # every process joins (sharded backends gather here)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.generation_config.pad_token_id = tokenizer.pad_token_id
        unwrapped.generation_config.eos_token_id = tokenizer.eos_token_id
        if unwrapped.config.pad_token_id is None:
            unwrapped.config.pad_token_id = tokenizer.pad_token_id
        unwrapped.save_pretrained(cfg.out, state_dict=state_dict, save_function=accelerator.save)
        tokenizer.save_pretrained(cfg.out)
    accelerator.wait_for_everyone()
    elapsed = time.perf_counter() - started
    last = losses[-1] if losses else None
    return TrainResult(
        cfg.out,
        step,
        first_logged,
        last,
        elapsed,
        len(rows),
        contamination.get("dropped", []),
        accelerator.is_main_process,
    )


def _save_checkpoint(
    cfg: TrainConfig,
    accelerator: Any,
    step: int,
    epoch: int,
    position: int,
    tokens: int,
    elapsed: float,
    digest: str,
) -> None:
    """save_state (model, optimizer, scheduler, RNG) + where in the data we are, so resume can skip ahead."""
    path = cfg.out / "checkpoints" / f"step-{step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        state = {
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": position,
            "tokens": tokens,
            "elapsed_s": elapsed,
            "data_sha256": digest,
            "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
        }
        (path / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    accelerator.wait_for_everyone()


def _progress(enabled: bool, total: int, start: int) -> tuple[Any, Any]:
    """A rich bar with the current loss, on the main process only (stderr, so stdout stays clean)."""
    if not enabled:
        return None, None
    from rich.progress import TextColumn

    from phi_eval.progress import progress_bar

    progress = progress_bar(TextColumn("loss {task.fields[loss]}"))
    progress.start()
    bar = progress.add_task("training", total=total, completed=start, loss="-")
    return progress, bar
