#!/usr/bin/env bash
# Set up (venv, Docker engine) and run the whole test suite, the Docker sandbox tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check phi_eval sandbox tests bench
exec .venv/bin/python -m pytest "$@"
