"""Rosetta's benchmark harness: `python -m scripts.bench [suite ...] [--quick]`.

Modules (none imports JAX or torch at import time, so `--list` and thread pinning stay cheap):
  __main__    the command line; pins threads before JAX/torch are imported (threads.py)
  threads     thread settings for XLA and torch, applied identically to both
  registry    the case registry: a suite is a function `ctx -> list[Case]`
  runner      alternating timing (Rosetta and reference take turns) and summary statistics
  limits      the machine's limits measured in the same run (matmul peak, read bandwidth)
  models      the shared Hugging Face folder, size presets and analytic FLOP counts
  spawner     a small process that launches the peak-RSS children (see load_memory.py)
  report      JSON (raw samples + summary), Markdown, PNG
  suites/     forward, load, compile; registration points for generate, seq2seq, train, ports
  load_memory the standalone peak-RSS measurement, used by the `load` suite
  load_memory_transformers  the same measurement for transformers' from_pretrained
"""
