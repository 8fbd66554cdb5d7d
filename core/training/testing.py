"""Helpers for tests (and debugging) that run training in a fresh Python process.

XLA's host-device count must be fixed before JAX is imported, so multi-device CPU runs need a
subprocess. `run_python` starts one with N fake CPU devices, XLA's cheapest optimisation level
(tiny test models: compile time dominates) and a persistent compilation cache shared by the
runs of one test module, so a restarted run does not compile again.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Mapping, Optional, Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def subprocess_env(devices: int = 1, cache_dir: Optional[str | os.PathLike] = None, fast_compile: bool = True,
                   extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ)
    flags = [f"--xla_force_host_platform_device_count={devices}",
             "--xla_cpu_multi_thread_eigen=false"]
    if fast_compile:
        flags.append("--xla_backend_optimization_level=0")
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    if cache_dir is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env.update(extra or {})
    return env


def run_python(args: Sequence[str], devices: int = 1, cache_dir=None, timeout: float = 600,
               check: bool = True, **popen) -> subprocess.CompletedProcess:
    """`python *args` in the repository root; raises with the output's tail if it fails."""
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=subprocess_env(devices, cache_dir),
                            capture_output=True, text=True, timeout=timeout, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} exited with {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def start_python(args: Sequence[str], devices: int = 1, cache_dir=None, log=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=subprocess_env(devices, cache_dir),
                            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)


def shared_result(tmp_path_factory, name: str, build) -> tuple[dict, pathlib.Path]:
    """Run an expensive fixture body once per test session, even when pytest-xdist spreads the
    tests that use it over several workers: the first worker runs `build(folder)` (which returns
    a JSON-able dict) under a file lock; the others wait and read its result. Returns
    (result, folder)."""
    import fcntl
    import json

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent                  # shared by all workers of this session
    folder = root / f"shared-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "result.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                result = build(folder)
                done.write_text(json.dumps(result))
            return json.loads(done.read_text()), folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
