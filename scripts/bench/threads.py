"""Give JAX (XLA:CPU) and torch the same number of threads. Call `configure` before either
framework is imported: XLA reads its flags and sizes its thread pool once, at backend start.

How each framework is pinned to N threads:
- torch: `torch.set_num_threads(N)` (intra-op pool; `apply_torch`), plus OMP_NUM_THREADS /
  MKL_NUM_THREADS / OPENBLAS_NUM_THREADS=N in the environment for the BLAS libraries.
- XLA:CPU has no thread-count flag. Its intra-op pool (Eigen matmuls and the parallel loops of
  the thunk runtime) is sized from the CPUs the process may be scheduled on
  (tsl::port::MaxParallelism → sched_getaffinity). So for N below the CPUs available, the
  process's CPU affinity is restricted to N of them (`os.sched_setaffinity`; torch runs in the
  same process, so it is held to the same CPUs). `--xla_cpu_multi_thread_eigen=false` is added
  to XLA_FLAGS for N == 1 (single-threaded Eigen kernels), `=true` otherwise.
- The environment (and affinity) is inherited by the subprocesses the harness starts.
"""
from __future__ import annotations

import os
import sys

_BLAS_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_REPLACED_XLA_FLAGS = ("xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads")


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def configure(threads: int) -> dict:
    """Set the environment and affinity for `threads` threads; returns what was done."""
    loaded = [m for m in ("jax", "jaxlib", "torch") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"threads.configure must run before importing {loaded}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    allowed = available_cpus()
    pinned = None
    if threads < len(allowed):
        pinned = allowed[:threads]
        os.sched_setaffinity(0, pinned)
    for var in _BLAS_VARS:
        os.environ[var] = str(threads)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.lstrip("-").startswith(_REPLACED_XLA_FLAGS)]
    flags.append(f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    os.environ["JAX_PLATFORMS"] = "cpu"
    # Quiet, offline: the harness reads only the folders it writes itself.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return {
        "requested": threads,
        "cpus_available": len(allowed),
        "affinity": pinned if pinned is not None else allowed,
        "pinned": pinned is not None,
        "oversubscribed": threads > len(allowed),
        "XLA_FLAGS": os.environ["XLA_FLAGS"],
        **{var: os.environ[var] for var in _BLAS_VARS},
    }


def apply_torch(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return {"torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads()}
