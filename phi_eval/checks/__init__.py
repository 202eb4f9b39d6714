"""Static checks on every completion: allowed imports, security lint, hallucinated stdlib APIs.

`analyze` is the one entry point the pipeline calls per sample. The prompt and the completion
are analysed as one program (HumanEval's completion is the body of the prompt's function), but
only what lies on the completion's lines is reported, with line 1 = the completion's first line.
Completions are untrusted text: nothing here imports or runs them, and no input makes it raise.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from phi_eval.checks.api import find_hallucinated_apis
from phi_eval.checks.imports import DEFAULT_ALLOWED_IMPORTS, import_verdict, normalize_allowed
from phi_eval.checks.security import CATEGORIES, SEVERITIES, security_findings

__all__ = ["CATEGORIES", "DEFAULT_ALLOWED_IMPORTS", "SEVERITIES", "analyze"]

MAX_CHARS = 1_000_000  # far beyond any generation budget; bigger input is reported, not parsed
_MAX_SALVAGE = 50  # parse attempts when cutting a truncated completion back to valid code


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
    }


def analyze(
    completion: str, *, prompt: str = "", allowed: Iterable[str] = DEFAULT_ALLOWED_IMPORTS
) -> dict[str, Any]:
    """The per-sample check fields: imports, allowed_imports_only, security, hallucinated_apis, parse_error.

    `prompt` is the text the completion continues (HumanEval) or "" when the completion is the
    whole program (MBPP, full solutions). Line numbers in findings count from the completion.
    """
    if not isinstance(completion, str) or not isinstance(prompt, str):
        return _empty(True, f"TypeError: completion and prompt must be str, got {type(completion).__name__}")
    if len(prompt) + len(completion) > MAX_CHARS:
        return _empty(
            True, f"TooLarge: {len(prompt) + len(completion)} characters (limit {MAX_CHARS}); not analysed"
        )
    allowed_set = normalize_allowed(allowed)
    program = _parse(prompt, completion)
    if program.tree is None:
        return _empty(True, program.error or "SyntaxError")
    first = program.offset + 1
    try:
        with warnings.catch_warnings():  # bandit re-parses (SyntaxWarning) and loads plugins (deprecations)
            warnings.simplefilter("ignore")
            imports, allowed_only = import_verdict(program.tree, first, allowed_set)
            findings = security_findings(program.tree, program.source, first)
            apis = find_hallucinated_apis(program.tree, first)
    except (RecursionError, MemoryError, ValueError) as exc:
        return _empty(True, _describe(exc, program.offset))
    for item in findings:
        item["line"] -= program.offset
    return {
        "imports": imports,
        "allowed_imports_only": allowed_only,
        "security": findings,
        "hallucinated_apis": apis,
        "parse_error": program.error,
    }
