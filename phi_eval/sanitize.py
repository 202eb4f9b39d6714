"""A chat answer (prose and markdown code blocks) -> the Python program to execute. Pure, no I/O.

Chat models answer "Here is the function: ```python ...``` Example usage: ...". What gets scored is
the program they meant, as EvalPlus's sanitizer extracts it, with `ast` instead of tree-sitter:

1. the Python code blocks of the answer (fenced with ```python, ```py or a bare ```; blocks tagged
   with another language, e.g. ```bash or ```text, are not code); no Python block: the whole answer;
   a block (or answer) that does not parse is cut to its longest span of lines that does;
2. the primary block is the last one that defines the entry point with a real body (a later block
   is usually the corrected version); when none defines it, the block with the most code;
3. from it, the entry point and everything it reaches: the functions, classes and module-level
   assignments it names, looked up in the primary block first and then in the other blocks (a
   helper defined in a second block); with no entry point defined, every definition of the block;
4. imports: those of the primary block, those of other blocks that bind a name the kept code uses,
   and, for a name still unbound (`List`), the problem's own import that binds it; likewise a
   helper the problem's prompt defines and the answer calls without restating it (HumanEval/38's
   `encode_cyclic`) comes from the prompt;
5. everything else goes: example calls, prints, asserts, `if __name__ == "__main__":` blocks.

The result is a whole program (scored as a solution, never appended to the prompt); "" when the
answer holds no code.
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PYTHON_TAGS = frozenset({"", "python", "python3", "py", "py3", "pycon", "ipython"})
_FENCE = re.compile(r"^[ \t]*(`{3,})[ \t]*([A-Za-z0-9_+#.-]*)")
_CODE_START = re.compile(r"^(?:def|class|import|from|async|@)\b")
_BUILTINS = frozenset(dir(builtins))
_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign | ast.AnnAssign


def parses(code: str) -> bool:
    """True when `code` is syntactically valid Python (compile-time warnings silenced)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def code_blocks(answer: str) -> list[tuple[str, str]]:
    """(language tag, code) of every fenced block, dedented; an unclosed last fence runs to the end.

    Fences follow CommonMark: a block closes at a line of only backticks (at least as many as opened
    it) indented at most 3 spaces more than the opening fence, so a ``` inside an indented docstring
    is code, not the end of the block. A one-line ```python code``` counts as a block too.
    """
    blocks: list[tuple[str, str]] = []
    opened: tuple[str, int, int] | None = None  # (tag, indent, backticks) of the open fence
    body: list[str] = []
    for line in answer.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" \t"))
        if opened is None:
            fence = _FENCE.match(line)
            if not fence:
                continue
            ticks = len(fence.group(1))
            rest = stripped[ticks:]
            inline = rest.find("`" * ticks)
            if inline > 0 and " " in rest[:inline]:  # ```python code``` on one line
                tag, _, code = rest[:inline].partition(" ")
                blocks.append((tag.lower(), code.strip()))
                continue
            opened, body = (fence.group(2).lower(), indent, ticks), []
            continue
        tag, open_indent, ticks = opened
        if stripped and set(stripped) == {"`"} and len(stripped) >= ticks and indent <= open_indent + 3:
            blocks.append((tag, _dedent(body)))
            opened = None
            continue
        body.append(line)
    if opened is not None and any(b.strip() for b in body):
        blocks.append((opened[0], _dedent(body)))
    return blocks


def _dedent(lines: list[str]) -> str:
    """Remove the indentation every code line shares (a fence inside a list item), and nothing else:
    unlike textwrap.dedent, whitespace inside docstrings stays as the model wrote it."""
    code = [line for line in lines if line.strip()]
    prefix = min((line[: len(line) - len(line.lstrip())] for line in code), key=len, default="")
    if not prefix or not all(line.startswith(prefix) for line in code):
        return "\n".join(lines)
    return "\n".join(line[len(prefix) :] if line.startswith(prefix) else line.lstrip(" \t") for line in lines)


def _syntax_error_line(code: str) -> int | None:
    """None when `code` parses, else the (1-based) line of its first syntax error (0: unknown)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except SyntaxError as exc:
        return exc.lineno or 0
    except (ValueError, MemoryError, RecursionError):
        return 0
    return None


def longest_valid_span(text: str, max_tries: int = 2000) -> str:
    """The longest run of lines that parses (counted in non-blank lines), as EvalPlus's code_extract.

    Spans start at a line that opens code (def, class, import, from, @) when there is one, else at
    any unindented line. From each start the whole rest is tried first, and a failure shortens the
    span to end before the line the parser stopped at (no longer span from that start gets past
    it), so an answer that is all code parses once and a long messy one costs a few parses per start.
    """
    lines = text.split("\n")
    if parses(text):
        return text
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    if not starts:
        starts = [i for i, line in enumerate(lines) if line.strip() and not line[0].isspace()]
    filled = [0] * (len(lines) + 1)  # filled[j]: non-blank lines before j
    for j, line in enumerate(lines):
        filled[j + 1] = filled[j] + bool(line.strip())
    best, span, tries = 0, (0, 0), 0
    for i in starts:
        j = len(lines)
        while j > i and filled[j] - filled[i] > best and tries < max_tries:
            tries += 1
            error = _syntax_error_line("\n".join(lines[i:j]))
            if error is None:
                best, span = filled[j] - filled[i], (i, j)
                break
            j = min(j - 1, i + error - 1) if error > 0 else j - 1
    return "\n".join(lines[span[0] : span[1]])


@dataclass
class _Unit:
    """One parsed piece of code: its text, imports, and top-level definitions by name (last wins)."""

    index: int
    source: str
    imports: list[ast.stmt] = field(default_factory=list)
    defs: dict[str, _Def] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.source.split("\n")


def _parse_unit(index: int, code: str) -> _Unit | None:
    source = code if parses(code) else longest_valid_span(code)
    if not source.strip():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    unit = _Unit(index, source)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            unit.imports.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            unit.defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for name in _assigned_names(node):
                unit.defs[name] = node
    return unit


def _assigned_names(node: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _bound_by_import(node: ast.stmt) -> list[str]:
    assert isinstance(node, (ast.Import, ast.ImportFrom))
    return [(a.asname or a.name).split(".")[0] for a in node.names]


def _free_names(node: ast.AST) -> set[str]:
    """Names a definition reads from the module (for a function: minus its parameters and locals)."""
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        declared_global = {g for n in ast.walk(node) if isinstance(n, ast.Global) for g in n.names}
        args = node.args
        params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        stores = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        loads -= (params | stores) - declared_global
    return loads


def _is_stub(node: _Def) -> bool:
    """A function whose body is only a docstring, `pass` or `...` (a restated signature, not an answer)."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for stmt in node.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring or Ellipsis
        return False
    return True


