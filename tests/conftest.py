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
# Many tests build the same tiny models in several files and workers: with
# ROSETTA_JAX_CACHE=<dir> (scripts/test.sh sets it) an XLA program is compiled once and shared
# between the pytest workers, and between runs, through JAX's persistent compilation cache
# (keyed by the program, the compile options and the jax/XLA version, so never stale).
if os.environ.get("ROSETTA_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir", os.environ["ROSETTA_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", 2 * 1024 ** 3)   # LRU-evicted beyond 2 GiB

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # the torch extra is optional for core-only tests
    pass

_PARITY: dict[str, float] = {}
# `python -m scripts.parity_report` sets this: every recorded difference, one JSON line per test.
_PARITY_LOG = os.environ.get("ROSETTA_PARITY_LOG")


def pytest_runtest_logreport(report):
    # Parity maxima travel as user_properties, which pytest-xdist sends back from workers.
    properties = [(n, float(v)) for n, v in getattr(report, "user_properties", ()) if n.startswith("parity")]
    for name, value in properties:
        if name.startswith("parity:"):
            key = name[len("parity:"):]
            _PARITY[key] = max(_PARITY.get(key, 0.0), value)
    if _PARITY_LOG and properties and report.when == "call":
        import json
        with open(_PARITY_LOG, "a") as log:
            log.write(json.dumps({"test": report.nodeid, "outcome": report.outcome, "properties": properties}) + "\n")


def pytest_terminal_summary(terminalreporter):
    if not _PARITY:
        return
    terminalreporter.section("parity: largest max-abs difference per model and reference")
    for key in sorted(_PARITY):
        terminalreporter.write_line(f"{key:<60} {_PARITY[key]:.2e}")


def pytest_collection_modifyitems(config, items):
    """`extended` tests run only when asked for (`ROSETTA_FULL=1`, or any `-m` expression)."""
    if os.environ.get("ROSETTA_FULL") == "1" or config.getoption("markexpr"):
        return
    keep = [item for item in items if item.get_closest_marker("extended") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("extended")])
        items[:] = keep
