"""Generation speed: phi-eval's HFGenerator against the model card's one-prompt-at-a-time pattern.

Both sides generate greedily for the HumanEval prompts (phi-1 format) on the same model folder.
- baseline: what the Phi model cards show: for each prompt, tokenizer(prompt, return_tensors="pt"),
  model.generate(**inputs, max_new_tokens=N), decode. No batching, no stop sequences.
- phi-eval, two ways: the `phi-eval generate` CLI as a user runs it (run folder, prompts.jsonl,
  progress bar), and HFGenerator called from this script (which also times generation alone).
  Both use automatic batching (length-sorted, left-padded, chunked prefill into an in-place KV
  cache) and the task's stop sequences, so rows end at the end of the function.

`--mode both` (the default) runs each side as a separate whole process, alternating sides, and
prints wall times and ratios (best of --repeat runs per side, then the medians and the run-by-run
ratios of the CLI against the baseline); it also checks each phi-eval side
agrees with the baseline on the post-processed completions (greedy: the same text up to the
first stop sequence).

    python bench/bench_generate.py --repeat 3            # tiny Phi (hidden 256, 4 layers) on CPU
    python bench/bench_generate.py --hidden 64 --layers 2 --vocab 512   # the test suite's tiny Phi
    python bench/bench_generate.py --phi1-size --device cuda --dtype float16   # phi-1-sized, random weights
    python bench/bench_generate.py --mode prefill-ab --n-prompts 32 --n 10    # n samples: shared prefill A/B
    python bench/bench_generate.py --mode load-ab --repeat 8     # start-up: GC paused while loading, or not
    python bench/bench_generate.py --mode prefill-stop-ab --repeat 8   # prefill: stop after the last layer's K/V
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def describe(args: argparse.Namespace) -> str:
    if args.model_dir_given:
        return args.model_dir
    if args.phi1_size:
        return "phi-1-sized Phi (hidden 2048, 24 layers, vocab 51200), random weights"
    return f"tiny Phi (hidden {args.hidden}, {args.layers} layers), tokenizer vocab {args.vocab}"


def build_model(path: Path, args: argparse.Namespace) -> Path:
    """A model folder: the tiny bench model, or a phi-1-sized one with random weights.

    The tokenizer's vocabulary (default 2048) sets how many tokens a prompt takes: at 2048 a
    HumanEval prompt averages about 3.3 characters per token, close to phi-1's own tokenizer on code;
    at 512 (the test model's) prompts are half again as long and the shared prefill weighs more.
    """
    from tiny_phi import build_tiny_phi, build_tokenizer

    if not args.phi1_size:
        return build_tiny_phi(path, vocab_size=args.vocab, hidden_size=args.hidden, layers=args.layers)
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    device, dtype = args.device or "cpu", args.dtype
    tokenizer = build_tokenizer(args.vocab)
    config = PhiConfig(  # microsoft/phi-1's shape; ids from the tiny tokenizer stay below 51200
        vocab_size=51200,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=24,
        num_attention_heads=32,
        partial_rotary_factor=0.5,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    torch_dtype = getattr(
        torch, {"auto": "float16" if device.startswith("cuda") else "float32"}.get(dtype, dtype)
    )
    with torch.device(device if device.startswith("cuda") else "cpu"):
        model = PhiForCausalLM(config).to(torch_dtype)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@contextmanager
def workspace(args: argparse.Namespace) -> Iterator[Path]:
    """A temporary folder for one bench run; the model is built into it unless --model-dir names one."""
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        if args.model_dir is None:
            t0 = time.perf_counter()
            args.model_dir = str(build_model(Path(tmp) / "model", args))
            print(f"built model in {time.perf_counter() - t0:.1f}s at {args.model_dir}", file=sys.stderr)
        yield Path(tmp)


def prompts(limit: int) -> list[tuple[str, str]]:
    from phi_eval.prompts import build_prompt
    from phi_eval.tasks import get_task

    task = get_task("humaneval")
    problems, _ = task.load()
    return [(p.task_id, build_prompt(task, p, "phi-1")) for p in problems[:limit]]


def run_baseline(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": "float16" if device.startswith("cuda") else "float32"}.get(args.dtype, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=getattr(torch, dtype)).to(device)
    items = prompts(args.n_prompts)
    start = time.perf_counter()
    raw = {}
    for task_id, prompt in items:
        inputs = tokenizer(prompt, return_tensors="pt", return_attention_mask=False).to(device)
        outputs = model.generate(
            **inputs, max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.eos_token_id
        )
        raw[task_id] = tokenizer.decode(outputs[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return {"gen_s": time.perf_counter() - start, "raw": raw}


def run_phi_eval(args: argparse.Namespace) -> dict:
    from phi_eval.generate import GenRequest, SamplingParams
    from phi_eval.generate.hf import HFGenerator
    from phi_eval.tasks import get_task

    gen = HFGenerator(args.model_dir, dtype=args.dtype, device=args.device, show_progress=False)
    reqs = [GenRequest(task_id, 0, prompt) for task_id, prompt in prompts(args.n_prompts)]
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, stop=get_task("humaneval").stop, batch_size=args.batch_size
    )
    raw: dict[str, str] = {}
    start = time.perf_counter()
    gen.generate(reqs, params, lambda outs: raw.update((o.task_id, o.raw) for o in outs))
    return {"gen_s": time.perf_counter() - start, "raw": raw, "batch_size": gen.last_batch_size}


def run_cli(args: argparse.Namespace, out_dir: Path) -> dict:
    """`phi-eval generate` itself, as a user runs it: the run folder, prompts, progress bar and all."""
    cmd = [
        sys.executable, "-m", "phi_eval", "generate", "--task", "humaneval", "--model", args.model_dir,
        "--max-new-tokens", str(args.max_new_tokens), "--prompt-format", "phi-1", "--dtype", args.dtype,
        "--limit", str(args.n_prompts), "--out", str(out_dir),
    ]  # fmt: skip
    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    env = dict(os.environ)
    if args.device == "cpu":  # the CLI picks its device itself (a GPU when one is visible)
        env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    raw = {}
    from phi_eval.files import iter_jsonl  # lines end at \n only: model text may hold U+2028

    for rec in iter_jsonl(out_dir / "samples.jsonl"):
        raw[rec["task_id"]] = rec.get("raw", rec["completion"])
    return {"raw": raw}


def run_prefill_ab(args: argparse.Namespace) -> None:
    """n samples per prompt: the shared chunked prefill + in-place cache against transformers' own
    cache, same generator, same batches, in one process (alternating, fastest of --repeat)."""
    from phi_eval.generate import GenRequest, SamplingParams
    from phi_eval.generate.hf import HFGenerator
    from phi_eval.tasks import get_task

    with workspace(args):
        gen = HFGenerator(args.model_dir, dtype=args.dtype, device=args.device, show_progress=False)
        fast = gen.prefill
        reqs = [GenRequest(t, c, p) for t, p in prompts(args.n_prompts) for c in range(args.n)]
        params = SamplingParams(n=args.n, temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens,
                                stop=get_task("humaneval").stop, seed=1)  # fmt: skip
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, prefill in (("transformers cache", None), ("shared prefill", fast)):
                gen.prefill = prefill
                start = time.perf_counter()
                gen.generate(reqs, params, lambda outs: None)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(f"{len(reqs)} samples (n={args.n} x {args.n_prompts} prompts, temperature 0.8), {describe(args)}")
    for name, secs in best.items():
        print(f"  {name:20} {secs:6.1f} s")
    print(f"  ratio {best['transformers cache'] / best['shared prefill']:.1f}x")


def run_prefill_stop_ab(args: argparse.Namespace) -> None:
    """The prefill of the 164 prompts, in the generator's own batches, in one process: each chunk's
    forward stopped once the last layer has stored its keys/values (kvcache.py) against the whole
    forward, alternating; medians of --repeat, and a check that both leave the same keys/values."""
    import torch
    from transformers.cache_utils import DynamicCache

    from phi_eval.generate import GenRequest, SamplingParams
    from phi_eval.generate.hf import HFGenerator

    with workspace(args):
        gen = HFGenerator(args.model_dir, dtype=args.dtype, device=args.device, show_progress=False)
        prefill = gen.prefill
        assert prefill is not None, "this model does not take the prefilled-cache path"
        params = SamplingParams(max_new_tokens=args.max_new_tokens)
        items = gen._tokenize([GenRequest(t, 0, p) for t, p in prompts(args.n_prompts)], args.max_new_tokens)
        batches, i = [], 0
        for size in gen._plan(items, params):
            batches.append([ids for _, ids in items[i : i + size]])
            i += size
        variants = {"stop after the last layer's keys/values": prefill._cache_class, "whole forward": DynamicCache}
        times: dict[str, list[float]] = {name: [] for name in variants}
        last: dict[str, list] = {}
        with torch.inference_mode():
            for _ in range(args.repeat):
                for name, cache_class in variants.items():
                    prefill._cache_class = cache_class
                    start = time.perf_counter()
                    for batch in batches:
                        width = len(batch[0])
                        cache = prefill.build(batch, width, width + args.max_new_tokens)
                    times[name].append(time.perf_counter() - start)
                    last[name] = [layer.keys.clone() for layer in cache.layers]  # the last batch's keys
        same = all(torch.equal(a, b) for a, b in zip(*last.values(), strict=True))
    print(f"prefill of {len(items)} HumanEval prompts in {len(batches)} batches, {describe(args)}, {args.repeat} runs each")
    for name, runs in times.items():
        print(f"  {name:40} median {statistics.median(runs):5.2f} s  best {min(runs):5.2f} s")
    stop, whole = (statistics.median(times[name]) for name in variants)
    print(f"  speed-up {whole / stop:.2f}x (medians); identical keys: {same}")


def run_load(args: argparse.Namespace) -> None:
    """One process: import torch and transformers and load the model as `phi-eval generate` does."""
    if args.no_gc_pause:
        import contextlib

        import phi_eval.gcpause

        phi_eval.gcpause.gc_paused = contextlib.nullcontext  # type: ignore[assignment]
    from phi_eval.generate.hf import HFGenerator

    HFGenerator(args.model_dir, dtype=args.dtype, device=args.device, show_progress=False)
    os._exit(0)  # no interpreter teardown on either side: the start-up alone is compared


def run_load_ab(args: argparse.Namespace) -> None:
    """Start-up (imports + model load) as whole processes: the GC paused while loading
    (phi_eval/gcpause.py) against the same code with the collector left running; alternating."""

    with workspace(args):
        times: dict[str, list[float]] = {"GC running (baseline)": [], "GC paused": []}
        for _ in range(args.repeat):
            for name in times:
                cmd = [sys.executable, __file__, "--mode", "load", "--model-dir", args.model_dir,
                       "--dtype", args.dtype, "--device", args.device or "cpu"]  # fmt: skip
                cmd += ["--no-gc-pause"] if name.startswith("GC running") else []
                start = time.perf_counter()
                subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    print(f"start-up of a generator (python start, imports, model load), {describe(args)}, {args.repeat} runs each")
    for name, runs in times.items():
        print(f"  {name:22} best {min(runs):5.2f} s   median {statistics.median(runs):5.2f} s")
    base, mine = times["GC running (baseline)"], times["GC paused"]
    print(f"  ratio {statistics.median(base) / statistics.median(mine):.2f}x (medians), "
          f"{min(base) / min(mine):.2f}x (best)")


SIDES = ("baseline", "phi-eval", "phi-eval-cli")


def run_both(args: argparse.Namespace) -> None:
    from phi_eval.postprocess import postprocess
    from phi_eval.tasks import get_task

    with workspace(args) as tmp:
        results: dict[str, dict] = {}
        times: dict[str, list[float]] = {mode: [] for mode in SIDES}  # every run, for the medians
        for rep in range(args.repeat):  # alternate the sides; keep each side's fastest run
            for mode in SIDES:
                out = tmp / f"{mode}-{rep}.json"
                t0 = time.perf_counter()
                if mode == "phi-eval-cli":
                    run = run_cli(args, tmp / f"cli-{rep}")
                else:
                    cmd = [sys.executable, __file__, "--mode", mode, "--model-dir", args.model_dir,
                           "--out", str(out), "--n-prompts", str(args.n_prompts),
                           "--max-new-tokens", str(args.max_new_tokens), "--dtype", args.dtype]  # fmt: skip
                    cmd += ["--device", args.device] if args.device else []
                    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
                    subprocess.run(cmd, check=True)
                    run = json.loads(out.read_text())
                run["process_s"] = time.perf_counter() - t0
                times[mode].append(run["process_s"])
                print(f"  run {rep + 1}: {mode:13} {run['process_s']:6.1f} s", file=sys.stderr)
                if mode not in results or run["process_s"] < results[mode]["process_s"]:
                    results[mode] = run
    stop = get_task("humaneval").stop
    base = results["baseline"]
    print(
        f"{args.n_prompts} HumanEval prompts, greedy, max_new_tokens={args.max_new_tokens}, model: {describe(args)}; "
        f"best of {args.repeat} whole-process run(s) per side"
    )
    print(f"{'':38} {'process s':>10} {'generate s':>11} {'ratio':>7}")
    labels = {
        "baseline": "baseline (model card, one at a time)",
        "phi-eval": "phi-eval HFGenerator in a process",
        "phi-eval-cli": "phi-eval generate (the CLI)",
    }
    for mode in SIDES:
        r = results[mode]
        gen = f"{r['gen_s']:11.1f}" if "gen_s" in r else f"{'-':>11}"
        ratio = f"{base['process_s'] / r['process_s']:6.1f}x" if mode != "baseline" else ""
        print(f"{labels[mode]:38} {r['process_s']:10.1f} {gen} {ratio:>7}")
    mine = results["phi-eval"]
    print(f"generation only (inside the process): {base['gen_s'] / mine['gen_s']:.1f}x")
    if args.repeat > 1:  # the spread behind the best-of figures: this machine's speed drifts
        paired = [b / c for b, c in zip(times["baseline"], times["phi-eval-cli"], strict=True)]
        print(
            f"the CLI over {args.repeat} runs: median {statistics.median(times['phi-eval-cli']):.1f} s vs the "
            f"baseline's {statistics.median(times['baseline']):.1f} s "
            f"({statistics.median(times['baseline']) / statistics.median(times['phi-eval-cli']):.1f}x); "
            f"run by run {min(paired):.1f}x-{max(paired):.1f}x, median {statistics.median(paired):.1f}x"
        )
    for mode in ("phi-eval", "phi-eval-cli"):
        agree = sum(
            postprocess(base["raw"][k], stop, "phi-1") == postprocess(results[mode]["raw"][k], stop, "phi-1")
            for k in base["raw"]
        )
        print(f"{labels[mode]}: completions identical to the baseline's after post-processing: "
              f"{agree}/{len(base['raw'])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("baseline", "phi-eval", "both", "prefill-ab", "prefill-stop-ab", "load", "load-ab"), default="both")
    parser.add_argument("--n", type=int, default=10, help="prefill-ab: samples per prompt")
    parser.add_argument("--model-dir", help="an existing model folder (default: build one in a temp folder)")
    parser.add_argument(
        "--phi1-size", action="store_true", help="phi-1's shape with random weights (for a GPU)"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16")
    parser.add_argument("--vocab", type=int, default=2048, help="tokenizer vocabulary of the built model")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the built tiny model")
    parser.add_argument("--layers", type=int, default=4, help="layers of the built tiny model")
    parser.add_argument("--n-prompts", type=int, default=164)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="phi-eval side (default: automatic)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side (both: the fastest is kept)")
    parser.add_argument("--out", help="single mode: write the result as JSON here")
    parser.add_argument("--no-gc-pause", action="store_true", help="load mode: leave the collector running")
    args = parser.parse_args()
    args.model_dir_given = args.model_dir is not None
    if args.mode == "both":
        run_both(args)
        return
    if args.mode == "prefill-stop-ab":
        return run_prefill_stop_ab(args)
    if args.mode == "prefill-ab":
        run_prefill_ab(args)
        return
    if args.mode == "load-ab":
        run_load_ab(args)
        return
    if args.model_dir is None:
        parser.error("--mode baseline/phi-eval/load needs --model-dir (or use --mode both)")
    if args.mode == "load":
        run_load(args)
    result = (run_baseline if args.mode == "baseline" else run_phi_eval)(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    print(f"{args.mode}: {len(result['raw'])} prompts generated in {result['gen_s']:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
