"""The training output folder and its checkpoints: what may be overwritten, and where a resume picks up.

Checkpoints are `accelerator.save_state` folders plus a small trainer_state.json (step, epoch, batch
position, the data's digest), so `--resume-from` continues the step count, optimizer, scheduler and
RNG exactly, and refuses a checkpoint trained on other data.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.files import iter_jsonl, read_json, write_json, write_jsonl

if TYPE_CHECKING:
    from phi_eval.train_config import TrainConfig

STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"
RESUMED = ("step", "epoch", "batch_in_epoch", "tokens", "elapsed_s")  # what a checkpoint's state gives back


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
            for name in ("checkpoints", LOG_FILE):
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
    log = cfg.out / LOG_FILE
    source = log if log.is_file() else (checkpoint.parent.parent / LOG_FILE if checkpoint else None)
    kept: list[dict] = []
    if checkpoint is not None and source is not None:
        kept = [rec for rec in iter_jsonl(source) if rec["step"] <= step]
    write_jsonl(log, kept)


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


def resume_state(checkpoint: Path, digest: str, batch_size: int, total: int) -> dict[str, Any]:
    """Where `checkpoint` left off (RESUMED), refused when it was trained on other data or batch
    size, or is already at the last step."""
    saved = read_json(checkpoint / STATE_FILE)
    if saved.get("data_sha256") != digest or saved.get("batch_size") != batch_size:
        raise PhiEvalError(
            f"checkpoint {checkpoint} was trained on other data or batch size; resume with the same "
            "training data, --prompt-format and --batch-size"
        )
    if saved["step"] >= total:
        raise PhiEvalError(f"checkpoint {checkpoint} is already at step {saved['step']}; raise --max-steps to go on")
    return {k: saved[k] for k in RESUMED}


def save_checkpoint(
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
        write_json(path / STATE_FILE, state)
    accelerator.wait_for_everyone()
