#!/usr/bin/env bash
# Command 1 of the README: set everything up, then run the main job on its embedded default —
# train a small GPT-2 on experiments/data/corpus.txt, print samples, export a Hugging Face folder
# and report its max |diff| from JAX in the PyTorch port and in transformers.
# Extra arguments go to experiments.train (e.g. --config.train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workdir="${ROSETTA_WORKDIR:-runs/gpt2_clm-$(date +%Y%m%d-%H%M%S)}"
echo "workdir: $workdir (re-run with ROSETTA_WORKDIR=$workdir to resume it)"
.venv/bin/python -m experiments.train --config=configs/gpt2_clm.py --workdir="$workdir" "$@"
echo "load it in plain PyTorch: .venv/bin/python -m experiments.load_in_torch --model=$workdir/hf"
