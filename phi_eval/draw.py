"""Drawing a run's samples: the model backend, the exact prompts, samples.jsonl appended as it goes.

Every prompt the run renders is recorded in prompts.jsonl, and each batch of samples is appended
to samples.jsonl once drawn, so an interrupted run keeps what it drew and a resume draws only what
is missing. Under a multi-process launch every rank draws its share and only rank 0 writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from phi_eval import files, runfolder
from phi_eval.config import RunConfig
from phi_eval.errors import PhiEvalError
from phi_eval.generate import Generator, GenOutput, GenRequest, SamplingParams
from phi_eval.prompts import PromptSetup
from phi_eval.samples import Sample
from phi_eval.tasks import Problem, Task

console = Console(stderr=True)



def get_generator(cfg: RunConfig, problems: Sequence[Problem], spare_cores: int = 0) -> Generator:
    """The model backend, imported only when chosen; `spare_cores` are left to the sandbox running
    beside it (the hf backend on CPU)."""
    if cfg.model == "reference":
        from phi_eval.generate.reference import ReferenceGenerator

        return ReferenceGenerator(problems)
    if cfg.backend == "vllm":
        from phi_eval.generate.vllm import VLLMGenerator

        return VLLMGenerator(cfg.model, dtype=cfg.dtype, revision=cfg.revision)
    if cfg.backend != "hf":
        raise PhiEvalError(f"unknown backend {cfg.backend!r}; choose hf or vllm")
    from phi_eval.generate.hf import HFGenerator

    return HFGenerator(cfg.model, dtype=cfg.dtype, revision=cfg.revision, spare_cores=spare_cores)


def _prompts(cfg: RunConfig, task: Task, problems: Sequence[Problem], setup: PromptSetup) -> dict[str, str]:
    from phi_eval.prompts import build_prompt, load_mbpp_shots, render_prompt

    shots = None
    if cfg.mbpp_prompt == "3-shot" and task.loader == "mbpp" and not setup.is_chat:
        shots = load_mbpp_shots(task, cfg.data)
    return {
        p.task_id: render_prompt(setup, build_prompt(task, p, setup.fmt, mbpp_style=cfg.mbpp_prompt, shots=shots))
        for p in problems
    }


def _trained_prompt(cfg: RunConfig) -> tuple[str | None, str | None]:
    """A checkpoint from `phi-eval train` is evaluated in the prompt format (and system prompt) it
    was trained with: (format, system prompt), each None when not known or set on the command line."""
    if cfg.prompt_format != "auto" or not cfg.model:
        return None, None
    path = Path(cfg.model) / "train_config.json"
    if not path.is_file():
        return None, None
    trained = files.read_json(path)
    fmt, system = trained.get("prompt_format"), trained.get("system_prompt")
    return (fmt if isinstance(fmt, str) and fmt != "auto" else None,
            system if isinstance(system, str) and cfg.system_prompt is None else None)


def prompt_setup_of(cfg: RunConfig, task: Task, generator: Generator) -> PromptSetup:
    """The run's prompt format, resolved with the model's tokenizer (its chat template) at hand."""
    from phi_eval.prompts import prompt_setup

    fmt, system = _trained_prompt(cfg)
    return prompt_setup(task, fmt or cfg.prompt_format, cfg.model or "", getattr(generator, "tokenizer", None),
                        system or cfg.system_prompt)


def is_main_process() -> bool:
    """Rank 0 (or a plain single process) owns the run folder and the sandbox; the launchers
    (accelerate launch, torchrun) set RANK for every process they start."""
    return int(os.environ.get("RANK", "0")) == 0


def generate_samples(cfg: RunConfig, task: Task, problems: Sequence[Problem], run_dir: Path,
                     generator: Generator, *, write: bool = True, setup: PromptSetup | None = None,
                     on_samples: Callable[[list[Sample]], None] | None = None) -> list[Sample]:
    """Draw n samples per problem into samples.jsonl, skipping what an earlier attempt finished.

    With write=False (a non-main process of a multi-process launch) only this process's share is
    generated; the main process gathers and writes everything. A chat format's sample is the
    program extracted from the answer, marked is_program (scored whole, not after the prompt).
    `on_samples` gets each batch once it is written (`run` executes it while the next is generated)."""
    from phi_eval.postprocess import chat_program, postprocess

    setup = setup or prompt_setup_of(cfg, task, generator)
    fmt = setup.fmt
    prompt_of = _prompts(cfg, task, problems, setup)
    prompts_path = run_dir / runfolder.PROMPTS
    if write:  # every prompt the run renders, including those a resume with a larger --limit adds
        recorded = {r["task_id"] for r in files.iter_jsonl(prompts_path)}
        fresh = [p for p in problems if p.task_id not in recorded]
        if fresh:
            with files.JsonlAppender(prompts_path) as out:
                out.write({"task_id": p.task_id, "prompt": prompt_of[p.task_id], "format": fmt} for p in fresh)

    samples_path = run_dir / runfolder.SAMPLES
    # Only the main process reads the folder (it may be clearing it under --force, or appending to
    # it); the others take the main process's request list from the generator (phi_eval/generate/hf.py).
    done = {(r["task_id"], r["completion_id"]) for r in files.iter_jsonl(samples_path)} if write else set()
    requests = [
        GenRequest(p.task_id, cid, prompt_of[p.task_id])
        for p in problems
        for cid in range(cfg.n)
        if (p.task_id, cid) not in done
    ]
    if done and write:
        console.print(f"resuming: {len(done)} samples already in {samples_path}, {len(requests)} to draw")
    params = SamplingParams(
        n=cfg.n,
        temperature=cfg.effective_temperature(),
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens or task.max_new_tokens,
        seed=cfg.seed,
        stop=setup.stop,
        stop_tokens=setup.stop_tokens,
        templated=fmt == "chat",
        batch_size=cfg.batch_size,
    )
    if not write:
        generator.generate(requests, params, lambda outputs: None)
        return []
    is_reference = cfg.model == "reference"
    by_id = {p.task_id: p for p in problems}
    if requests:
        with files.JsonlAppender(samples_path) as out:

            def on_outputs(outputs: list[GenOutput]) -> None:
                records = []
                for o in outputs:
                    if (o.task_id, o.completion_id) in done:
                        continue  # a backend may hand back padding duplicates; keep the first
                    done.add((o.task_id, o.completion_id))
                    problem = by_id[o.task_id]
                    echo = problem.prompt if problem.entry_point is not None else None
                    if is_reference:
                        completion = o.raw
                    elif setup.is_chat:
                        completion = chat_program(o.raw, setup.stop, problem.entry_point,
                                                  (*problem.test_list, problem.setup), context=echo or "")
                    else:
                        completion = postprocess(o.raw, setup.stop, fmt, echo=echo)
                        if problem.plus is not None:
                            completion = _plus_completion(problem.prompt, completion)
                    record = {"task_id": o.task_id, "completion_id": o.completion_id, "completion": completion}
                    if setup.is_chat and not is_reference:
                        record["is_program"] = True
                    if completion != o.raw:
                        record["raw"] = o.raw
                    records.append(record)
                out.write(records)
                if on_samples is not None:
                    on_samples([Sample(r["task_id"], r["completion_id"], r["completion"], bool(r.get("is_program")))
                                for r in records])

            generator.generate(requests, params, on_outputs)
    return _unique([Sample(r["task_id"], r["completion_id"], r["completion"], bool(r.get("is_program")))
                    for r in files.iter_jsonl(samples_path)])


def _unique(samples: Sequence[Sample]) -> list[Sample]:
    """The first sample of each (task_id, completion_id): a folder is written by one phi-eval at a
    time (its lock), but a folder from before the lock may hold duplicates."""
    seen: set[tuple[str, int]] = set()
    out = []
    for s in samples:
        if (s.task_id, s.completion_id) not in seen:
            seen.add((s.task_id, s.completion_id))
            out.append(s)
    return out


def _plus_completion(prompt: str, completion: str) -> str:
    """EvalPlus prompts the model with its prompt stripped plus a newline, but joins a `completion`
    to the prompt as it is in the file (MBPP+'s ends without one): so the newline goes into the
    completion, and `prompt + completion` is the program the model saw and wrote."""
    return completion if prompt.endswith("\n") else "\n" + completion
