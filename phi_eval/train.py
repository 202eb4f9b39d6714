"""Exercise-style fine-tuning with Accelerate: (prompt, completion) pairs -> a model folder `run` can evaluate.

`train` checks the settings, picks and guards the data (phi_eval.train_data, the contamination
guard) and runs the loop in its steps: set up the model, data and schedule; pick up where a
checkpoint left off (phi_eval.checkpoints); record the run's settings; train; save the model. The
same loop runs on one CPU process or many GPUs/nodes under `accelerate launch`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi_eval.checkpoints import (
    LOG_FILE,
    carry_log,
    find_checkpoint,
    prepare_out,
    resume_state,
    save_checkpoint,
    versions,
)
from phi_eval.errors import PhiEvalError
from phi_eval.files import JsonlAppender, write_json
from phi_eval.train_config import TrainConfig
from phi_eval.train_data import (
    IGNORE,
    Collator,
    EpochSampler,
    Example,
    encode,
    examples_digest,
    guard,
    load_examples,
)

MIXED_PRECISION = ("no", "fp16", "bf16")


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


def check_settings(cfg: TrainConfig) -> None:
    """Refuse impossible settings in one line each, before anything is loaded or written."""
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


def train(cfg: TrainConfig, echo: Any = None) -> TrainResult:
    """Fine-tune cfg.model on the chosen examples and save a from_pretrained folder at cfg.out."""
    from accelerate import PartialState

    say = echo or (lambda msg: print(msg, file=sys.stderr))
    main = PartialState().is_main_process  # under `accelerate launch` only rank 0 talks

    def echo(msg: str) -> None:
        if main:
            say(msg)

    check_settings(cfg)
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


@dataclass
class _Setup:
    """What the loop trains: the prepared model, optimizer, data and schedule."""

    model: Any
    tokenizer: Any
    optimizer: Any
    loader: Any
    sampler: EpochSampler
    scheduler: Any
    rows: int  # examples with at least one target token
    total: int  # optimizer updates in all


def _train(
    cfg: TrainConfig,
    checkpoint: Path | None,
    fmt: str,
    examples: list[Example],
    source: dict[str, Any],
    contamination: dict[str, Any],
    accelerator: Any,
) -> TrainResult:
    """The Accelerate loop proper, step by step; `train` has validated the settings and picked the data."""
    from accelerate.utils import set_seed

    digest = examples_digest(examples)
    set_seed(cfg.seed)
    run = _set_up(cfg, examples, accelerator)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "tokens": 0, "elapsed_s": 0.0, "data_sha256": digest}
    if checkpoint is not None:
        state.update(resume_state(checkpoint, digest, cfg.batch_size, run.total))
        accelerator.load_state(str(checkpoint))
    if accelerator.is_main_process:
        cfg.out.mkdir(parents=True, exist_ok=True)
        carry_log(cfg, checkpoint, state["step"])
        _write_train_config(cfg, checkpoint, fmt, source, contamination, digest, run, state, accelerator)
    accelerator.wait_for_everyone()
    started = time.perf_counter() - state["elapsed_s"]
    step, first_loss, last_loss = _loop(cfg, run, state, digest, accelerator, started)
    _save_model(cfg, run, accelerator)
    return TrainResult(
        cfg.out,
        step,
        first_loss,
        last_loss,
        time.perf_counter() - started,
        run.rows,
        contamination.get("dropped", []),
        accelerator.is_main_process,
    )


def _set_up(cfg: TrainConfig, examples: list[Example], accelerator: Any) -> _Setup:
    """Model and tokenizer, the tokenised examples, the optimizer and the linear warmup schedule."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

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
    return _Setup(model, tokenizer, optimizer, loader, sampler, scheduler, len(rows), total)


def _write_train_config(
    cfg: TrainConfig, checkpoint: Path | None, fmt: str, source: dict[str, Any], contamination: dict[str, Any],
    digest: str, run: _Setup, state: dict[str, Any], accelerator: Any,
) -> None:
    """DIR/train_config.json: every setting, the data's origin and digest, what was resumed, versions."""
    from phi_eval.chat import template_sha256

    config_doc = {k: _jsonable(v) for k, v in asdict(cfg).items()}
    config_doc.update(
        prompt_format=fmt,
        chat_template_sha256=template_sha256(run.tokenizer) if fmt == "chat" else None,
        data_source=source,
        data_sha256=digest,
        examples=run.rows,
        total_steps=run.total,
        num_processes=accelerator.num_processes,
        resumed_from=str(checkpoint) if checkpoint else None,
        resumed_at_step=state["step"] if checkpoint else None,
        contamination=contamination,
        versions=versions(),
    )
    write_json(cfg.out / "train_config.json", config_doc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _loop(
    cfg: TrainConfig, run: _Setup, state: dict[str, Any], digest: str, accelerator: Any, started: float
) -> tuple[int, float | None, float | None]:
    """Train from `state` to run.total updates, logging and checkpointing on the way; (the last
    step, the first loss logged, the last loss)."""
    model, loader, optimizer, scheduler = run.model, run.loader, run.optimizer, run.scheduler
    losses: list[float] = []
    first_logged: float | None = None
    step, epoch, tokens = state["step"], state["epoch"], state["tokens"]
    skip = state["batch_in_epoch"]
    if skip >= len(loader):
        epoch, skip = epoch + 1, 0
    log = JsonlAppender(cfg.out / LOG_FILE) if accelerator.is_main_process else None
    progress, bar = _progress(accelerator.is_main_process and cfg.progress, run.total, step)
    model.train()
    try:
        while step < run.total:
            run.sampler.set_epoch(epoch)
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
                if log is not None and (step % cfg.log_every == 0 or step == run.total):
                    log.write([{
                        "step": step,
                        "loss": round(loss, 6),
                        "lr": scheduler.get_last_lr()[0],
                        "epoch": round(epoch + position / len(loader), 4),
                        "tokens": tokens,
                        "elapsed_s": round(time.perf_counter() - started, 3),
                    }])
                if progress is not None:
                    progress.update(bar, completed=step, loss=f"{loss:.4f}")
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < run.total:
                    save_checkpoint(
                        cfg, accelerator, step, epoch, position, tokens, time.perf_counter() - started, digest
                    )
                if step >= run.total:
                    break
            epoch, skip = epoch + 1, 0
    finally:
        if progress is not None:
            progress.stop()
        if log is not None:
            log.close()
    return step, first_logged, (losses[-1] if losses else None)


def _save_model(cfg: TrainConfig, run: _Setup, accelerator: Any) -> None:
    """A from_pretrained folder at cfg.out, with generation set to stop and pad as trained."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(run.model)  # every process joins (sharded backends gather here)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(run.model)
        unwrapped.generation_config.pad_token_id = run.tokenizer.pad_token_id
        unwrapped.generation_config.eos_token_id = run.tokenizer.eos_token_id
        if unwrapped.config.pad_token_id is None:
            unwrapped.config.pad_token_id = run.tokenizer.pad_token_id
        unwrapped.save_pretrained(cfg.out, state_dict=state_dict, save_function=accelerator.save)
        run.tokenizer.save_pretrained(cfg.out)
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
