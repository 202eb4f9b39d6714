"""The Docker engine side of the sandbox: connecting, the hardened container options, labels and
sweeping what a crashed run left behind.

Every container phi-eval starts is labelled with its owner (host and pid) and its executor, so a
later run removes the containers of a process that is gone, and one executor removes its own
without touching another's. What a container is allowed is all in `container_options`: no
network, a read-only root, no capabilities beyond those the runner needs to switch uids, tight
process, memory and IPC limits (README.md, "The sandbox").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.sandbox.uids import PROCESS_BLOCKS, sandbox_uids

if TYPE_CHECKING:
    from docker import DockerClient

LABEL = "phi-eval"
OWNER_LABEL = "phi-eval.owner-pid"
HOST_LABEL = "phi-eval.owner-host"
EXECUTOR_LABEL = "phi-eval.executor"  # one executor's containers, among others of the same process
RUNNER_CMD = ["python3", "-I", "-S", "-u", "/opt/phi_eval/runner"]


def engine_error(exc: BaseException) -> bool:
    """An error talking to the engine (API error, lost connection), as opposed to a bug of ours."""
    import docker.errors
    import requests.exceptions

    return isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException, OSError))


def engine_lost(client: DockerClient, exc: BaseException) -> PhiEvalError | None:
    """The one line for an engine that stopped answering mid-run; None while it still answers."""
    try:
        client.ping()
        return None
    except Exception:  # noqa: BLE001 - any failure to answer is the engine being gone
        where = getattr(client.api, "base_url", "") or os.environ.get("DOCKER_HOST") or "the Docker socket"
        return PhiEvalError(
            f"the Docker engine ({where}) stopped answering mid-run ({type(exc).__name__}); the results "
            "written so far are kept: start the engine again and run the same command with --resume"
        )


def connect(hosts: Iterable[str] = ()) -> list[DockerClient]:
    """One client per --docker-host URL, or one from the environment (DOCKER_HOST, else the socket)."""
    import docker
    import docker.errors

    urls = list(hosts) or [None]
    clients = []
    for url in urls:
        where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.DockerClient(base_url=url, version="auto") if url else docker.from_env()
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            for c in clients:
                c.close()
            raise PhiEvalError(
                f"no Docker engine answers at {where} ({type(exc).__name__}); start one with "
                "`sudo dockerd &` (or `sudo systemctl start docker`), set DOCKER_HOST, "
                "or pass --sandbox local to run without isolation"
            ) from None
        clients.append(client)
    return clients


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(client: DockerClient) -> int:
    """Remove phi-eval containers this machine started from processes that are gone (after a crash)."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        labels = container.labels or {}
        if labels.get(HOST_LABEL) != socket.gethostname():
            continue
        try:
            pid = int(labels.get(OWNER_LABEL, ""))
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                container.remove(force=True)
                removed += 1
            except Exception:  # noqa: BLE001 - already gone or being removed
                pass
    return removed



# No System V IPC object or POSIX message queue can be made at all (they outlive processes and
# would be charged to the container's memory); shared memory is removed once unattached.
IPC_SYSCTLS = {
    "kernel.shmmni": "0",
    "kernel.msgmni": "0",
    "kernel.sem": "250 32000 32 0",
    "fs.mqueue.queues_max": "0",
    "kernel.shm_rmid_forced": "1",
}


def container_options(
    image: str, memory_mb: int, *, pids_limit: int = 256, owner: str = "",
    uids: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """The hardening every sandbox container gets (README.md, "The sandbox"); `uids` is the
    container's own range (UidRanges), by default the first range of this process."""
    from docker.types import LogConfig, Ulimit

    test_uid, cand_uid, n_cand = uids or sandbox_uids(os.getpid() % PROCESS_BLOCKS, 0)
    return {
        "image": image,
        "command": [*RUNNER_CMD, "--uids", f"{test_uid},{cand_uid},{n_cand}"],
        "stdin_open": True,
        "tty": False,
        "detach": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": "size=64m,mode=1777"},
        "cap_drop": ["ALL"],
        "cap_add": ["CHOWN", "SETUID", "SETGID", "KILL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": pids_limit,
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "ulimits": [
            Ulimit(name="nofile", soft=1024, hard=1024),
            Ulimit(name="nproc", soft=512, hard=512),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "environment": {},
        "user": "0:0",
        "init": False,
        "hostname": "sandbox",
        "ipc_mode": "private",
        "sysctls": dict(IPC_SYSCTLS),
        # A neutral resolv.conf, not the host's nameservers and search domains (there is no network).
        "dns": ["127.0.0.1"],
        "dns_search": ["."],
        "log_config": LogConfig(type="none"),
        "labels": {
            LABEL: "sandbox",
            OWNER_LABEL: str(os.getpid()),
            HOST_LABEL: socket.gethostname(),
            EXECUTOR_LABEL: owner,
        },
    }


