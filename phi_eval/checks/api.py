"""Hallucinated stdlib APIs: `math.foo`, `collections.Mapping` on 3.10+, `from itertools import pairwize`.

Models trained on old code call names that no longer (or never) existed. We check each attribute a
completion reads from a stdlib module against the real module on the running Python. Only stdlib
modules are imported, here in the trusted host process, and never the completion's own code;
modules whose import has visible side effects are skipped.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache

# Importing these does something (opens a browser, prints, starts Tk demos): never import them.
_NEVER_IMPORT = frozenset(
    {"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo", "turtle"}
)
_MISSING = object()


def _is_stdlib(name: str) -> bool:
    top = name.split(".", 1)[0]
    return top in sys.stdlib_module_names and top not in _NEVER_IMPORT


@lru_cache(maxsize=512)
def _load(name: str) -> types.ModuleType | None:
    """The stdlib module `name`, or None when it cannot be imported here (e.g. `msvcrt` on Linux)."""
    if not _is_stdlib(name):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any failure means "cannot check", never "hallucinated"
        return None


def _attr(obj: object, owner: str, attr: str) -> object:
    """obj.attr, or a submodule `owner.attr` (packages do not always import their submodules)."""
    value = getattr(obj, attr, _MISSING)
    if value is not _MISSING:
        return value
    if isinstance(obj, types.ModuleType) and hasattr(obj, "__path__"):
        try:
            if importlib.util.find_spec(f"{owner}.{attr}") is not None:
                return _load(f"{owner}.{attr}") or types.ModuleType(f"{owner}.{attr}")
        except (ImportError, ValueError):
            pass
    return _MISSING


def _rebound_names(nodes: Iterable[ast.AST]) -> set[str]:
    """Names the program assigns or defines itself; an alias rebound like this is not a module."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _chain(node: ast.Attribute) -> tuple[str, list[tuple[str, int]]] | None:
    """`a.b.c` -> ("a", [("b", line), ("c", line)]); None when the base is not a plain name."""
    attrs: list[tuple[str, int]] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        attrs.append((current.attr, current.lineno))
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, attrs[::-1]


def find_hallucinated_apis(tree: ast.AST, first_line: int = 1, nodes: Sequence[ast.AST] | None = None) -> list[str]:
    """Sorted "module.attr" names read at or after `first_line` that the real module lacks.
    `nodes`: ast.walk(tree) as a list (breadth first), where the caller has it already."""
    nodes = list(ast.walk(tree)) if nodes is None else nodes
    aliases: dict[str, str] = {}  # local name -> stdlib module it is bound to
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_stdlib(alias.name):
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".", 1)[0]
                        aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and _is_stdlib(node.module):
            module = _load(node.module)
            for alias in node.names:
                if alias.name == "*" or module is None:
                    continue
                value = _attr(module, node.module, alias.name)
                if value is _MISSING and node.lineno >= first_line:
                    found.add(f"{node.module}.{alias.name}")
                elif isinstance(value, types.ModuleType):
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for name in _rebound_names(nodes):
        aliases.pop(name, None)
    if not aliases:
        return sorted(found)
    inner: set[int] = set()  # ids of attributes inside a longer chain, walked with their outermost
    for node in nodes:  # breadth first: an outer attribute comes before its inner ones
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        if isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
        if not isinstance(node.ctx, ast.Load):
            continue
        chain = _chain(node)
        if chain is None or chain[0] not in aliases:
            continue
        owner = aliases[chain[0]]
        obj: object = _load(owner)
        if obj is None:
            continue
        for attr, line in chain[1]:
            value = _attr(obj, owner, attr)
            if value is _MISSING:
                if line >= first_line:
                    found.add(f"{owner}.{attr}")
                break
            # Follow modules and classes only: an instance's attributes are not known statically.
            if isinstance(value, types.ModuleType):
                owner, obj = f"{owner}.{attr}", value
            elif isinstance(value, type) and isinstance(obj, types.ModuleType):
                owner, obj = f"{owner}.{attr}", value
            else:
                break
    return sorted(found)
