"""Generation speed: phi-eval's HFGenerator against the model card's one-prompt-at-a-time pattern.

Both sides generate greedily for the HumanEval prompts (phi-1 format) on the same model folder.
- baseline: what the Phi model cards show: for each prompt, tokenizer(prompt, return_tensors="pt"),
  model.generate(**inputs, max_new_tokens=N), decode. No batching, no stop sequences.
- phi-eval: HFGenerator with automatic batching (length-sorted, left-padded) and the task's stop
  sequences, so rows end at the end of the function.

`--mode both` (the default) runs each side as a separate whole process (this script re-invoked)
and prints both wall times and the ratio; it also checks the two agree on the post-processed
completions (greedy: the same text up to the first stop sequence).

    python bench/bench_generate.py                       # tiny Phi (hidden 256, 4 layers) on CPU
    python bench/bench_generate.py --phi1-size --device cuda --dtype float16   # phi-1-sized, random weights
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def build_model(path: Path, phi1_size: bool, device: str, dtype: str, vocab: int) -> Path:
    """A model folder: the tiny bench model, or a phi-1-sized one with random weights.

    The tokenizer's vocabulary (default 2048) sets how many tokens a prompt takes: at 2048 a
    HumanEval prompt averages about 3.3 characters per token, close to phi-1's own tokenizer on code;
    at 512 (the test model's) prompts are half again as long and the shared prefill weighs more.
    """
    from tiny_phi import build_tiny_phi, build_tokenizer

    if not phi1_size:
        return build_tiny_phi(path, vocab_size=vocab, hidden_size=256, layers=4)
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    tokenizer = build_tokenizer(vocab)
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


def run_both(args: argparse.Namespace) -> None:
    from phi_eval.postprocess import postprocess
    from phi_eval.tasks import get_task

    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        if args.model_dir is None:
            t0 = time.perf_counter()
            args.model_dir = str(
                build_model(Path(tmp) / "model", args.phi1_size, args.device or "cpu", args.dtype, args.vocab)
            )
            print(f"built model in {time.perf_counter() - t0:.1f}s at {args.model_dir}", file=sys.stderr)
        results: dict[str, dict] = {}
        for _ in range(args.repeat):  # alternate the sides; keep each side's fastest run
            for mode in ("baseline", "phi-eval"):
                out = Path(tmp) / f"{mode}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--mode",
                    mode,
                    "--model-dir",
                    args.model_dir,
                    "--out",
                    str(out),
                    "--n-prompts",
                    str(args.n_prompts),
                    "--max-new-tokens",
                    str(args.max_new_tokens),
                    "--dtype",
                    args.dtype,
                ]
                cmd += ["--device", args.device] if args.device else []
                cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True)
                run = {**json.loads(out.read_text()), "process_s": time.perf_counter() - t0}
                if mode not in results or run["process_s"] < results[mode]["process_s"]:
                    results[mode] = run
    stop = get_task("humaneval").stop
    base, mine = results["baseline"], results["phi-eval"]
    agree = sum(
        postprocess(base["raw"][k], stop, "phi-1") == postprocess(mine["raw"][k], stop, "phi-1")
        for k in base["raw"]
    )
    print(
        f"{args.n_prompts} HumanEval prompts, greedy, max_new_tokens={args.max_new_tokens}, "
        f"model={'phi-1-size' if args.phi1_size else 'tiny phi (hidden 256, 4 layers)'}, "
        f"tokenizer vocab {args.vocab}, best of {args.repeat} whole-process run(s) per side"
    )
    print(f"{'':10} {'process s':>10} {'generate s':>11}")
    for mode in ("baseline", "phi-eval"):
        print(f"{mode:10} {results[mode]['process_s']:10.1f} {results[mode]['gen_s']:11.1f}")
    print(
        f"ratio (baseline / phi-eval): whole process {base['process_s'] / mine['process_s']:.1f}x, "
        f"generation only {base['gen_s'] / mine['gen_s']:.1f}x"
    )
    print(f"completions identical after post-processing: {agree}/{len(base['raw'])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("baseline", "phi-eval", "both"), default="both")
    parser.add_argument("--model-dir", help="an existing model folder (default: build one in a temp folder)")
    parser.add_argument(
        "--phi1-size", action="store_true", help="phi-1's shape with random weights (for a GPU)"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16")
    parser.add_argument("--vocab", type=int, default=2048, help="tokenizer vocabulary of the built model")
    parser.add_argument("--n-prompts", type=int, default=164)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="phi-eval side (default: automatic)")
    parser.add_argument("--repeat", type=int, default=1, help="both: runs per side, the fastest is kept")
    parser.add_argument("--out", help="single mode: write the result as JSON here")
    args = parser.parse_args()
    if args.mode == "both":
        run_both(args)
        return
    if args.model_dir is None:
        parser.error("--mode baseline/phi-eval needs --model-dir (or use --mode both)")
    result = (run_baseline if args.mode == "baseline" else run_phi_eval)(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    print(f"{args.mode}: {len(result['raw'])} prompts generated in {result['gen_s']:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
