"""Messy raw model text -> the completion that gets executed (golden cases)."""

from __future__ import annotations

import pytest

from phi_eval.postprocess import cut_at_stop, postprocess
from phi_eval.tasks import get_task

HE_STOP = get_task("humaneval").stop
MBPP_STOP = get_task("mbpp").stop
ECHO = 'def add(a, b):\n    """Add two numbers."""\n'

CASES = [
    # (id, raw, stop, fmt, echo, expected)
    (
        "body then a new def",
        "    return a + b\n\n\ndef main():\n    pass\n",
        HE_STOP,
        "phi-1",
        None,
        "    return a + b\n",
    ),
    (
        "body then a test print",
        "    return a + b\nprint(add(1, 2))\n",
        HE_STOP,
        "phi-1",
        None,
        "    return a + b\n",
    ),
    (
        "body then top-level if",
        "    return a + b\n\nif __name__ == '__main__':\n    main()",
        HE_STOP,
        "phi-2",
        None,
        "    return a + b\n",
    ),
    (
        "earliest stop wins",
        "    x = 1\n# tests\nassert add(1, 1) == 2\ndef g(): pass",
        HE_STOP,
        "phi-1",
        None,
        "    x = 1\n",
    ),
    (
        "no stop: trailing blanks go",
        "    return a + b   \n\n\n",
        HE_STOP,
        "phi-1",
        None,
        "    return a + b\n",
    ),
    (
        "nested def is kept",
        "    def helper(x):\n        return x\n    return helper(a) + b\nclass Foo:\n",
        HE_STOP,
        "phi-1",
        None,
        "    def helper(x):\n        return x\n    return helper(a) + b\n",
    ),
    (
        "'def ' without a newline is no stop",
        "    return undef_value\n",
        HE_STOP,
        "phi-1",
        None,
        "    return undef_value\n",
    ),
    (
        "phi-1.5 closing fence",
        "    return a + b\n```\n\nExercise 2: write a test\n```python\nx\n```",
        HE_STOP,
        "phi-1.5",
        None,
        "    return a + b\n",
    ),
    (
        "phi-1.5 fence glued to code",
        "    return a + b```\nSome prose.",
        HE_STOP,
        "phi-1.5",
        None,
        "    return a + b\n",
    ),
    (
        "windows newlines",
        "    return a + b\r\n\r\ndef x():\r\n",
        HE_STOP,
        "phi-1",
        None,
        "    return a + b\n",
    ),
    (
        "qa echoes the prompt",
        ECHO + "    return a + b\n\nprint(add(2, 3))",
        HE_STOP,
        "phi-2-qa",
        ECHO,
        "    return a + b\n",
    ),
    (
        "qa echoes inside a fence",
        "```python\n" + ECHO + "    return a + b\n```\nThis adds.",
        HE_STOP,
        "phi-2-qa",
        ECHO,
        "    return a + b\n",
    ),
    (
        "qa without echo keeps the body",
        "    return a + b\n\nExplanation:",
        ("\nExplanation",),
        "phi-2-qa",
        ECHO,
        "    return a + b\n",
    ),
    (
        "echo elsewhere is not stripped",
        "    return a + b  # " + ECHO.splitlines()[0],
        HE_STOP,
        "phi-2-qa",
        ECHO,
        "    return a + b  # def add(a, b):\n",
    ),
    (
        "mbpp program, then tests",
        "def f(x):\n    return x * 2\n\nassert f(2) == 4\n",
        MBPP_STOP,
        "phi-1",
        None,
        "def f(x):\n    return x * 2\n",
    ),
    (
        "mbpp keeps several defs",
        "import math\ndef g(x):\n    return math.sqrt(x)\n\ndef f(x):\n    return g(x)\nprint(f(4))",
        MBPP_STOP,
        "phi-1",
        None,
        "import math\ndef g(x):\n    return math.sqrt(x)\n\ndef f(x):\n    return g(x)\n",
    ),
    (
        "mbpp 3-shot ends at [DONE]",
        "def f(x):\n  return x + 1\n[DONE]\nYou are an expert Python programmer",
        MBPP_STOP,
        "phi-1",
        None,
        "def f(x):\n  return x + 1\n",
    ),
    (
        "mbpp 3-shot [DONE] glued",
        "def f(x):\n  return x + 1[DONE]",
        MBPP_STOP,
        "phi-2",
        None,
        "def f(x):\n  return x + 1\n",
    ),
    (
        "mbpp qa answer in a fence",
        "\n```python\ndef f(x):\n    return -x\n```\nThe function negates.",
        MBPP_STOP,
        "phi-2-qa",
        None,
        "def f(x):\n    return -x\n",
    ),
    (
        "mbpp next docstring",
        'def f():\n    return 1\n"""\nWrite another function',
        MBPP_STOP,
        "phi-1",
        None,
        "def f():\n    return 1\n",
    ),
    ("stop at the very start", "\ndef other():\n    pass", HE_STOP, "phi-1", None, ""),
    ("empty raw", "", HE_STOP, "phi-1", None, ""),
    ("plain with a fence of its own", "```py\nprint('hi')\n```", (), "plain", None, "print('hi')\n"),
    (
        "code format keeps a literal fence line when no stop",
        "    s = '```'\n    return s",
        (),
        "phi-1",
        None,
        "    s = '```'\n    return s\n",
    ),
]


