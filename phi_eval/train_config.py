"""The settings of one training run (`phi-eval train`), on their own so that the training steps'
modules (train_data, checkpoints) and the loop (train) all read them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
