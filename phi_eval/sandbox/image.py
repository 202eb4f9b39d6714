"""The sandbox image: its tag, and building it offline (debootstrap + import) or from the Dockerfile.

The tag is a hash of the runner and the recipe files, so a container never runs an old runner: any
change to a file of `sandbox/runner/`, `sandbox/Dockerfile` or `sandbox/build_rootfs.sh` names a new image.
Offline, the Debian rootfs is built once and cached as a tarball (and as a local base image), so a
rebuild after a runner change only re-runs the Dockerfile's COPY: seconds, not a minute.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi_eval.errors import PhiEvalError
from phi_eval.paths import sandbox_dir

if TYPE_CHECKING:  # docker is imported only where it is used
    from docker import DockerClient

IMAGE_REPO = "phi-eval-sandbox"
BASE_REPO = "phi-eval-base"
RUNNER_IN_IMAGE = "/opt/phi_eval/runner"  # where the Dockerfile COPYs the runner (a folder python3 runs)
RUNNER_SHA_LABEL = "phi-eval.runner-sha256"
RUNNER_DIR = "runner"  # the runner package, beside the recipe
RECIPE_FILES = ("Dockerfile", "build_rootfs.sh")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def source_dir(src: Path | None = None) -> Path:
    """The folder holding the runner and the recipe (the checkout's or the wheel's `sandbox/`)."""
    try:
        folder = Path(src) if src is not None else sandbox_dir()
    except FileNotFoundError as exc:
        raise PhiEvalError(str(exc)) from None
    missing = [name for name in (f"{RUNNER_DIR}/__main__.py", *RECIPE_FILES) if not (folder / name).is_file()]
    if missing:
        raise PhiEvalError(f"{folder} lacks {', '.join(missing)}; reinstall phi-eval or restore the files")
    return folder


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def runner_files(folder: Path) -> list[str]:
    """The runner package's files, relative and "/"-separated, sorted, compiled caches left out:
    what the image carries and the hash covers (the runner's own `package_files` agrees)."""
    root = folder / RUNNER_DIR
    out = []
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out += [Path(base, name).relative_to(root).as_posix() for name in files if not name.endswith(".pyc")]
    return sorted(out)


def runner_sha256(src: Path | None = None) -> str:
    """sha256 of the runner's files (each name, size, bytes): recorded as an image label, checked by
    `sandbox check`, and the first 12 hex are what a running runner's ready line reports."""
    root = source_dir(src) / RUNNER_DIR
    digest = hashlib.sha256()
    for rel in runner_files(root.parent):
        data = (root / rel).read_bytes()
        digest.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


def image_tag(src: Path | None = None) -> str:
    """`phi-eval-sandbox:<12 hex>` of the runner + recipe files: a new runner never meets an old image."""
    folder = source_dir(src)
    digest = hashlib.sha256(runner_sha256(folder).encode())
    digest.update(_sha256(*(folder / name for name in RECIPE_FILES)).encode())
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


def base_tag(src: Path | None = None) -> str:
    """The offline base image (Debian + python3), named by the rootfs recipe alone."""
    return f"{BASE_REPO}:{_sha256(source_dir(src) / 'build_rootfs.sh')[:12]}"


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "phi-eval"


def has_image(client: DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def debian_mirror() -> str:
    """PHI_EVAL_DEBIAN_MIRROR, else the first Debian URI apt is configured with, else deb.debian.org."""
    if os.environ.get("PHI_EVAL_DEBIAN_MIRROR"):
        return os.environ["PHI_EVAL_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            urls = words[1:] if words[:1] == ["URIs:"] else words[1:2] if words[:1] == ["deb"] else []
            urls = [u for u in urls if not u.startswith("[")]
            for url in urls:
                if url.rstrip("/").endswith("/debian"):
                    return url
    return DEFAULT_MIRROR


def build_rootfs(src: Path | None = None, *, force: bool = False) -> Path:
    """Run build_rootfs.sh once and keep its tarball in the cache (about 30 s)."""
    script = source_dir(src) / "build_rootfs.sh"
    tarball = cache_dir() / f"rootfs-{_sha256(script)[:12]}.tar"
    if tarball.is_file() and not force:
        return tarball
    if shutil.which("debootstrap") is None:
        raise PhiEvalError(
            "building the sandbox image offline needs debootstrap (apt-get install debootstrap); "
            "or run `phi-eval sandbox build --from-dockerfile` where a registry is reachable"
        )
    if os.geteuid() != 0:
        raise PhiEvalError(
            "building the sandbox image offline needs root once: run `sudo phi-eval sandbox build`, "
            "or `phi-eval sandbox build --from-dockerfile` where a registry is reachable"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["sh", str(script), str(tarball), debian_mirror()], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PhiEvalError(f"debootstrap of the sandbox rootfs failed ({last}); check the Debian mirror")
    return tarball


def _import_base(client: DockerClient, src: Path | None, *, force: bool) -> str:
    tag = base_tag(src)
    if has_image(client, tag) and not force:
        return tag
    tarball = build_rootfs(src, force=force)
    repo, _, version = tag.partition(":")
    client.api.import_image_from_file(
        str(tarball), repository=repo, tag=version, changes=["ENV PATH=/usr/bin:/bin", 'CMD ["python3"]']
    )
    if not has_image(client, tag):
        raise PhiEvalError(f"docker import of {tarball} did not create {tag}; see the engine's log")
    return tag


def _context(folder: Path) -> io.BytesIO:
    """The build context: the Dockerfile and the runner's files, nothing else of the host."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        top = tarfile.TarInfo(RUNNER_DIR)
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(top)
        for name in ("Dockerfile", *(f"{RUNNER_DIR}/{rel}" for rel in runner_files(folder))):
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


RECIPES = ("auto", "offline", "dockerfile")
PROBE_TIMEOUT_S = 10.0


def dockerfile_base(src: Path | None = None) -> str:
    """The image sandbox/Dockerfile starts from when built as is (its `ARG BASE=` default)."""
    for line in (source_dir(src) / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["ARG"] and len(words) > 1 and words[1].startswith("BASE="):
            return words[1].partition("=")[2]
    return "python:3.11-slim"


def offline_possible(client: DockerClient, src: Path | None = None) -> bool:
    """The offline recipe can work here: its base image or rootfs is already made, or debootstrap
    and root are there to make it."""
    script = source_dir(src) / "build_rootfs.sh"
    if has_image(client, base_tag(src)) or (cache_dir() / f"rootfs-{_sha256(script)[:12]}.tar").is_file():
        return True
    return shutil.which("debootstrap") is not None and os.geteuid() == 0


def can_pull(client: DockerClient, image: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """The engine has `image` or can reach a registry that serves it: a manifest look-up through the
    engine (no download), given `timeout_s` at most, as an offline engine may wait on DNS."""
    import threading

    if has_image(client, image):
        return True
    answer: list[bool] = []

    def probe() -> None:
        try:
            client.api.inspect_distribution(image)
            answer.append(True)
        except Exception:  # noqa: BLE001 - any failure means "cannot pull from here"
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])


def pick_recipe(client: DockerClient, src: Path | None = None) -> str:
    """"offline" where debootstrap can work (or already has), else "dockerfile" where the engine can
    pull the Dockerfile's base image (Docker Desktop, macOS: no debootstrap); one line if neither."""
    if offline_possible(client, src):
        return "offline"
    base = dockerfile_base(src)
    if can_pull(client, base):
        return "dockerfile"
    need = "debootstrap (apt-get install debootstrap) and root" if shutil.which("debootstrap") is None or os.geteuid() else "root"
    raise PhiEvalError(
        f"cannot build the sandbox image here: the offline recipe needs {need}, and the Docker engine "
        f"cannot pull {base} from a registry; provide one of the two, then run `phi-eval sandbox build`"
    )


def build_image(
    client: DockerClient,
    *,
    from_dockerfile: bool = False,
    force: bool = False,
    src: Path | None = None,
) -> str:
    """Build the sandbox image and return its tag; offline unless `from_dockerfile`."""
    import docker.errors

    folder = source_dir(src)
    tag = image_tag(folder)
    buildargs: dict[str, Any] = {}
    if not from_dockerfile:
        buildargs["BASE"] = _import_base(client, folder, force=force)
    try:
        client.images.build(
            fileobj=_context(folder),
            custom_context=True,
            tag=tag,
            buildargs=buildargs,
            labels={RUNNER_SHA_LABEL: runner_sha256(folder), "phi-eval": "sandbox-image"},
            rm=True,
            forcerm=True,
            pull=False,
            nocache=force,
        )
    except docker.errors.BuildError as exc:
        hint = "is a registry reachable?" if from_dockerfile else "see `docker images` for the base image"
        raise PhiEvalError(f"building {tag} failed: {str(exc).strip().splitlines()[-1]} ({hint})") from None
    except docker.errors.APIError as exc:
        raise PhiEvalError(f"building {tag} failed: {exc.explanation or exc}") from None
    prune_old_images(client, keep=tag, keep_base=buildargs.get("BASE", base_tag(folder)))
    return tag


def prune_old_images(client: DockerClient, *, keep: str, keep_base: str) -> int:
    """Remove images (and cached rootfs tarballs) of older recipes: each runner change tags a new
    image, and they would pile up. Images a container still uses stay."""
    import docker.errors

    old = [t for img in client.images.list(name=IMAGE_REPO) if keep not in img.tags for t in img.tags]
    old += [
        img.id for img in client.images.list(filters={"dangling": True, "label": "phi-eval=sandbox-image"})
    ]
    old += [t for img in client.images.list(name=BASE_REPO) if keep_base not in img.tags for t in img.tags]
    current = f"rootfs-{keep_base.partition(':')[2]}.tar"
    for tarball in cache_dir().glob("rootfs-*.tar"):
        if tarball.name != current:
            tarball.unlink(missing_ok=True)
    removed = 0
    for name in old:
        try:
            client.images.remove(name)
            removed += 1
        except docker.errors.APIError:  # a container (maybe another run's) still uses it
            pass
    return removed


def ensure_image(
    client: DockerClient,
    *,
    src: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> str:
    """Return the current image's tag, building it first (once, about a minute) when it is missing."""
    tag = image_tag(src)
    if has_image(client, tag):
        return tag
    from rich.console import Console

    console = Console(stderr=True)
    started = time.monotonic()
    recipe = pick_recipe(client, src)
    how = "offline, debootstrap" if recipe == "offline" else f"from sandbox/Dockerfile on {dockerfile_base(src)}"
    with console.status(f"building the sandbox image {tag} ({how}; about a minute, once)"):
        build_image(client, src=src, from_dockerfile=recipe == "dockerfile")
    message = f"built the sandbox image {tag} ({how}) in {time.monotonic() - started:.0f} s"
    (say or console.print)(message)
    return tag
