"""Shared fixtures: real data, a tiny real Phi model, and the Docker engine check."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# ../shared beside the project (a clone), or one level further up (a git worktree under wt/)
SHARED = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared")
MBPP_PATH = SHARED / "data" / "mbpp" / "mbpp.jsonl"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def mbpp_path() -> Path:
    if not MBPP_PATH.is_file():
        if IN_CI:
            pytest.fail(f"MBPP data missing at {MBPP_PATH}")
        pytest.skip(f"MBPP data not found at {MBPP_PATH}")
    return MBPP_PATH


@pytest.fixture(scope="session")
def tiny_phi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built tiny Phi model folder, shared by the session's tests."""
    from tiny_phi import build_tiny_phi

    return build_tiny_phi(tmp_path_factory.mktemp("tiny-phi") / "model")


def docker_available() -> str | None:
    """None when an engine answers, else the reason it does not."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"no Docker engine answers ({type(exc).__name__})"


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip outside CI when no engine answers; under CI=true a missing engine is a failure."""
    reason = docker_available()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the Docker tests")
        pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker") and "docker_engine" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("docker_engine")
