"""Static checks on every completion: allowed imports, security lint, hallucinated stdlib APIs.

`analyze` is the one entry point the pipeline calls per sample. The prompt and the completion
are analysed as one program (HumanEval's completion is the body of the prompt's function), but
only what lies on the completion's lines is reported, with line 1 = the completion's first line.
Completions are untrusted text: nothing here imports or runs them, and no input makes it raise.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from phi_eval.checks.api import find_hallucinated_apis
from phi_eval.checks.imports import (
    DYNAMIC,
    RELATIVE,
    import_verdict,
    normalize_allowed,
    top_level,
)
from phi_eval.checks.security import CATEGORIES, SEVERITIES, security_findings

__all__ = ["CATEGORIES", "SEVERITIES", "analyze"]

MAX_CHARS = 1_000_000  # far beyond any generation budget; bigger input is scanned, not linted
# (measured: bandit costs ~13 s per MB of code, ~0.3 s per MB of comments; the AST pass is cheap)
_MAX_SALVAGE = 50  # parse attempts when cutting a truncated completion back to valid code

# Text the checks could not analyse (too large, or past the point where parsing gave up) is never
# taken as clean: imports are still found textually, and text that could import or run anything
# marks the sample `unchecked`, which every --fail-on policy counts as a violation.
_TEXT_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+([A-Za-z_.][\w.]*)[ \t]+import\b|import[ \t]+([A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*))"
    r"|(?:__import__|import_module)[ \t]*\([ \t]*[rbuf]*['\"]([\w.]*)",
    re.M,
)
_TEXT_RISK = re.compile(
    r"\b(?:import|__import__|import_module|eval|exec|compile|system|popen|Popen|spawn\w*|shell"
    r"|pickle|marshal|open|getattr|globals|builtins|subprocess|socket|ctypes)\b"
)


@dataclass(frozen=True)
class _Program:
    tree: ast.Module | None  # None when not even a prefix of the completion parses
    source: str  # the text `tree` came from (possibly cut back)
    offset: int  # lines of the prompt before the completion's first line
    error: str | None  # why the full program did not parse, in completion line numbers


def _describe(exc: BaseException, offset: int) -> str:
    if isinstance(exc, SyntaxError):
        line = (exc.lineno or 0) - offset
        where = "" if exc.lineno is None else f" line {line}" if line >= 1 else " (in the prompt)"
        return f"{type(exc).__name__}: {exc.msg}{where}"
    if isinstance(exc, RecursionError):
        return "RecursionError: too deeply nested to analyse"
    if isinstance(exc, MemoryError):
        return "MemoryError: too deeply nested or too large to analyse"
    return f"{type(exc).__name__}: {exc}"


def _parse(prompt: str, completion: str) -> _Program:
    """Parse prompt+completion; on a syntax error, keep the longest completion prefix that parses.

    Generations are often cut mid-statement by the token budget; the code before the cut still
    says which modules were imported, so it is analysed and the error is reported alongside.
    """
    offset = prompt.count("\n")
    lines = (prompt + completion).splitlines(keepends=True)
    source = "".join(lines)
    error: str | None = None
    keep = len(lines)
    for _ in range(_MAX_SALVAGE):
        try:
            with warnings.catch_warnings():  # invalid escapes in model text are not our warnings
                warnings.simplefilter("ignore")
                return _Program(ast.parse(source), source, offset, error)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            if error is None:
                error = _describe(exc, offset)
            if not isinstance(exc, SyntaxError):
                break
            bad = exc.lineno or keep
            keep = min(bad - 1, keep - 1)
            if keep <= offset:
                break
            source = "".join(lines[:keep])
    return _Program(None, "", offset, error or "SyntaxError: could not be parsed")


def _empty(allowed_only: bool, error: str) -> dict[str, Any]:
    return {
        "imports": [],
        "allowed_imports_only": allowed_only,
        "security": [],
        "hallucinated_apis": [],
        "parse_error": error,
        "unchecked": None,
    }


def text_imports(text: str) -> set[str]:
    """Top-level module names that `text` imports, found without parsing it (for unparsed text)."""
    names: set[str] = set()
    for match in _TEXT_IMPORT.finditer(text):
        if match.group(1) is not None:
            names.add(top_level(match.group(1)) if not match.group(1).startswith(".") else RELATIVE)
        elif match.group(2) is not None:
            names.update(top_level(part.strip()) for part in match.group(2).split(","))
        else:
            names.add(top_level(match.group(3)) if match.group(3) else DYNAMIC)
    return names


def _unchecked(result: dict[str, Any], text: str, why: str, allowed: frozenset[str]) -> dict[str, Any]:
    """Fold what a textual scan of unanalysed `text` finds into `result`; mark it unchecked when that
    text could import or run anything (then no policy may treat the sample as clean)."""
    found = text_imports(text)
    if found:
        result["imports"] = sorted(set(result["imports"]) | found)
        result["allowed_imports_only"] = all(name in allowed for name in result["imports"])
    if found or _TEXT_RISK.search(text):
        result["unchecked"] = why
        result["allowed_imports_only"] = False
    return result


def analyze(
    completion: str, *, prompt: str = "", allowed: Iterable[str] = ()
) -> dict[str, Any]:
    """The per-sample check fields: imports, allowed_imports_only, security, hallucinated_apis, parse_error.

    `allowed` is the task file's `[checks] allowed_imports` (or --allowed-imports); the list lives
    there only, so by default nothing is allowed.

    `prompt` is the text the completion continues (HumanEval) or "" when the completion is the
    whole program (MBPP, full solutions). Line numbers in findings count from the completion.
    """
    if not isinstance(completion, str) or not isinstance(prompt, str):
        return _empty(True, f"TypeError: completion and prompt must be str, got {type(completion).__name__}")
    allowed_set = normalize_allowed(allowed)
    if len(prompt) + len(completion) > MAX_CHARS:
        size = len(prompt) + len(completion)
        why = f"too large to analyse: {size} characters (limit {MAX_CHARS})"
        result = _unchecked(_empty(True, f"TooLarge: {size} characters; not linted"), completion, why, allowed_set)
        return result | {"unchecked": why, "allowed_imports_only": False}  # never clean, whatever it holds
    program = _parse(prompt, completion)
    rest = _unparsed_rest(prompt + completion, program)
    if program.tree is None:
        result = _empty(True, program.error or "SyntaxError")
        return _unchecked(result, rest, "the completion does not parse; it was scanned as text only", allowed_set)
    first = program.offset + 1
    try:
        with warnings.catch_warnings():  # bandit re-parses (SyntaxWarning) and loads plugins (deprecations)
            warnings.simplefilter("ignore")
            nodes = list(ast.walk(program.tree))  # one walk, shared by every rule (same order)
            imports, allowed_only = import_verdict(program.tree, first, allowed_set, nodes)
            findings = security_findings(program.tree, program.source, first, nodes)
            apis = find_hallucinated_apis(program.tree, first, nodes)
    except (RecursionError, MemoryError, ValueError) as exc:
        result = _empty(True, _describe(exc, program.offset))
        return _unchecked(result, completion, f"could not be analysed ({result['parse_error']})", allowed_set)
    for item in findings:
        item["line"] -= program.offset
    result = {
        "imports": imports,
        "allowed_imports_only": allowed_only,
        "security": findings,
        "hallucinated_apis": apis,
        "parse_error": program.error,
        "unchecked": None,
    }
    if rest.strip():
        first_lost = program.source.count("\n") - program.offset + 1
        result = _unchecked(result, rest, f"lines from {first_lost} on do not parse and were scanned as text only", allowed_set)
    return result


def _unparsed_rest(full: str, program: _Program) -> str:
    """The part of the completion that the parsed prefix left out (salvage cut it off), if any."""
    if program.tree is None:
        return full.split("\n", program.offset)[-1] if program.offset else full
    return full[len(program.source) :]
