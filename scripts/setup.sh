#!/usr/bin/env bash
# Set up phi-eval on a fresh machine: a virtual environment with the package, and a running Docker
# engine for the sandbox. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# 1. Python environment: exactly the dependency set CI passed with (requirements.lock, every package
#    pinned, torch's CPU build included), then phi-eval itself without resolving anything again.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.phi-eval-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  log "installing the locked dependency set into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch "$stamp"
fi

# 2. Tools the offline sandbox image build needs (debootstrap makes a Debian rootfs without a registry).
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} from Debian's packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# 3. A Docker engine that answers (honours DOCKER_HOST when set).
if ! docker info >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"; exit 1
  fi
  log "starting dockerd"
  $SUDO sh -c 'nohup dockerd >/var/log/phi-eval-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/phi-eval-dockerd.log"; exit 1; }
fi
log "ready: $(.venv/bin/phi-eval --version 2>/dev/null || echo phi-eval), Docker $(docker version --format '{{.Server.Version}}')"
