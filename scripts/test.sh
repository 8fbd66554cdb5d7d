#!/usr/bin/env bash
# Command 2 of the README: set up if needed, then run the whole test suite on all cores
# (one pytest worker per core, one thread per worker; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Count the cores before pinning threads: GNU nproc honours OMP_NUM_THREADS.
workers="${ROSETTA_TEST_WORKERS:-$(nproc)}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Compile each XLA program once for all workers (and later runs): see tests/conftest.py.
export ROSETTA_JAX_CACHE="${ROSETTA_JAX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rosetta/jax-tests}"
exec .venv/bin/python -m pytest -n "$workers" --dist=worksteal -q "$@"
