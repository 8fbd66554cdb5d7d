#!/usr/bin/env bash
# Command 1 of the README: set everything up, then run the main job on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m experiments.embed "$@"
