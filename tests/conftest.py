"""Test-wide settings: float32 at full matmul precision, one thread per worker, parity summary."""
import os

# Two cores, one pytest worker each: oversubscribed torch was 7x slower here.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_platforms", "cpu")

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # the torch extra is optional for core-only tests
    pass

_PARITY: dict[str, float] = {}


def pytest_runtest_logreport(report):
    # Parity maxima travel as user_properties, which pytest-xdist sends back from workers.
    for name, value in getattr(report, "user_properties", ()):
        if name.startswith("parity:"):
            key = name[len("parity:"):]
            _PARITY[key] = max(_PARITY.get(key, 0.0), float(value))


def pytest_terminal_summary(terminalreporter):
    if not _PARITY:
        return
    terminalreporter.section("parity: largest max-abs difference per model and reference")
    for key in sorted(_PARITY):
        terminalreporter.write_line(f"{key:<60} {_PARITY[key]:.2e}")
