"""`phi-eval sandbox build|check`: make the sandbox image, and say what is ready and what is missing."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from phi_eval.cli.app import friendly, sandbox_app
from phi_eval.errors import PhiEvalError


@sandbox_app.command("build")
@friendly
def build(
    from_dockerfile: Annotated[
        bool,
        typer.Option(
            "--from-dockerfile",
            help="Build sandbox/Dockerfile from python:3.11-slim (needs a registry).",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Build offline: a Debian rootfs via debootstrap (needs root)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the image exists (offline: redo the rootfs).")
    ] = False,
) -> None:
    """Build the sandbox image; by default the recipe that can work here: offline (debootstrap) where
    possible, else sandbox/Dockerfile where the engine can pull its base image."""
    from rich.console import Console

    from phi_eval.sandbox.docker import connect
    from phi_eval.sandbox.image import build_image, dockerfile_base, has_image, image_tag, pick_recipe

    if from_dockerfile and offline:
        raise PhiEvalError("--from-dockerfile and --offline contradict each other; pick one (or neither)")
    console = Console(stderr=True, soft_wrap=True)
    client = connect()[0]
    tag = image_tag()
    if has_image(client, tag) and not force:
        console.print(f"[green]{tag}[/] is already built (use --force to rebuild)")
        return
    if not (from_dockerfile or offline):
        from_dockerfile = pick_recipe(client) == "dockerfile"
    how = (
        f"from sandbox/Dockerfile on {dockerfile_base()}"
        if from_dockerfile
        else "offline (debootstrap, about a minute the first time)"
    )
    started = time.monotonic()
    with console.status(f"building {tag} {how}"):
        build_image(client, from_dockerfile=from_dockerfile, force=force)
    console.print(f"[green]built {tag}[/] in {time.monotonic() - started:.1f} s")


@sandbox_app.command("check")
@friendly
def check() -> None:
    """Check the engine, the image, the runner it carries, and run one job in a container."""
    from rich.console import Console

    from phi_eval.jobs import ExecJob
    from phi_eval.sandbox.docker import DockerExecutor, connect
    from phi_eval.sandbox.image import RUNNER_SHA_LABEL, has_image, image_tag, runner_sha256

    console = Console(soft_wrap=True)
    problems: list[str] = []

    def line(ok: bool, what: str, fix: str = "") -> None:
        console.print(
            f"[green]ok[/]      {what}" if ok else f"[red]missing[/] {what}" + (f": {fix}" if fix else "")
        )
        if not ok:
            problems.append(what)

    try:
        client = connect()[0]
    except PhiEvalError as exc:
        line(False, "Docker engine", str(exc))
        raise PhiEvalError("the sandbox is not ready (no Docker engine)") from None
    version = client.version()
    line(True, f"Docker engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})")

    tag = image_tag()
    expected = runner_sha256()
    if not has_image(client, tag):
        line(False, f"image {tag}", "run `phi-eval sandbox build`")
    else:
        line(True, f"image {tag}")
        labels = client.images.get(tag).labels or {}
        line(
            labels.get(RUNNER_SHA_LABEL) == expected,
            f"runner in the image matches sandbox/runner/ ({expected[:12]})",
            "run `phi-eval sandbox build --force`",
        )
        job = ExecJob(
            id="check#0",
            candidate="def add(a, b):\n    return a + b\n",
            prelude="",
            tests="def check(candidate):\n    assert candidate(2, 3) == 5\n",
            entry_point="add",
            timeout_s=10.0,
            memory_mb=256,
        )
        results = []
        started = time.monotonic()
        try:
            with DockerExecutor(workers=1, image=tag) as executor:
                executor.run([job], results.append)
                said = next((str(r.get("runner", "")) for r in executor.ready_lines()), "")
        except PhiEvalError as exc:
            line(False, "smoke test", str(exc))
        else:
            took = time.monotonic() - started
            ok = bool(results) and results[0].passed
            detail = f"{results[0].outcome} {results[0].detail}".strip() if results else "no result"
            line(ok, f"smoke test: one job in a fresh hardened container ({took:.1f} s)", detail)
            if said:
                line(
                    expected.startswith(said) or said.startswith(expected),
                    f"the running runner reports hash {said[:12]}",
                    "rebuild with `phi-eval sandbox build --force`",
                )
    if problems:
        raise PhiEvalError(f"the sandbox is not ready: {', '.join(problems)}")
    console.print("[green]the sandbox is ready[/]")
