"""Where the project's data folders live, both in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    """A checkout keeps `tasks/` and `sandbox/` beside the package; a wheel carries them inside it."""
    for candidate in (_PKG.parent / name, _PKG / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"phi-eval's {name}/ folder is missing; reinstall phi-eval")


def tasks_dir() -> Path:
    return _find("tasks")


def sandbox_dir() -> Path:
    return _find("sandbox")
