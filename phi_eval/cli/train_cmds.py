"""`phi-eval train`: flags -> TrainConfig -> phi_eval.train.train (all logic lives there)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from phi_eval.cli.app import app, friendly

if TYPE_CHECKING:
    from phi_eval.train_config import TrainConfig


@app.command("train")
@friendly
def train_cmd(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model to fine-tune: hub name or local folder.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the fine-tuned model, log and checkpoints.")
    ],
    task: Annotated[
        str, typer.Option(help="Benchmark whose split is the training data (exercise style).")
    ] = "mbpp",
    split: Annotated[
        str, typer.Option(help="Split of --task to train on (MBPP train: task ids 601-974).")
    ] = "train",
    data: Annotated[
        Path | None,
        typer.Option(help="Local data file for --task (e.g. mbpp.jsonl); also the MBPP eval set."),
    ] = None,
    train_file: Annotated[
        Path | None,
        typer.Option(help='JSONL of {"prompt", "completion"[, "task_id"]} lines instead of --task.'),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps to run (overrides --epochs).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the data when --max-steps is not given.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear warmup, then linear decay).")] = 2e-5,
    batch_size: Annotated[int, typer.Option(help="Examples per process per micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for the shuffle and initial RNG state.")] = 0,
    mixed_precision: Annotated[str, typer.Option(help="no | fp16 | bf16 (Accelerate's autocast).")] = "no",
    resume_from: Annotated[
        Path | None,
        typer.Option(help="A checkpoints/step-N folder, or a training --out folder (its newest)."),
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option(help="Save DIR/checkpoints/step-N every K steps (0: never).")
    ] = 0,
    prompt_format: Annotated[
        str,
        typer.Option(
            help="Prompt format the model is evaluated with (auto: from the model name; chat: its chat template)."
        ),
    ] = "auto",
    system_prompt: Annotated[
        str | None, typer.Option(help="System message for the chat formats; `run` uses it for the checkpoint.")
    ] = None,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps.")] = 0,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.0,
    max_length: Annotated[
        int, typer.Option(help="Max tokens per example (prompt truncated from the left first).")
    ] = 1024,
    log_every: Annotated[int, typer.Option(help="Write a train_log.jsonl line every N steps.")] = 1,
    eval_task: Annotated[
        list[str] | None,
        typer.Option(
            help="Benchmark(s) the model will be evaluated on, for the overlap guard (repeatable). "
            "Default: humaneval and mbpp's test split."
        ),
    ] = None,
    allow_overlap: Annotated[
        bool, typer.Option("--allow-overlap", help="Train even on data that overlaps the evaluation set.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty --out folder.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
) -> None:
    """Fine-tune a Phi model exercise-style (loss on completions only) with Accelerate."""
    from phi_eval.train import train
    from phi_eval.train_config import TrainConfig

    cfg = TrainConfig(
        model=model,
        out=out,
        task=task,
        split=split,
        data=data,
        train_file=train_file,
        max_steps=max_steps,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        seed=seed,
        mixed_precision=mixed_precision,
        resume_from=resume_from,
        checkpoint_every=checkpoint_every,
        prompt_format=prompt_format,
        system_prompt=system_prompt,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        max_length=max_length,
        log_every=log_every,
        eval_tasks=tuple(eval_task or ()),
        allow_overlap=allow_overlap,
        force=force,
        progress=not no_progress,
    )
    result = train(cfg, echo=lambda msg: typer.echo(f"phi-eval: {msg}", err=True))
    if not result.main_process:
        return
    losses = (
        f" (loss {result.first_loss:.4f} -> {result.last_loss:.4f})" if result.first_loss is not None else ""
    )
    typer.echo(
        f"trained {result.steps} steps on {result.examples} examples{losses} in {result.elapsed_s:.1f}s; "
        f"model saved to {result.out}; evaluate it with: {eval_hint(cfg, result.out)}"
    )


def eval_hint(cfg: TrainConfig, out: Path) -> str:
    """A `phi-eval run` command that works as written: --task is required, and MBPP from a local
    file needs the same --data (the default source is the Hugging Face hub)."""
    import shlex

    task = (cfg.eval_tasks or (None,))[0] or cfg.task or "humaneval"
    args = ["phi-eval", "run", "--task", task, "--model", str(out)]
    if task.startswith("mbpp") and cfg.data is not None:
        args += ["--data", str(cfg.data)]
    return shlex.join(args)