@pytest.mark.parametrize(
    ("raw", "stop", "fmt", "echo", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_golden(raw: str, stop: tuple[str, ...], fmt: str, echo: str | None, expected: str) -> None:
    assert postprocess(raw, stop, fmt, echo=echo) == expected


def test_cut_at_stop_picks_earliest_not_first_listed() -> None:
    assert cut_at_stop("a\nprint(1)\ndef f", ["\ndef ", "\nprint"]) == "a"
    assert cut_at_stop("abc", ["", "zz"]) == "abc"


def test_idempotent_on_its_output() -> None:
    for _, raw, stop, fmt, echo, _ in CASES:
        once = postprocess(raw, stop, fmt, echo=echo)
        assert postprocess(once, stop, "phi-1") == once


# ---------------------------------------------------------------- chat answers


def test_chat_answer_is_cut_at_the_next_alice_turn_then_extracted() -> None:
    from phi_eval.postprocess import chat_program
    from phi_eval.tasks import get_task

    CHAT_STOP = get_task("humaneval").chat_stop  # noqa: N806 - the task file's

    raw = (" Sure, Alice.\n```python\ndef add(a, b):\n    return a + b\n```\nAlice: And a def in the next turn?\n"
           "Bob:\n```python\ndef add(a, b):\n    return a - b\n```")
    assert chat_program(raw, CHAT_STOP["phi-2-chat"], "add") == "def add(a, b):\n    return a + b\n"


def test_chat_answer_is_not_cut_by_the_base_formats_stops() -> None:
    from phi_eval.postprocess import chat_program
    from phi_eval.tasks import get_task

    CHAT_STOP = get_task("humaneval").chat_stop  # noqa: N806 - the task file's

    raw = "```python\nimport math\n\n# helper first\ndef r(x):\n    return math.sqrt(x)\n\ndef area(x):\n    return r(x) ** 2\n```"
    program = chat_program(raw, CHAT_STOP["chat"], "area")
    assert program == "import math\n\n\ndef r(x):\n    return math.sqrt(x)\n\n\ndef area(x):\n    return r(x) ** 2\n"
    assert postprocess(raw, HE_STOP, "plain") != program  # the base path would stop at "\n#"


def test_mbpp_chat_answer_uses_the_functions_its_tests_call() -> None:
    from phi_eval.postprocess import chat_program

    raw = "Here:\n```python\ndef helper(s):\n    return s[::-1]\n\ndef rev(s):\n    return helper(s)\n\nprint(rev('ab'))\n```"
    program = chat_program(raw, (), None, ('assert rev("ab") == "ba"',))
    assert program == "def helper(s):\n    return s[::-1]\n\n\ndef rev(s):\n    return helper(s)\n"
