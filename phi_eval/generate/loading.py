"""Loading a causal LM by hub id or local folder, with one actionable line for each way it fails.

Shared by generation (generate/hf.py) and fine-tuning (train.py), so both see a model the same way:
a folder's config.json is checked before torch loads, an offline machine is told so at once (one
TCP probe instead of ~25 s of hub retries), and a truncated weights file is named as such."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}  # same function, one fused kernel instead of seven
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type's name when it has no text)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def looks_like_path(model: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else is meant as a folder."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One quick TCP probe, so an offline machine gets one clear line instead of ~25 s of retries."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def load_error(model: str, revision: str | None, exc: BaseException) -> PhiEvalError:
    """One actionable line for a failed hub/folder load."""
    names = set()
    e: BaseException | None = exc
    while e is not None:
        names.add(type(e).__name__)
        e = e.__cause__ or e.__context__
    text = str(exc)
    if "RevisionNotFoundError" in names or "Invalid rev id" in text or "not a valid git identifier" in text:
        return PhiEvalError(f"revision {revision!r} of {model} not found; check --revision")
    if "RepositoryNotFoundError" in names or "not a valid model identifier" in text:
        return PhiEvalError(
            f"model {model!r} not found on the Hugging Face hub (or it is private/gated); "
            "check the id or pass a local model folder"
        )
    if "LocalEntryNotFoundError" in names or "couldn't connect" in text.lower() or "offline" in text.lower():
        return PhiEvalError(
            f"cannot reach the Hugging Face hub for {model} and it is not in the local cache; pass a local "
            "model folder, or set HF_HUB_OFFLINE=1 with a cache that holds it (HF_HOME)"
        )
    return PhiEvalError(f"cannot load model {model}: {first_line(exc)}")


def weights_error(model: str, exc: BaseException) -> PhiEvalError:
    return PhiEvalError(
        f"the weights of {model} cannot be read ({first_line(exc)[:160]}); the file is truncated or "
        "corrupt: download or save the model again"
    )


def check_model_folder(path: Path) -> None:
    """A local model folder's config.json, checked before torch loads: one line for each way it is
    broken (transformers would report some of these as a hub problem)."""
    import json

    config = path / "config.json"
    if not config.is_file():
        raise PhiEvalError(f"{path} has no config.json; pass a folder written by save_pretrained")
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PhiEvalError(f"cannot read {config}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise PhiEvalError(
            f"{config} is not valid JSON ({getattr(exc, 'msg', exc)}); restore it from the model's source"
        ) from None
    if not isinstance(parsed, dict):
        raise PhiEvalError(f"{config} is not a model configuration (a JSON object); restore it")


def check_tokenizer_files(path: Path) -> None:
    """A local folder without a tokenizer: transformers may build an empty one and fail much later."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise PhiEvalError(
            f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save it beside the model "
            "with tokenizer.save_pretrained(folder)"
        )


def resolve_source(model: str) -> tuple[str, bool]:
    """(what from_pretrained should see, local files only): a checked folder, or a hub id (local
    cache only when the hub cannot be reached). A missing folder is one line, before torch loads."""
    path = Path(model).expanduser()
    if path.is_dir():
        check_model_folder(path)
        return str(path), False
    if looks_like_path(model):
        raise PhiEvalError(f"model folder {model} not found; pass an existing folder or a hub id like microsoft/phi-1")
    return model, not hub_reachable()


def load_config(source: str, model: str, revision: str | None, local_only: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise load_error(model, revision, exc) from None


def count_parameters(config: Any) -> int | None:
    """Parameters of the architecture, counted on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception:  # noqa: BLE001 - counting is best effort; loading reports real problems
        return None
    return sum(p.numel() for p in model.parameters())


def fuse_activation(config: Any) -> str | None:
    """Swap an activation for its fused equivalent (gelu_new -> torch's tanh GELU); returns the name.

    transformers documents the two as the same function; the fused one is a single kernel, which
    makes the CPU prefill about a quarter faster. Greedy tokens were identical in the benchmark.
    """
    act = getattr(config, "hidden_act", None)
    if isinstance(act, str) and act in FUSED_ACTIVATIONS:
        config.hidden_act = FUSED_ACTIVATIONS[act]
    return getattr(config, "hidden_act", None)


def load_tokenizer(source: str, model: str, revision: str | None = None, local_only: bool = False) -> Any:
    """The tokenizer, checked to turn code into tokens (an incomplete one may not)."""
    from transformers import AutoTokenizer

    if Path(source).is_dir():
        check_tokenizer_files(Path(source))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise load_error(model, revision, exc) from None
    if not tokenizer("def f():\n    return 1\n").get("input_ids"):
        raise PhiEvalError(f"the tokenizer of {model} turns code into no tokens; is it complete?")
    return tokenizer


def dtype_kwargs(dtype_name: str) -> dict[str, Any]:
    """from_pretrained's dtype argument: `dtype` since transformers 4.56, `torch_dtype` before."""
    import torch
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {("dtype" if (major, minor) >= (4, 56) else "torch_dtype"): getattr(torch, dtype_name)}


def load_model(
    source: str,
    model: str,
    dtype_name: str,
    *,
    config: Any = None,
    revision: str | None = None,
    local_only: bool = False,
    device_map: Any = None,
    on_oom: Any = None,
) -> Any:
    """The model's weights in `dtype_name`; `on_oom()` makes the error for a load that ran out of
    memory (default: the weights error)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_only, **dtype_kwargs(dtype_name)}
    if config is not None:
        kwargs["config"] = config
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        local = Path(source).is_dir()
        raise (weights_error(model, exc) if local else load_error(model, revision, exc)) from None
    except RuntimeError as exc:
        from phi_eval.generate.memory import is_oom

        if on_oom is not None and is_oom(exc):
            raise on_oom() from None
        raise weights_error(model, exc) from None
    except Exception as exc:
        if "safetensor" in type(exc).__name__.lower() or "deserializ" in str(exc).lower():
            raise weights_error(model, exc) from None
        raise
