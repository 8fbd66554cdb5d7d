"""Alternating timing and summary statistics.

Every timed case runs `warmup` untimed rounds, then `repeats` rounds in which each variant
takes one sample. Rounds alternate the order (A B, B A, A B, ...) so that drift in the machine's
load falls on both sides; each sample records wall time and this process's CPU time (CPU ÷ wall
shows how many cores a call really got on a shared machine). Ratios are taken pair by pair
within a round: baseline time ÷ variant time, so > 1 means the variant is faster; they are taken
for Rosetta variants only (other reference variants are timed for information).
"""
from __future__ import annotations

import gc
import statistics
import time
import traceback
from typing import Sequence

from scripts.bench.registry import Case, Variant


def stats(values: Sequence[float]) -> dict:
    values = list(values)
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values), "mean": statistics.fmean(values)}


def time_variants(variants: Sequence[Variant], warmup: int, repeats: int, log=print) -> dict:
    """{variant name: {"wall": [...], "cpu": [...]}} with `repeats` samples each."""
    for round_ in range(warmup):
        for variant in variants:
            if variant.prepare:
                variant.prepare()
            start = time.perf_counter()
            variant.run()
            log(f"    warm-up {round_ + 1}/{warmup} {variant.name}: {time.perf_counter() - start:.3f} s")
    samples = {v.name: {"wall": [], "cpu": []} for v in variants}
    for round_ in range(repeats):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for variant in order:
            if variant.prepare:
                variant.prepare()
            gc.collect()
            gc.disable()
            try:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                variant.run()
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            finally:
                gc.enable()
            samples[variant.name]["wall"].append(wall)
            samples[variant.name]["cpu"].append(cpu)
        log("    round %d/%d: %s" % (round_ + 1, repeats, ", ".join(
            f"{v.name} {samples[v.name]['wall'][-1]:.3f} s" for v in variants)))
    return samples


def summarize(case: Case, samples: dict, peaks: dict, bandwidth: float | None) -> dict:
    """Per-variant statistics, throughput, fraction of the machine's limits, and paired ratios."""
    out = {}
    flops, items, nbytes = case.work.get("flops"), case.work.get("items"), case.work.get("bytes")
    machine_peak = max(peaks.values()) if peaks else None
    for variant in case.variants:
        wall = samples[variant.name]["wall"]
        cpu = samples[variant.name]["cpu"]
        s = stats(wall)
        entry = {"framework": variant.framework, "role": variant.role, "time_s": s,
                 "cpu_per_wall": stats([c / w for c, w in zip(cpu, wall) if w > 0])}
        median = s["median"]
        if items:
            entry["items_per_s"] = items / median
        if flops:
            gflops = flops / median / 1e9
            entry["gflops_per_s"] = gflops
            if machine_peak:
                entry["fraction_of_matmul_peak"] = gflops / machine_peak
            own = peaks.get(variant.framework)
            if own:
                entry["fraction_of_own_matmul_peak"] = gflops / own
        if nbytes:
            gbs = nbytes / median / 1e9
            entry["gb_per_s"] = gbs
            if bandwidth:
                entry["fraction_of_read_bandwidth"] = gbs / bandwidth
        out[variant.name] = entry
    ratios = {}
    if case.baseline:
        base = samples[case.baseline]["wall"]
        for variant in case.variants:
            if variant.name == case.baseline or variant.role != "rosetta":
                continue
            mine = samples[variant.name]["wall"]
            paired = [b / m for b, m in zip(base, mine) if m > 0]
            ratios[f"{variant.name}/{case.baseline}"] = {
                "variant": variant.name, "baseline": case.baseline,
                "meaning": f"{case.baseline} time / {variant.name} time (>1: {variant.name} faster)",
                "paired": paired, "paired_stats": stats(paired),
                "ratio_of_medians": statistics.median(base) / statistics.median(mine),
            }
    return {"variants": out, "ratios": ratios}


def run_case(case: Case, warmup: int, repeats: int, peaks: dict, bandwidth: float | None, log=print) -> dict:
    record = {"name": case.name, "description": case.description, "work": case.work,
              "info": case.info, "baseline": case.baseline}
    if case.unavailable:
        record["status"] = "not available"
        record["reason"] = case.unavailable
        log(f"  {case.name}: not available yet: {case.unavailable}")
        return record
    start = time.perf_counter()
    try:
        if case.measure is not None:
            log(f"  {case.name}: measuring")
            record["metrics"] = case.measure()
        if case.variants:
            w = case.warmup if case.warmup is not None else warmup
            r = case.repeats if case.repeats is not None else repeats
            log(f"  {case.name}: {w} warm-up + {r} alternating rounds of {[v.name for v in case.variants]}")
            samples = time_variants(case.variants, w, r, log)
            record["warmup"], record["repeats"] = w, r
            record["samples"] = samples
            record.update(summarize(case, samples, peaks, bandwidth))
            if case.check is not None:
                record["check"] = case.check()
        record["status"] = "ok"
    except Exception as e:  # a broken case is reported, and the run goes on
        record["status"] = "error"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc()
        log(f"  {case.name}: ERROR {record['error']}")
    record["elapsed_s"] = time.perf_counter() - start
    return record
