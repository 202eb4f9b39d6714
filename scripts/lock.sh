#!/usr/bin/env bash
# Regenerate requirements.lock from pyproject.toml (on purpose, never as part of set-up): every
# transitive package pinned, torch held to the CPU build by constraints.txt. Commit the result with
# the test run that passed on it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || .venv/bin/python -m pip install -q "pip-tools>=7.4"
.venv/bin/pip-compile --quiet --extra dev --strip-extras --allow-unsafe --no-emit-index-url \
  --no-emit-find-links --all-build-deps --constraint constraints.txt --output-file requirements.lock "$@" pyproject.toml
echo "requirements.lock updated; run bash scripts/test.sh before committing it"
