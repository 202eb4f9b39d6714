"""The transformers backend: batched, stop-aware generation, data-parallel under `accelerate launch`.

Why it is shaped this way:
- Prompts are sorted by token length and left-padded, so a batch wastes little on padding. Batch
  sizes are planned up front (`batch_sizes`): as many rows as fit, spread evenly, so no small last
  batch decodes alone; on CPU a token cap gives long prompts fewer rows.
- The prompt is prefilled in small chunks, once per distinct prompt, into a KV cache that decoding
  then grows in place (generate/kvcache.py): no per-step copy of the cache, n samples share one
  prefill. Activations with a fused equivalent (gelu_new) use it. Both keep greedy tokens the same.
- A stopping criterion decodes only the tail of each row's *new* tokens, so a row ends as soon
  as a stop sequence appears (the batch ends when every row has) without rescanning the prompt.
- Sampling draws each row's token with that row's own RNG, seeded from (seed, task_id,
  completion_id): a sample does not depend on the batch it landed in, its process, or a resume.
- The automatic batch size halves on out-of-memory and retries the batch. On CPU a real OOM
  kills the process instead of raising, so a per-batch memory budget (estimated KV cache and
  prefill activations) raises the same error before a batch starts.
- Under `accelerate launch` each process takes its share of every round of batches; the main
  process gathers the outputs (each carries its (task_id, completion_id)) and reports them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.generate import GenOutput, GenRequest, SamplingParams

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}
AUTO_BATCH_START = {"cpu": 64, "cuda": 64}  # rows per decoding batch before any out-of-memory back-off
# CPU decoding is bound by reading the KV cache, so a CPU batch also holds at most this many tokens
# per row on average (rows x (prompt + new tokens)); long prompts get fewer rows. None: no such cap.
TOKENS_PER_ROW = {"cpu": 256, "cuda": None}
PREFILL_CHUNK_TOKENS = {"cpu": 2048, "cuda": 16384}  # padded prompt tokens per prefill forward
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}  # same function, one fused kernel instead of seven
CPU_MEMORY_SHARE = 0.5  # the share of free RAM one batch may use on CPU by default


class _OutOfMemory(Exception):
    """A batch did not fit (real OOM or over the memory budget); the batch is retried smaller."""


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory(device: Any) -> int | None:
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


def _sample_seed(seed: int, task_id: str, completion_id: int) -> int:
    """A stable 63-bit seed per sample (Python's hash() is salted per process, so not that)."""
    digest = hashlib.sha256(f"{seed}\x00{task_id}\x00{completion_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _looks_like_path(model: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else is meant as a folder."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """One quick TCP probe, so an offline machine gets one clear line instead of ~25 s of retries."""
    import os
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_error(model: str, revision: str | None, exc: BaseException) -> PhiEvalError:
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
    return PhiEvalError(f"cannot load model {model}: {_first_line(exc)}")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


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


def _weights_error(model: str, exc: BaseException) -> PhiEvalError:
    return PhiEvalError(
        f"the weights of {model} cannot be read ({_first_line(exc)[:160]}); the file is truncated or "
        "corrupt: download or save the model again"
    )


def batch_sizes(lengths: Sequence[int], max_rows: int, max_tokens: int | None, new_tokens: int) -> list[int]:
    """Consecutive batch sizes over prompt lengths sorted longest first.

    A batch has at most `max_rows` rows and, with `max_tokens`, rows x (its longest prompt + new
    tokens) <= max_tokens (but at least one row). The count is the fewest batches that fit; rows are
    then spread evenly over them, so no small last batch decodes for max_new_tokens steps alone.
    """

    def cap(i: int) -> int:
        if max_tokens is None:
            return max_rows
        return max(1, min(max_rows, max_tokens // (lengths[i] + new_tokens)))

    fewest, i = 0, 0
    while i < len(lengths):
        i += cap(i)
        fewest += 1
    sizes: list[int] = []
    i = 0
    while i < len(lengths):
        left = max(1, fewest - len(sizes))
        sizes.append(min(cap(i), -(-(len(lengths) - i) // left)))
        i += sizes[-1]
    return sizes


class _StopOnText:
    """Stops a row once its newly generated text contains a stop sequence (or ends in EOS).

    Only the last few tokens of each unfinished row are decoded per step (a stop of L characters
    spans at most L tokens), in one batch_decode call, so the per-step cost stays small.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int, end_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.window = max((len(s) for s in self.stop), default=0) + 2
        self.prompt_len = prompt_len
        self.end_ids = end_ids
        self.done: list[bool] | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        batch = input_ids.shape[0]
        if self.done is None:
            self.done = [False] * batch
        new = input_ids[:, self.prompt_len :]
        tails = new[:, -self.window :].tolist()
        rows = [i for i in range(batch) if not self.done[i]]
        for i in rows:
            if tails[i][-1] in self.end_ids:
                self.done[i] = True
        rows = [i for i in rows if not self.done[i]]
        if self.stop and rows:
            texts = self.tokenizer.batch_decode(
                [tails[i] for i in rows], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            for i, text in zip(rows, texts, strict=True):
                if any(s in text for s in self.stop):
                    self.done[i] = True
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


class _RowSampler:
    """Temperature + top-p sampling with one RNG per row, as a logits processor.

    It returns scores that are -inf except at the drawn token, so generate's greedy step picks it;
    each row's draw depends only on its own seed and distribution, never on its batch mates.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        if self.top_p < 1.0:
            before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
            sorted_probs = sorted_probs.masked_fill(before > self.top_p, 0.0)
        cdf = sorted_probs.double().cumsum(dim=-1)
        target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
        pick = torch.searchsorted(cdf, target).clamp(max=cdf.shape[1] - 1)
        token = order.gather(1, pick)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token, 0.0)


class HFGenerator:
    """Any causal LM transformers loads natively (Phi since 4.37), by hub id or local folder."""

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        revision: str | None = None,
        device: str | None = None,
        memory_limit_mb: float | None = None,
        show_progress: bool = True,
    ) -> None:
        """`memory_limit_mb`: the working memory one batch may use (default: half the free RAM on
        CPU, unlimited on CUDA where a real OOM is caught); a batch over it backs off like an OOM."""
        self.model_name = str(model)
        self.revision = revision
        self.show_progress = show_progress
        source = self._check_source()  # a missing folder is one line at once, before torch loads
        from phi_eval.gcpause import gc_paused

        with gc_paused():  # torch, transformers, the model: ~360k long-lived objects (gcpause.py)
            self._setup(source, dtype, device, memory_limit_mb)

    def _setup(self, source: str, dtype: str, device: str | None, memory_limit_mb: float | None) -> None:
        """Import torch and transformers, pick the device and dtype, load the tokenizer and model."""
        import torch
        from accelerate import PartialState

        # cpu=True lets accelerate run several CPU processes (gloo) when launched with torchrun or
        # `accelerate launch --multi_gpu`; on a GPU machine each process takes its own GPU.
        on_cpu = (device or "").startswith("cpu") or not torch.cuda.is_available()
        self.state = PartialState(cpu=on_cpu)
        if device is not None and not on_cpu and self.state.num_processes > 1:
            raise PhiEvalError(
                "--device cannot name a GPU under accelerate launch; each process uses its own"
            )
        try:
            self.device = torch.device(device) if device else self.state.device
        except RuntimeError as exc:
            raise PhiEvalError(
                f"unknown device {device!r} ({_first_line(exc)}); use cpu, cuda or cuda:N"
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PhiEvalError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
        self.dtype_name = self._resolve_dtype(dtype)
        if self.device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(max(1, cores // self.state.num_processes))

        config = self._load_config(source)
        self.num_parameters = self._count_parameters(config)
        self._check_memory()
        self.activation = self._fuse_activation(config)
        self.tokenizer, self.model = self._load(source, config)
        self.commit = getattr(self.model.config, "_commit_hash", None)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        tok = self.tokenizer
        self.eos_ids = self._eos_ids()
        self.pad_id = (
            tok.pad_token_id if tok.pad_token_id is not None else (min(self.eos_ids) if self.eos_ids else 0)
        )
        if memory_limit_mb is not None:
            self.memory_limit = int(memory_limit_mb * 2**20)
        elif self.device.type == "cpu":
            free = _free_memory(self.device)
            self.memory_limit = int(free * CPU_MEMORY_SHARE) if free else None
        else:
            self.memory_limit = None
        self._auto_batch: int | None = None
        self.last_batch_size: int | None = None  # the batch size the last batch ran with
        from phi_eval.generate.kvcache import PrefillCache, prefill_unsupported_reason

        self.prefill_off_reason = prefill_unsupported_reason(self.model)
        self._prefill = (
            PrefillCache(self.model, self.pad_id, PREFILL_CHUNK_TOKENS.get(self.device.type, 2048))
            if self.prefill_off_reason is None
            else None
        )
        if self._prefill is None:
            self._say_fast_path_off()

    # ------------------------------------------------------------ loading

    def _say_fast_path_off(self) -> None:
        """One console line when the in-place KV cache is off (it is also in config.json), so a
        slower run is never a silent one."""
        if self.state.is_main_process:
            from rich.console import Console

            Console(stderr=True).print(
                f"[yellow]note:[/] the in-place KV cache is off for this model ({self.prefill_off_reason}); "
                "generation uses transformers' default cache and is slower"
            )

    def _resolve_dtype(self, dtype: str) -> str:
        if dtype == "auto":
            # float32 on CPU (half precision is slow or unsupported there); bf16 on GPUs that have it.
            if self.device.type != "cuda":
                return "float32"
            import torch

            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if dtype not in DTYPES:
            raise PhiEvalError(f"unknown dtype {dtype!r}; choose auto, float32, float16 or bfloat16")
        return DTYPES[dtype]

    def _check_source(self) -> str:
        """The folder path (checked) or the hub id, as from_pretrained should see it."""
        self._local_only = False
        path = Path(self.model_name).expanduser()
        if path.is_dir():
            check_model_folder(path)
            return str(path)
        if _looks_like_path(self.model_name):
            raise PhiEvalError(
                f"model folder {self.model_name} not found; pass an existing folder or a hub id like microsoft/phi-1"
            )
        self._local_only = not _hub_reachable()  # offline: the local cache or nothing, without retries
        return self.model_name

    def _load_config(self, source: str) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(source, revision=self.revision, local_files_only=self._local_only)
        except (OSError, ValueError) as exc:
            raise _load_error(self.model_name, self.revision, exc) from None

    @staticmethod
    def _count_parameters(config: Any) -> int | None:
        """Parameters of the architecture, counted on the meta device (no memory, no weights)."""
        import torch
        from transformers import AutoModelForCausalLM

        try:
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
        except Exception:  # noqa: BLE001 - counting is best effort; loading reports real problems
            return None
        return sum(p.numel() for p in model.parameters())

    def _needed_bytes(self) -> int | None:
        return None if self.num_parameters is None else self.num_parameters * BYTES_PER_PARAM[self.dtype_name]

    def _memory_error(self, free: int | None) -> PhiEvalError:
        needed = self._needed_bytes()
        have = f" but {self.device} has {_human_bytes(free)} free" if free is not None else ""
        size = (
            f"{self.num_parameters / 1e9:.2f}B parameters in {self.dtype_name} need {_human_bytes(needed)}"
            if needed
            else f"{self.dtype_name} weights do not fit"
        )
        return PhiEvalError(
            f"not enough memory to load {self.model_name}: {size}{have}; free memory, use a smaller dtype "
            "(--dtype float16/bfloat16) or a bigger device"
        )

    def _check_memory(self) -> None:
        needed, free = self._needed_bytes(), _free_memory(self.device)
        if needed is not None and free is not None and needed > free:
            raise self._memory_error(free)

    @staticmethod
    def _fuse_activation(config: Any) -> str | None:
        """Swap an activation for its fused equivalent (gelu_new -> torch's tanh GELU); returns the name.

        transformers documents the two as the same function; the fused one is a single kernel, which
        makes the CPU prefill about a quarter faster. Greedy tokens were identical in the benchmark.
        """
        act = getattr(config, "hidden_act", None)
        if isinstance(act, str) and act in FUSED_ACTIVATIONS:
            config.hidden_act = FUSED_ACTIVATIONS[act]
        return getattr(config, "hidden_act", None)

    def _load(self, source: str, config: Any) -> tuple[Any, Any]:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        kwargs: dict[str, Any] = {
            "config": config,
            "revision": self.revision,
            dtype_key: getattr(torch, self.dtype_name),
            "local_files_only": self._local_only,
        }
        if self.device.type == "cuda":
            kwargs["device_map"] = {"": self.device}
        if Path(source).is_dir():
            check_tokenizer_files(Path(source))
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, revision=self.revision, local_files_only=self._local_only
            )
        except (OSError, ValueError) as exc:
            raise _load_error(self.model_name, self.revision, exc) from None
        if not tokenizer("def f():\n    return 1\n").get("input_ids"):
            raise PhiEvalError(f"the tokenizer of {self.model_name} turns code into no tokens; is it complete?")
        try:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            local = Path(source).is_dir()
            raise (_weights_error(self.model_name, exc) if local else _load_error(self.model_name, self.revision, exc)) from None
        except RuntimeError as exc:
            if _is_oom(exc):
                raise self._memory_error(_free_memory(self.device)) from None
            raise _weights_error(self.model_name, exc) from None
        except Exception as exc:
            if "safetensor" in type(exc).__name__.lower() or "deserializ" in str(exc).lower():
                raise _weights_error(self.model_name, exc) from None
            raise
        if self.device.type != "cuda":
            model.to(self.device)
        model.eval()
        return tokenizer, model

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (
            self.model.generation_config.eos_token_id,
            self.model.config.eos_token_id,
            self.tokenizer.eos_token_id,
        ):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(i) for i in source)
        return ids

    def token_ids(self, tokens: Sequence[str]) -> set[int]:
        """Ids of special tokens named by their text (the chat template's end-of-turn); unknown: error."""
        ids: set[int] = set()
        for token in tokens:
            found = self.tokenizer.convert_tokens_to_ids(token)
            if not isinstance(found, int) or self.tokenizer.convert_ids_to_tokens(found) != token:
                raise PhiEvalError(f"stop token {token!r} is not in the tokenizer of {self.model_name}")
            ids.add(found)
        return ids

    def info(self) -> dict[str, Any]:
        """What config.json records about the model and where it ran."""
        import torch
        import transformers

        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": self.revision,
            "commit": self.commit,
            "dtype": self.dtype_name,
            "device": str(self.device),
            "num_processes": self.state.num_processes,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "activation": self.activation,
            "kv_cache": "in-place, chunked prefill"
            if self._prefill is not None
            else f"transformers default ({self.prefill_off_reason})",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    # ------------------------------------------------------------ generation

    def generate(
        self,
        requests: Sequence[GenRequest],
        params: SamplingParams,
        on_outputs: Callable[[list[GenOutput]], None],
    ) -> None:
        """Generate every request once; `on_outputs` gets each finished batch (main process only).

        Under several processes the main process's `requests` are the run's: the others' lists are
        replaced by it, so a rank that read its folder at another moment cannot split a different list."""
        if self.state.num_processes > 1:
            requests = self._main_requests(requests)
        if not requests:
            return
        if params.temperature < 0 or not 0 < params.top_p <= 1:
            raise PhiEvalError("temperature must be >= 0 and top_p in (0, 1]")
        if params.batch_size is not None and params.batch_size < 1:
            raise PhiEvalError("--batch-size must be at least 1")
        items = self._tokenize(requests, params.max_new_tokens, templated=params.templated)
        start = (
            params.batch_size
            or self._auto_batch
            or min(AUTO_BATCH_START.get(self.device.type, 16), len(items))
        )
        nproc, is_main = self.state.num_processes, self.state.is_main_process
        with self._progress(len(items), enabled=self.show_progress and is_main) as advance:
            if nproc == 1:

                def emit(outs: list[GenOutput]) -> None:
                    on_outputs(outs)
                    advance(len(outs))

                self._run_share(items, params, emit)
                return
            from accelerate.utils import gather_object

            seen: set[tuple[str, int]] = set()
            round_size = start * nproc
            for lo in range(0, len(items), round_size):
                local: list[GenOutput] = []
                with self.state.split_between_processes(items[lo : lo + round_size]) as mine:
                    self._run_share(list(mine), params, local.extend)
                gathered = gather_object(local)
                if is_main:
                    fresh = []
                    for out in gathered:
                        key = (out.task_id, out.completion_id)
                        if key not in seen:
                            seen.add(key)
                            fresh.append(out)
                    if fresh:
                        on_outputs(fresh)
                    advance(len(fresh))
            self.state.wait_for_everyone()

    def _main_requests(self, requests: Sequence[GenRequest]) -> list[GenRequest]:
        """The main process's request list, on every process (one broadcast)."""
        from accelerate.utils import broadcast_object_list

        box = [list(requests) if self.state.is_main_process else None]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def _tokenize(
        self, requests: Sequence[GenRequest], max_new_tokens: int, *, templated: bool = False
    ) -> list[tuple[GenRequest, list[int]]]:
        """(request, prompt ids), longest first; samples of one prompt stay next to each other.

        `templated`: prompts rendered by a chat template. One that starts with the BOS token's text
        (a template with {{ bos_token }}) is tokenised without special tokens, so it gets no second
        BOS; one that does not (Phi-3's template leaves BOS to the tokenizer) gets the tokenizer's."""
        prompts = list(dict.fromkeys(r.prompt for r in requests))
        bos = self.tokenizer.bos_token if templated else None
        ids: dict[str, list[int]] = {}
        for plain in (True, False):
            group = [p for p in prompts if (bool(bos) and p.startswith(bos)) != plain]
            if group:
                encoded = self.tokenizer(group, add_special_tokens=plain)["input_ids"]
                ids.update(zip(group, encoded, strict=True))
        order = {p: i for i, p in enumerate(prompts)}
        items = [(r, ids[r.prompt]) for r in requests]
        items.sort(key=lambda it: (-len(it[1]), order[it[0].prompt], it[0].completion_id))
        if self.max_positions:
            for req, toks in items:
                if len(toks) + max_new_tokens > self.max_positions:
                    raise PhiEvalError(
                        f"{req.task_id}: prompt of {len(toks)} tokens + max_new_tokens {max_new_tokens} exceeds "
                        f"the model's context of {self.max_positions}; lower --max-new-tokens"
                    )
        return items

    def _run_share(
        self,
        items: list[tuple[GenRequest, list[int]]],
        params: SamplingParams,
        emit: Callable[[list[GenOutput]], None],
    ) -> None:
        """Generate `items` batch by batch, halving an automatic batch size on out-of-memory."""
        import torch

        i = 0
        plan: list[int] = []
        while i < len(items):
            if not plan:
                plan = self._plan(items[i:], params)
            size = plan[0]
            chunk = items[i : i + size]
            try:
                outs = self._generate_batch(chunk, params)
            except _OutOfMemory as exc:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if params.batch_size is not None:
                    raise PhiEvalError(
                        f"out of memory at batch size {size} ({exc}); lower --batch-size or leave it automatic"
                    ) from None
                if len(chunk) == 1:
                    raise PhiEvalError(
                        f"out of memory even at batch size 1 ({exc}); lower --max-new-tokens, use a smaller "
                        "dtype or a bigger device"
                    ) from None
                self._auto_batch = max(1, len(chunk) // 2)
                plan = []
                continue
            self.last_batch_size = len(chunk)
            emit(outs)
            i += len(chunk)
            plan.pop(0)

    def _plan(self, items: list[tuple[GenRequest, list[int]]], params: SamplingParams) -> list[int]:
        """Batch sizes for `items`: --batch-size as given, else balanced automatic batches."""
        if params.batch_size is not None:
            return [params.batch_size] * -(-len(items) // params.batch_size)
        rows = self._auto_batch or AUTO_BATCH_START.get(self.device.type, 16)
        per_row = TOKENS_PER_ROW.get(self.device.type)
        return batch_sizes(
            [len(ids) for _, ids in items], rows, per_row * rows if per_row else None, params.max_new_tokens
        )

    def _batch_bytes(self, rows: int, length: int) -> int:
        """Rough working memory of a batch: KV cache + the prefill's attention and MLP activations."""
        cfg = self.model.config
        hidden = getattr(cfg, "hidden_size", 0)
        layers = getattr(cfg, "num_hidden_layers", 0)
        heads = getattr(cfg, "num_attention_heads", 1)
        inter = getattr(cfg, "intermediate_size", 4 * hidden)
        width = BYTES_PER_PARAM[self.dtype_name]
        kv = 2 * layers * rows * length * hidden * width
        prefill = rows * (heads * length * length * 4 + length * (inter + 4 * hidden) * width)
        return kv + prefill

    def _generate_batch(
        self, chunk: list[tuple[GenRequest, list[int]]], params: SamplingParams
    ) -> list[GenOutput]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from phi_eval.generate.kvcache import UnsupportedCache

        width = max(len(ids) for _, ids in chunk)
        if self.memory_limit is not None:
            need = self._batch_bytes(len(chunk), width + params.max_new_tokens)
            if need > self.memory_limit:
                raise _OutOfMemory(
                    f"a batch of {len(chunk)} x {width + params.max_new_tokens} tokens needs about "
                    f"{_human_bytes(need)}, over the {_human_bytes(self.memory_limit)} budget"
                )
        end_ids = self.eos_ids | self.token_ids(params.stop_tokens)
        input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, ids) in enumerate(chunk):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # sampling, when asked, is done per row by _RowSampler
            num_beams=1,
            use_cache=True,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(end_ids) or None,
        )
        processors = LogitsProcessorList()
        if params.temperature > 0:
            seeds = [_sample_seed(params.seed, req.task_id, req.completion_id) for req, _ in chunk]
            processors.append(_RowSampler(seeds, params.temperature, params.top_p))
        stopper = _StopOnText(self.tokenizer, params.stop, width, end_ids)
        try:
            with torch.inference_mode():
                extra = {}
                if self._prefill is not None:
                    try:
                        extra[self._prefill.kwarg] = self._prefill.build(
                            [ids for _, ids in chunk], width, width + params.max_new_tokens
                        )
                    except UnsupportedCache as exc:
                        self._prefill = None  # this model's cache is unusual: transformers' own from now on
                        self.prefill_off_reason = str(exc)
                        self._say_fast_path_off()
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=config,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList([stopper]),
                    **extra,
                )
        except (RuntimeError, MemoryError) as exc:
            if isinstance(exc, MemoryError) or _is_oom(exc):
                raise _OutOfMemory(_first_line(exc)) from None
            raise
        new_tokens = out[:, width:].tolist()
        outputs = []
        for (req, _), toks in zip(chunk, new_tokens, strict=True):
            for j, tok in enumerate(toks):
                if tok in end_ids or tok == self.pad_id:
                    toks = toks[:j]
                    break
            raw = self.tokenizer.decode(toks, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            outputs.append(GenOutput(task_id=req.task_id, completion_id=req.completion_id, raw=raw))
        return outputs

    @staticmethod
    def _progress(total: int, *, enabled: bool) -> Any:
        """A context manager yielding advance(n): a rich bar over samples, or a no-op."""
        from contextlib import contextmanager

        @contextmanager
        def bar() -> Any:
            if not enabled:
                yield lambda n: None
                return
            from phi_eval.progress import progress_bar

            with progress_bar() as progress:
                task = progress.add_task("generating", total=total)
                yield lambda n: progress.advance(task, n)

        return bar()