def _segment(unit: _Unit, node: ast.stmt) -> str:
    """The node's exact source text, decorators included."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])
        return "\n".join(unit.lines[start - 1 : node.end_lineno])
    return ast.get_source_segment(unit.source, node) or ""


def entry_points_of(entry_point: str | None, tests: Iterable[str] = ()) -> list[str]:
    """The functions a problem's tests call: HumanEval names one; MBPP's are read off its asserts and
    set-up code (Mbpp/367 builds a tree with the answer's `Node` class). Builtins do not count,
    unless the tests call nothing else (Mbpp/126 asks for a function named `sum`)."""
    if entry_point:
        return [entry_point]
    called: list[str] = []
    for test in tests:
        if not test or not parses(test):
            continue
        for node in ast.walk(ast.parse(test)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in called:
                called.append(node.func.id)
    return [n for n in called if n not in _BUILTINS] or called


def _python_units(answer: str) -> list[_Unit]:
    codes = [code for tag, code in code_blocks(answer) if tag in PYTHON_TAGS]
    if not codes:  # no Python block (none at all, or only ```text / ```bash ones): the whole answer
        codes = [answer]
    units = [_parse_unit(i, code) for i, code in enumerate(codes)]
    return [u for u in units if u is not None]


def _primary(units: Sequence[_Unit], entry_points: Sequence[str]) -> _Unit:
    defining = [u for u in units if any(e in u.defs for e in entry_points)]
    real = [u for u in defining if not all(_is_stub(u.defs[e]) for e in entry_points if e in u.defs)]
    if real or defining:
        return (real or defining)[-1]
    return max(units, key=lambda u: sum(1 for line in u.lines if line.strip()))


def extract_program(answer: str, entry_points: Sequence[str] = (), context: str = "") -> str:
    """The program a chat answer means (see the module docstring). `context`: the problem's own code,
    whose imports fill in names the answer uses without importing."""
    answer = answer.replace("\r\n", "\n")
    units = _python_units(answer)
    if not units:
        return ""
    primary = _primary(units, entry_points)
    given = _parse_unit(-1, context) if context and parses(context) else None
    pool: dict[str, tuple[_Unit, _Def]] = {}
    if given is not None:  # the problem's own helpers, lowest priority, never its stub of the entry point
        pool.update({n: (given, d) for n, d in given.defs.items() if n not in entry_points and not _is_stub(d)})
    for unit in [*[u for u in units if u is not primary], primary]:  # the primary block wins
        for name, node in unit.defs.items():
            pool[name] = (unit, node)

    roots = [e for e in entry_points if e in primary.defs]
    if roots:
        keep: dict[int, tuple[_Unit, _Def]] = {}
        todo = list(roots)
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen or name not in pool:
                continue
            seen.add(name)
            unit, node = pool[name]
            keep[id(node)] = (unit, node)
            todo.extend(_free_names(node))
        kept = sorted(keep.values(), key=lambda un: (un[0] is primary, un[0].index, un[1].lineno))
    else:
        nodes = {id(n): n for n in primary.defs.values()}.values()
        kept = sorted(((primary, n) for n in nodes), key=lambda un: un[1].lineno)

    used: set[str] = set()
    for _, node in kept:
        used |= _free_names(node)
    defined = {name for _, node in kept for name in _def_names(node)}
    imports: list[str] = []
    bound: set[str] = set()

    def add_import(unit_source: str, node: ast.stmt) -> None:
        text = ast.get_source_segment(unit_source, node) or ""
        if text and text not in imports:
            imports.append(text)
            bound.update(_bound_by_import(node))

    for node in primary.imports:
        add_import(primary.source, node)
    for unit in units:
        if unit is not primary:
            for node in unit.imports:
                if set(_bound_by_import(node)) & (used - bound - defined):
                    add_import(unit.source, node)
    if given is not None:
        for node in given.imports:
            if set(_bound_by_import(node)) & (used - bound - defined - _BUILTINS):
                add_import(given.source, node)

    parts = ["\n".join(imports)] if imports else []
    parts += [_segment(unit, node) for unit, node in kept]
    program = "\n\n\n".join(p.strip("\n") for p in parts if p.strip())
    return program + "\n" if program else ""


def _def_names(node: _Def) -> list[str]:
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return _assigned_names(node)
    return [node.name]
