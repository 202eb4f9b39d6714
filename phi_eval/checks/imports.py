"""Which modules a completion imports, found statically, and whether they are all allowed.

The Phi-1 model card restricts generated code to a few stdlib modules; a model can import in
many spellings, so besides `import` statements this also finds `__import__("x")`,
`importlib.import_module("x")` (any alias) and imports hidden in literal `exec("import x")`.
A name that cannot be resolved statically (`__import__(name)`) is reported as `<dynamic>`,
which is never allowed: a check that a model can evade with string building is no check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence

DYNAMIC = "<dynamic>"  # an import whose module name is computed at run time
RELATIVE = "."  # `from . import x`: meaningless in a standalone program, never allowed

_IMPORT_FUNCS = {"__import__", "import_module"}  # called bare, or as importlib.<name>
_EXEC_FUNCS = {"exec", "compile"}
_MAX_EXEC_DEPTH = 3


def top_level(name: str) -> str:
    """`os.path` -> `os`; relative and dynamic markers pass through."""
    if name in (DYNAMIC, RELATIVE) or name.startswith("."):
        return RELATIVE if name.startswith(".") else name
    return name.split(".", 1)[0]


def normalize_allowed(allowed: Iterable[str]) -> frozenset[str]:
    """The allow-list as top-level names; a "a,b,c" string is split; blanks (from `a,,b`) are dropped."""
    if isinstance(allowed, str):
        allowed = allowed.split(",")
    return frozenset(top_level(a.strip()) for a in allowed if a and a.strip())


def _const_str(node: ast.AST) -> str | None:
    """Fold a string built from literals (`"o" + "s"`, f"os") to its value; None if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _const_str(node.left), _const_str(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_const_str(v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(parts)  # type: ignore[arg-type]
    return None


def _importlib_aliases(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str]]:
    """Names bound to the importlib module, and names bound to its import functions."""
    modules, funcs = {"importlib"}, set(_IMPORT_FUNCS)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "importlib" and alias.asname:
                    modules.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module in ("importlib", "builtins") and not node.level:
            for alias in node.names:
                if alias.name in _IMPORT_FUNCS:
                    funcs.add(alias.asname or alias.name)
    return modules, funcs


def _dynamic_import_name(call: ast.Call, modules: set[str], funcs: set[str]) -> str | None:
    """The module a call imports (`<dynamic>` if computed), or None when it is no import call."""
    func = call.func
    is_import = (isinstance(func, ast.Name) and func.id in funcs) or (
        isinstance(func, ast.Attribute)
        and func.attr in _IMPORT_FUNCS
        and isinstance(func.value, ast.Name)
        and func.value.id in modules | {"builtins", "__builtins__"}
    )
    if not is_import:
        return None
    if not call.args:
        return DYNAMIC
    name = _const_str(call.args[0])
    if name is None:
        return DYNAMIC
    if name.startswith("."):
        return RELATIVE
    return name or DYNAMIC


def find_imports(tree: ast.AST, first_line: int = 1, _depth: int = 0,
                 nodes: Sequence[ast.AST] | None = None) -> list[tuple[str, int]]:
    """(full module name, line) for every import at or after `first_line`, in source order.
    `nodes`: ast.walk(tree) as a list, where the caller has it already."""
    nodes = list(ast.walk(tree)) if nodes is None else nodes
    modules, funcs = _importlib_aliases(nodes)
    found: list[tuple[str, int]] = []
    for node in nodes:
        line = getattr(node, "lineno", 0)
        if line < first_line:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, line) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((RELATIVE if node.level else (node.module or RELATIVE), line))
        elif isinstance(node, ast.Call):
            name = _dynamic_import_name(node, modules, funcs)
            if name is not None:
                found.append((name, line))
            elif (
                _depth < _MAX_EXEC_DEPTH
                and isinstance(node.func, ast.Name)
                and node.func.id in _EXEC_FUNCS
                and node.args
            ):
                code = _const_str(node.args[0])
                if code is not None:
                    try:
                        inner = ast.parse(code)
                    except (SyntaxError, ValueError):
                        continue
                    found.extend((name, line) for name, _ in find_imports(inner, 1, _depth + 1))
    found.sort(key=lambda item: item[1])
    return found


def import_verdict(tree: ast.AST | None, first_line: int, allowed: frozenset[str],
                   nodes: Sequence[ast.AST] | None = None) -> tuple[list[str], bool]:
    """Sorted top-level names imported from `first_line` on, and whether all are allowed."""
    if tree is None:
        return [], True
    names = sorted({top_level(name) for name, _ in find_imports(tree, first_line, nodes=nodes)})
    return names, all(name in allowed for name in names)
