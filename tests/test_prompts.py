"""Prompt formats on real HumanEval and MBPP problems, as golden strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi_eval.errors import PhiEvalError
from phi_eval.prompts import FORMATS, build_prompt, load_mbpp_shots, resolve_format
from phi_eval.tasks import Problem, get_task

HE2_CODE = (
    "\n\ndef truncate_number(number: float) -> float:\n"
    '    """ Given a positive floating point number, it can be decomposed into\n'
    "    and integer part (largest integer smaller than given number) and decimals\n"
    "    (leftover part always smaller than 1).\n\n"
    "    Return the decimal part of the number.\n"
    "    >>> truncate_number(3.5)\n"
    "    0.5\n"
    '    """\n'
)
MBPP11_TEXT = (
    "Write a python function to remove first and last occurrence of a given character from the string."
)
MBPP11_TESTS = (
    'assert remove_Occ("hello","l") == "heo"\n'
    'assert remove_Occ("abcda","a") == "bcd"\n'
    'assert remove_Occ("PHP","P") == "H"'
)
MBPP11_DOC = f'"""\n{MBPP11_TEXT}\n{MBPP11_TESTS}\n"""\n'


@pytest.fixture(scope="module")
def he2() -> Problem:
    problems, _ = get_task("humaneval").load()
    return next(p for p in problems if p.task_id == "HumanEval/2")


@pytest.fixture(scope="module")
def mbpp11(mbpp_path: Path) -> Problem:
    problems, _ = get_task("mbpp").load(mbpp_path)
    return next(p for p in problems if p.task_id == "Mbpp/11")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("phi-1", HE2_CODE),
        ("phi-1.5", "```python\n" + HE2_CODE),
        ("phi-2", HE2_CODE),
        (
            "phi-2-qa",
            "Instruct: Complete the following Python function.\n" + HE2_CODE + "Output:\n" + HE2_CODE,
        ),
        ("plain", HE2_CODE),
    ],
)
def test_humaneval_formats(he2: Problem, fmt: str, expected: str) -> None:
    assert build_prompt(get_task("humaneval"), he2, fmt) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("phi-1", MBPP11_DOC),
        ("phi-1.5", "```python\n" + MBPP11_DOC),
        ("phi-2", MBPP11_DOC),
        (
            "phi-2-qa",
            f"Instruct: {MBPP11_TEXT}\nYour code should pass these tests:\n{MBPP11_TESTS}\nOutput:\n",
        ),
        ("plain", MBPP11_DOC),
    ],
)
def test_mbpp_docstring_formats(mbpp11: Problem, fmt: str, expected: str) -> None:
    assert build_prompt(get_task("mbpp"), mbpp11, fmt) == expected


def test_mbpp_three_shot(mbpp_path: Path, mbpp11: Problem) -> None:
    task = get_task("mbpp")
    shots = load_mbpp_shots(task, mbpp_path)
    assert [s.task_id for s in shots] == ["Mbpp/2", "Mbpp/3", "Mbpp/4"]
    prompt = build_prompt(task, mbpp11, "phi-1", mbpp_style="3-shot", shots=shots)
    head = (
        "You are an expert Python programmer, and here is your task: Write a function to find the similar "
        "elements from the given two tuple lists. Your code should pass these tests:\n\n"
        "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\n"
        "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)\n"
        "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)\n"
        "[BEGIN]\n"
        "def similar_elements(test_tup1, test_tup2):\n"
        "  res = tuple(set(test_tup1) & set(test_tup2))\n"
        "  return (res) \n"
        "[DONE]\n"
        "You are an expert Python programmer, and here is your task: Write a python function to identify "
    )
    tail = (
        f"You are an expert Python programmer, and here is your task: {MBPP11_TEXT} "
        f"Your code should pass these tests:\n\n{MBPP11_TESTS}\n[BEGIN]\n"
    )
    assert prompt.startswith(head)
    assert prompt.endswith("[DONE]\n" + tail)
    assert prompt.count("[DONE]") == 3 and prompt.count("[BEGIN]") == 4
    assert "\r" not in prompt
    # The 3-shot answer ends at [DONE]: the task's stop sequences say so.
    assert "[DONE]" in task.stop


