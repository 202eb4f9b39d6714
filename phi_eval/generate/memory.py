"""The memory budget: will the weights fit, and will one batch.

On CPU a real out-of-memory kills the process instead of raising, so each batch's working memory
(estimated KV cache and prefill activations) is checked against a budget before it starts and
raises OutOfMemory like a caught CUDA OOM would; the automatic batch size then halves."""

from __future__ import annotations

from typing import Any

from phi_eval.errors import PhiEvalError

BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}
CPU_MEMORY_SHARE = 0.5  # the share of free RAM one batch may use on CPU by default


class OutOfMemory(Exception):
    """A batch did not fit (real OOM or over the memory budget); the batch is retried smaller."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory(device: Any) -> int | None:
    """Bytes free on `device` now (CUDA: the driver's view; CPU: MemAvailable), None if unknown."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def weights_bytes(num_parameters: int | None, dtype_name: str) -> int | None:
    return None if num_parameters is None else num_parameters * BYTES_PER_PARAM[dtype_name]


def memory_error(model: str, num_parameters: int | None, dtype_name: str, device: Any, free: int | None) -> PhiEvalError:
    """The one line for weights that do not fit `device`."""
    needed = weights_bytes(num_parameters, dtype_name)
    have = f" but {device} has {human_bytes(free)} free" if free is not None else ""
    size = (
        f"{num_parameters / 1e9:.2f}B parameters in {dtype_name} need {human_bytes(needed)}"
        if needed and num_parameters is not None
        else f"{dtype_name} weights do not fit"
    )
    return PhiEvalError(
        f"not enough memory to load {model}: {size}{have}; free memory, use a smaller dtype "
        "(--dtype float16/bfloat16) or a bigger device"
    )


def batch_budget(device: Any, memory_limit_mb: float | None) -> int | None:
    """Bytes one batch may use: as given, else half the free RAM on CPU, unlimited on CUDA (where a
    real OOM is caught)."""
    if memory_limit_mb is not None:
        return int(memory_limit_mb * 2**20)
    if device.type == "cpu":
        free = free_memory(device)
        return int(free * CPU_MEMORY_SHARE) if free else None
    return None


def batch_bytes(config: Any, dtype_name: str, rows: int, length: int) -> int:
    """Rough working memory of a batch: KV cache + the prefill's attention and MLP activations."""
    hidden = getattr(config, "hidden_size", 0)
    layers = getattr(config, "num_hidden_layers", 0)
    heads = getattr(config, "num_attention_heads", 1)
    inter = getattr(config, "intermediate_size", 4 * hidden)
    width = BYTES_PER_PARAM[dtype_name]
    kv = 2 * layers * rows * length * hidden * width
    prefill = rows * (heads * length * length * 4 + length * (inter + 4 * hidden) * width)
    return kv + prefill
