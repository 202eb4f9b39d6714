"""The transformers backend: batched, stop-aware generation, data-parallel under `accelerate launch`.

This module is the generator and its decoding; each of its other jobs is a module of its own:
- generate/loading.py: the model and tokenizer by hub id or folder, and a line for each way it fails;
- generate/memory.py: will the weights fit, and one batch (on CPU a real OOM kills the process, so
  a batch over the budget raises OutOfMemory first and the automatic batch size halves);
- generate/batching.py: prompts sorted by length, left-padded, batch sizes planned up front;
- generate/sampling.py: per-row seeded sampling and stop sequences;
- generate/parallel.py: each process's share of every round; the main process gathers and reports;
- generate/kvcache.py: the prompt prefilled in small chunks, once per distinct prompt, into a KV
  cache that decoding grows in place (no per-step copy, n samples share one prefill).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.generate import GenOutput, GenRequest, SamplingParams, loading, memory, parallel
from phi_eval.generate.batching import AUTO_BATCH_START, batch_sizes, plan
from phi_eval.generate.loading import DTYPES
from phi_eval.generate.memory import OutOfMemory, human_bytes, is_oom
from phi_eval.generate.sampling import RowSampler, StopOnText, sample_seed

__all__ = ["HFGenerator", "batch_sizes", "DTYPES"]

PREFILL_CHUNK_TOKENS = {"cpu": 2048, "cuda": 16384}  # padded prompt tokens per prefill forward


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
        spare_cores: int = 0,
    ) -> None:
        """`memory_limit_mb`: the working memory one batch may use (default: half the free RAM on
        CPU, unlimited on CUDA where a real OOM is caught); a batch over it backs off like an OOM.
        `spare_cores`: cores left to something else running beside the model on this machine (the
        sandbox, when `run` executes while it generates): torch's threads on CPU get the rest."""
        self.spare_cores = spare_cores
        self.model_name = str(model)
        self.revision = revision
        self.show_progress = show_progress
        # a missing folder is one line at once, before torch loads
        source, self._local_only = loading.resolve_source(self.model_name)
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
                f"unknown device {device!r} ({loading.first_line(exc)}); use cpu, cuda or cuda:N"
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PhiEvalError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
        self.dtype_name = self._resolve_dtype(dtype)
        if self.device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            # Beside a busy sandbox, more threads than free cores make torch's threads wait on each
            # other and on the sandbox (measured: `run` 2x slower with 2 threads than 1 on 2 cores).
            torch.set_num_threads(max(1, (cores - self.spare_cores) // self.state.num_processes))

        config = loading.load_config(source, self.model_name, self.revision, self._local_only)
        self.num_parameters = loading.count_parameters(config)
        free = memory.free_memory(self.device)
        needed = memory.weights_bytes(self.num_parameters, self.dtype_name)
        if needed is not None and free is not None and needed > free:
            raise self._memory_error(free)
        self.activation = loading.fuse_activation(config)
        self.tokenizer, self.model = self._load(source, config)
        self.commit = getattr(self.model.config, "_commit_hash", None)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        tok = self.tokenizer
        self.eos_ids = self._eos_ids()
        self.pad_id = (
            tok.pad_token_id if tok.pad_token_id is not None else (min(self.eos_ids) if self.eos_ids else 0)
        )
        self.memory_limit = memory.batch_budget(self.device, memory_limit_mb)
        self._auto_batch: int | None = None
        self.last_batch_size: int | None = None  # the batch size the last batch ran with
        from phi_eval.generate.kvcache import PrefillCache, prefill_unsupported_reason

        self.prefill_off_reason = prefill_unsupported_reason(self.model)
        self.prefill = (  # None: transformers' default cache (set so, a run compares the two)
            PrefillCache(self.model, self.pad_id, PREFILL_CHUNK_TOKENS.get(self.device.type, 2048))
            if self.prefill_off_reason is None
            else None
        )
        if self.prefill is None:
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

    def _memory_error(self, free: int | None) -> PhiEvalError:
        return memory.memory_error(self.model_name, self.num_parameters, self.dtype_name, self.device, free)

    def _load(self, source: str, config: Any) -> tuple[Any, Any]:
        """The tokenizer, then the weights (on the device; CUDA loads straight onto it)."""
        tokenizer = loading.load_tokenizer(source, self.model_name, self.revision, self._local_only)
        model = loading.load_model(
            source, self.model_name, self.dtype_name, config=config, revision=self.revision,
            local_only=self._local_only, device_map={"": self.device} if self.device.type == "cuda" else None,
            on_oom=lambda: self._memory_error(memory.free_memory(self.device)),
        )
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
            if self.prefill is not None
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
            requests = parallel.main_requests(self.state, requests)
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
            parallel.run_rounds(self.state, items, start, lambda mine, emit: self._run_share(mine, params, emit),
                                on_outputs, advance)

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
            except OutOfMemory as exc:
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
        return plan([len(ids) for _, ids in items], params.batch_size, self._auto_batch, self.device.type,
                    params.max_new_tokens)

    def batch_bytes(self, rows: int, length: int) -> int:
        """Rough working memory of a batch of `rows` x `length` tokens (what the budget is held to)."""
        return memory.batch_bytes(self.model.config, self.dtype_name, rows, length)

    def _generate_batch(
        self, chunk: list[tuple[GenRequest, list[int]]], params: SamplingParams
    ) -> list[GenOutput]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from phi_eval.generate.kvcache import UnsupportedCache

        width = max(len(ids) for _, ids in chunk)
        if self.memory_limit is not None:
            need = self.batch_bytes(len(chunk), width + params.max_new_tokens)
            if need > self.memory_limit:
                raise OutOfMemory(
                    f"a batch of {len(chunk)} x {width + params.max_new_tokens} tokens needs about "
                    f"{human_bytes(need)}, over the {human_bytes(self.memory_limit)} budget"
                )
        end_ids = self.eos_ids | self.token_ids(params.stop_tokens)
        input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, ids) in enumerate(chunk):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # sampling, when asked, is done per row by RowSampler
            num_beams=1,
            use_cache=True,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(end_ids) or None,
        )
        processors = LogitsProcessorList()
        if params.temperature > 0:
            seeds = [sample_seed(params.seed, req.task_id, req.completion_id) for req, _ in chunk]
            processors.append(RowSampler(seeds, params.temperature, params.top_p))
        stopper = StopOnText(self.tokenizer, params.stop, width, end_ids)
        try:
            with torch.inference_mode():
                extra = {}
                if self.prefill is not None:
                    try:
                        extra[self.prefill.kwarg] = self.prefill.build(
                            [ids for _, ids in chunk], width, width + params.max_new_tokens
                        )
                    except UnsupportedCache as exc:
                        self.prefill = None  # this model's cache is unusual: transformers' own from now on
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
            if isinstance(exc, MemoryError) or is_oom(exc):
                raise OutOfMemory(loading.first_line(exc)) from None
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
