#!/usr/bin/env bash
# The main job on an embedded default: HumanEval's reference solutions through the real Docker
# sandbox (no GPU, no hub). Extra arguments go to `phi-eval run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/phi-eval run --task humaneval --model reference "$@"
