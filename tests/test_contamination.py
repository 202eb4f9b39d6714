"""The contamination guard's match kinds: each one it can report is named in KINDS, and each is reachable."""

from __future__ import annotations

from phi_eval.contamination import KINDS, SHINGLE, EvalIndex, TrainItem


def test_every_kind_the_guard_reports_is_declared() -> None:
    prompt = "def add(a, b):\n    \"\"\"Return the sum of a and b, for every pair of numbers given.\"\"\"\n"
    solution = "    total = a + b\n    assert isinstance(total, int) or isinstance(total, float)\n    return total\n"
    index = EvalIndex(names=("humaneval",))
    index.add("HumanEval/0", prompt, solution)
    filler = "x = 1\n" * 3
    items = {
        "task id": TrainItem("anything", "else", "line 1", task_id="HumanEval/0"),
        "prompt": TrainItem(prompt, "pass", "line 2"),
        "solution": TrainItem("def other():", solution, "line 3"),
        "prompt text": TrainItem(filler + prompt[: SHINGLE + 10], "pass", "line 4"),
        "solution text": TrainItem("def other():", filler + solution + filler, "line 5"),
    }
    got = {expected: getattr(index.match(item), "kind", None) for expected, item in items.items()}
    assert got == {k: k for k in items}
    assert set(got.values()) == set(KINDS)
    assert index.match(TrainItem("def unrelated():", "    return 42", "line 6")) is None
