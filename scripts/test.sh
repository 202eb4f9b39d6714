#!/usr/bin/env bash
# Set up (venv, Docker engine, headless Chromium for the HTML report tests) and run the whole test
# suite, the Docker sandbox tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  printf '\033[1m[setup]\033[0m %s\n' "installing chromium from Debian's packages (the HTML report is tested in it)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check phi_eval sandbox tests bench
exec .venv/bin/python -m pytest "$@"