def test_three_shot_needs_shots(mbpp11: Problem) -> None:
    with pytest.raises(PhiEvalError, match="3-shot"):
        build_prompt(get_task("mbpp"), mbpp11, "phi-1", mbpp_style="3-shot")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("microsoft/phi-1", "phi-1"),
        ("microsoft/phi-1_5", "phi-1.5"),
        ("microsoft/phi-2", "phi-2"),
        ("/models/phi-1_5", "phi-1.5"),
        ("/tmp/tiny-phi/model", "plain"),
        ("gpt2", "plain"),
        ("bigcode/starcoder", "plain"),
    ],
)
def test_auto_resolution(model: str, expected: str) -> None:
    assert resolve_format("auto", model) == expected


def test_explicit_format_wins_and_unknown_fails() -> None:
    assert resolve_format("phi-2-qa", "microsoft/phi-1") == "phi-2-qa"
    with pytest.raises(PhiEvalError, match="unknown prompt format"):
        resolve_format("phi-9", "microsoft/phi-1")
    assert "auto" in FORMATS


def test_build_prompt_refuses_unresolved(he2: Problem) -> None:
    with pytest.raises(PhiEvalError, match="resolve"):
        build_prompt(get_task("humaneval"), he2, "auto")


# ---------------------------------------------------------------- chat formats

EVALPLUS_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
MBPP_LIKE = Problem(task_id="Mbpp/900", prompt="Write a function to add two numbers.", tests="assert add(1, 2) == 3",
                    entry_point=None, reference="def add(a, b):\n    return a + b\n",
                    test_list=("assert add(1, 2) == 3",), completion_is_program=True)


def test_chat_user_message_is_evalplus_instruction_prompt(he2: Problem) -> None:
    # evalplus 0.3.1 provider/utility.py: f"{instruction_prefix}\n```\n{task_prompt.strip()}\n```\n"
    expected = f"{EVALPLUS_INSTRUCTION}\n```\n{he2.prompt.strip()}\n```\n"
    assert build_prompt(get_task("humaneval"), he2, "chat") == expected
    mbpp = build_prompt(get_task("mbpp"), MBPP_LIKE, "chat")
    assert mbpp == f'{EVALPLUS_INSTRUCTION}\n```\n"""\nWrite a function to add two numbers.\nassert add(1, 2) == 3\n"""\n```\n'


def test_phi2_chat_is_the_cards_alice_bob_format(he2: Problem) -> None:
    text = build_prompt(get_task("humaneval"), he2, "phi-2-chat")
    assert text == f"Alice: {EVALPLUS_INSTRUCTION}\n```\n{he2.prompt.strip()}\n```\nBob:"


@pytest.mark.parametrize(
    ("model", "template", "expected"),
    [
        ("microsoft/Phi-3-mini-4k-instruct", True, "chat"),
        ("microsoft/Phi-3.5-mini-instruct", True, "chat"),
        ("microsoft/Phi-4-mini-instruct", True, "chat"),
        ("./ckpt/my-phi-chat", True, "chat"),
        ("microsoft/Phi-3-mini-4k-instruct", False, "plain"),  # no template: nothing to render with
        ("microsoft/phi-2", True, "phi-2"),  # a base model with a template stays a base model
    ],
)
def test_auto_picks_chat_for_instruct_models_with_a_template(model: str, template: bool, expected: str) -> None:
    assert resolve_format("auto", model, chat_template=template) == expected


def test_chat_refuses_the_few_shot_mbpp_prompt() -> None:
    with pytest.raises(PhiEvalError, match="3-shot MBPP prompt is a completion format"):
        build_prompt(get_task("mbpp"), MBPP_LIKE, "chat", mbpp_style="3-shot", shots=[MBPP_LIKE])
