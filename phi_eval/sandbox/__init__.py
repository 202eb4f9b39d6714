"""Executors: run ExecJobs where model-written code cannot reach the host or the verdict.

`docker` (the default) keeps a warm pool of hardened containers; `local` runs the same trusted
runner as plain subprocesses and exists only as an explicit, loudly-warned choice.
Heavy imports (docker) happen only inside the chosen backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from phi_eval.jobs import ExecJob, ExecResult


class Executor(Protocol):
    """Runs jobs and reports each verdict as it arrives (in any order, from the caller's thread)."""

    def run(self, jobs: Iterable[ExecJob], on_result: Callable[[ExecResult], None]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


SANDBOXES = ("docker", "local")


def get_executor(
    kind: str = "docker",
    *,
    workers: int | None = None,
    docker_hosts: list[str] | None = None,
) -> Executor:
    """Build the executor named by --sandbox; raises PhiEvalError when it cannot start."""
    from phi_eval.errors import PhiEvalError

    if kind == "docker":
        from phi_eval.sandbox.docker import DockerExecutor

        return DockerExecutor(workers=workers, hosts=docker_hosts or [])
    if kind == "local":
        from phi_eval.sandbox.local import LocalExecutor

        return LocalExecutor(workers=workers)
    raise PhiEvalError(f"unknown sandbox {kind!r}; choose one of {', '.join(SANDBOXES)}")


def preflight(kind: str, *, docker_hosts: list[str] | None = None) -> None:
    """Fail in one line before any work is done when the chosen sandbox cannot run (no engine)."""
    from phi_eval.errors import PhiEvalError

    if kind == "docker":
        from phi_eval.sandbox.docker import connect

        for client in connect(docker_hosts or []):
            client.close()
    elif kind != "local":
        raise PhiEvalError(f"unknown sandbox {kind!r}; choose one of {', '.join(SANDBOXES)}")
