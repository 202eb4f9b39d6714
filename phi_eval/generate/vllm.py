"""The vLLM backend (CUDA only), imported only for `--backend vllm`.

One vLLM request per sample, each with its own seed derived from (seed, task_id, completion_id),
so a sample does not depend on what else was asked for in the same run (resume-safe); vLLM's
prefix cache shares the prompt between the samples of one problem. Requests go in chunks so
`on_outputs` sees finished work as it comes, as with the transformers backend. Stop strings are
kept in the raw text (include_stop_str_in_output), the same raw shape the HF backend writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from phi_eval.errors import PhiEvalError
from phi_eval.generate import GenOutput, GenRequest, SamplingParams
from phi_eval.generate.loading import DTYPES, first_line
from phi_eval.generate.sampling import sample_seed

CHUNK = 512  # requests per llm.generate call: big enough to keep the GPU busy, small enough to report often


class VLLMGenerator:
    """A vLLM engine over one model; data parallel is vLLM's own business (tensor_parallel_size)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        show_progress: bool = True,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise PhiEvalError(
                "vLLM is not installed; pip install 'phi-eval[vllm]' (needs a CUDA GPU)"
            ) from None
        if dtype != "auto" and dtype not in DTYPES:
            raise PhiEvalError(f"unknown dtype {dtype!r}; choose auto, float32, float16 or bfloat16")
        self.model_name = model
        self.revision = revision
        self.dtype_name = dtype if dtype == "auto" else DTYPES[dtype]
        self.show_progress = show_progress
        self.vllm_version = getattr(vllm, "__version__", "unknown")
        try:
            self.llm = vllm.LLM(
                model=model,
                revision=revision,
                dtype=self.dtype_name,
                tensor_parallel_size=tensor_parallel_size,
                enable_prefix_caching=True,
            )
        except Exception as exc:  # noqa: BLE001 - engine start-up failures become one actionable line
            raise PhiEvalError(f"vLLM could not load {model}: {first_line(exc)}") from None

    @property
    def tokenizer(self) -> Any:
        """The engine's tokenizer (its chat template renders the `chat` format)."""
        return self.llm.get_tokenizer()

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": self.revision,
            "dtype": self.dtype_name,
            "device": "cuda",
            "num_processes": 1,
            "vllm": self.vllm_version,
        }

    def _params(self, params: SamplingParams, req: GenRequest) -> Any:
        from vllm import SamplingParams as VParams

        greedy = params.temperature == 0
        return VParams(
            n=1,
            temperature=params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=[self.tokenizer.convert_tokens_to_ids(t) for t in params.stop_tokens] or None,
            include_stop_str_in_output=True,
            seed=None if greedy else sample_seed(params.seed, req.task_id, req.completion_id),
        )

    def generate(
        self,
        requests: Sequence[GenRequest],
        params: SamplingParams,
        on_outputs: Callable[[list[GenOutput]], None],
    ) -> None:
        """Generate every request once; `on_outputs` gets each finished chunk."""
        for lo in range(0, len(requests), CHUNK):
            chunk = list(requests[lo : lo + CHUNK])
            # A chat-template prompt that starts with its own BOS gets no second one (as in the HF backend).
            bos = self.tokenizer.bos_token if params.templated else None
            prompts: list[Any] = [
                {"prompt_token_ids": self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]}
                if bos and r.prompt.startswith(bos)
                else r.prompt
                for r in chunk
            ]
            results = self.llm.generate(
                prompts,
                [self._params(params, r) for r in chunk],
                use_tqdm=self.show_progress,
            )
            on_outputs(
                [
                    GenOutput(task_id=req.task_id, completion_id=req.completion_id, raw=res.outputs[0].text)
                    for req, res in zip(chunk, results, strict=True)
                ]
            )
