"""Benchmark Rosetta against its references on this machine.

    python -m scripts.bench                           # every suite, full sizes
    python -m scripts.bench forward load --quick      # some suites, tiny sizes (< 3 minutes)
    python -m scripts.bench --list                    # the registered suites
    python -m scripts.bench forward --threads 1 --repeats 7 --out reports/bench

Writes bench.json (raw samples + summary), bench.md and bench.png to --out (reports/bench).

Threads: `--threads N` (default: the CPUs this process may use) is applied to both frameworks
before either is imported — torch.set_num_threads(N) and OMP/MKL/OPENBLAS_NUM_THREADS=N; for
XLA, `--xla_cpu_multi_thread_eigen` in XLA_FLAGS and, for N below the available CPUs, the
process's CPU affinity (XLA sizes its thread pool from it). Details in threads.py.

Speed is measured, never asserted: on a shared machine only ratios from one run mean anything,
and every figure is also given as a fraction of the machine's limits measured in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import pathlib
import platform
import sys
import tempfile
import time

from scripts.bench import threads as threads_mod

DEFAULT_ORDER = ("forward", "load", "compile", "generate", "seq2seq", "train", "ports")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("suites", nargs="*", help="suites to run (default: all registered)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (whole run < 3 minutes)")
    parser.add_argument("--threads", type=int, default=len(threads_mod.available_cpus()),
                        help="threads for both JAX and torch (default: the CPUs available, %(default)s)")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default: 5; --quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed rounds per case before timing (default: 2; --quick 1)")
    parser.add_argument("--out", default="reports/bench", help="output folder (default %(default)s)")
    parser.add_argument("--cache-dir", help="keep the generated model folders here and reuse them "
                                            "(default: a temp dir, removed at the end)")
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    return parser.parse_args(argv)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"))
    except OSError:
        pass
    return []


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    start = time.perf_counter()
    thread_info = threads_mod.configure(args.threads)     # before JAX / torch are imported

    from scripts.bench import registry, spawner as spawner_mod

    suites = registry.load_suites()
    if args.list:
        for name in sorted(suites, key=lambda n: (DEFAULT_ORDER.index(n) if n in DEFAULT_ORDER else 99, n)):
            print(f"{name:10s} {suites[name].description}")
        return 0
    selected = args.suites or sorted(suites, key=lambda n: (DEFAULT_ORDER.index(n) if n in DEFAULT_ORDER else 99, n))
    unknown = [s for s in selected if s not in suites]
    if unknown:
        print(f"unknown suite(s) {unknown}; registered: {sorted(suites)}", file=sys.stderr)
        return 2

    # Started while this process is still small: it launches the peak-RSS children (spawner.py).
    spawner = spawner_mod.Spawner()
    loadavg_start = _loadavg()

    def log(message: str):
        print(message, flush=True)

    t0 = time.perf_counter()
    import jax
    import numpy as np
    import torch
    import transformers
    import flax

    import_s = time.perf_counter() - t0
    transformers.utils.logging.disable_progress_bar()
    thread_info.update(threads_mod.apply_torch(args.threads))
    from scripts.bench import limits, models, report, runner

    mode = "quick" if args.quick else "full"
    preset = dict(models.PRESETS[mode])
    warmup = args.warmup if args.warmup is not None else preset["warmup"]
    repeats = args.repeats if args.repeats is not None else preset["repeats"]
    if args.repeats is not None:
        preset.update(load_repeats=args.repeats, compile_repeats=args.repeats)
    if args.warmup is not None:
        preset.update(load_warmup=args.warmup)

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "argv": argv, "quick": args.quick, "suites": selected,
        "warmup": warmup, "repeats": repeats,
        "cpu": _cpu_name(), "cpu_flags": _cpu_flags(), "threads": thread_info,
        "loadavg_start": loadavg_start,
        "versions": {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
                     "numpy": np.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        "jax_backend": jax.default_backend(),
        "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "import_s": import_s,
        "caveat": ("Timings are from a shared CPU machine (load average at start "
                   f"{loadavg_start} on {thread_info['cpus_available']} CPUs): absolute numbers move with "
                   "other processes' load; only ratios measured within this one run mean anything. "
                   "Speed is measured here, never asserted."),
    }
    log(f"[bench] {mode} run of {selected} with {args.threads} thread(s); load average {loadavg_start}; "
        f"imports {import_s:.1f} s")

    result = {"meta": meta, "suites": {}}
    failed = False
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-") as temp:
        work_dir = pathlib.Path(args.cache_dir) if args.cache_dir else pathlib.Path(temp)
        work_dir.mkdir(parents=True, exist_ok=True)
        ctx = registry.Context(quick=args.quick, preset=preset, threads=args.threads, work_dir=work_dir,
                               spawner=spawner, log=log)
        log(f"[bench] machine limits: matmul {preset['matmul_n']}³, read {preset['read_bytes'] / 2**30:.3g} GiB")
        lim = limits.measure(preset["matmul_n"], preset["read_bytes"], warmup, repeats, log)
        result["limits"] = lim
        peaks = lim["matmul_peak_gflops"]
        log(f"  matmul peak GFLOP/s: JAX {peaks['jax']:.1f}, torch {peaks['torch']:.1f}; "
            f"read bandwidth {lim['read_bandwidth_gbs']:.1f} GB/s")
        gc.collect()
        for name in selected:
            suite = suites[name]
            log(f"[bench] suite {name}: {suite.description}")
            entry = {"description": suite.description}
            suite_start = time.perf_counter()
            try:
                cases = suite.build(ctx)
            except registry.NotAvailable as e:
                entry.update(status="not available", reason=str(e))
                log(f"  not available yet: {e}")
                result["suites"][name] = entry
                continue
            except Exception as e:
                import traceback

                entry.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
                log(f"  ERROR building the suite: {type(e).__name__}: {e}")
                result["suites"][name] = entry
                failed = True
                continue
            records = []
            for case in cases:
                records.append(runner.run_case(case, warmup, repeats, peaks, lim["read_bandwidth_gbs"], log))
                failed |= records[-1]["status"] == "error"
                for r in records[-1].get("ratios", {}).values():
                    s = r["paired_stats"]
                    log(f"  → {case.name}: {r['baseline']} time ÷ {r['variant']} time = {s['median']:.3f}× "
                        f"(min {s['min']:.3f}, max {s['max']:.3f})")
            entry.update(status="ok", cases=records, elapsed_s=time.perf_counter() - suite_start)
            result["suites"][name] = entry
            del cases
            jax.clear_caches()
            gc.collect()
    spawner.close()
    meta["loadavg_end"] = _loadavg()
    meta["elapsed_s"] = time.perf_counter() - start
    paths = report.write_all(result, pathlib.Path(args.out))
    log(f"[bench] done in {meta['elapsed_s']:.0f} s; load average {meta['loadavg_end']}; wrote "
        + ", ".join(str(p) for p in paths.values()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
