"""Write a run's results: `bench.json` (all raw samples + summaries), `bench.md` (tables),
`bench.png` (ratios and fractions of the machine's limits; matplotlib, Agg backend)."""
from __future__ import annotations

import json
import math
import pathlib

JSON_NAME, MD_NAME, PNG_NAME = "bench.json", "bench.md", "bench.png"


def write_all(result: dict, out_dir: pathlib.Path) -> dict:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / JSON_NAME, "markdown": out_dir / MD_NAME, "png": out_dir / PNG_NAME}
    result = dict(result, outputs={k: str(v) for k, v in paths.items()})
    paths["json"].write_text(json.dumps(result, indent=1, default=_jsonable) + "\n")
    paths["markdown"].write_text(markdown(result))
    write_png(result, paths["png"])
    return paths


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _time(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _ratio(r: dict) -> str:
    s = r["paired_stats"]
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = ["# Rosetta benchmarks", ""]
    lines += [
        f"- date: {meta['date']} · mode: {'--quick (tiny sizes, few repeats)' if meta['quick'] else 'full'}"
        f" · wall time {meta.get('elapsed_s', 0):.0f} s",
        f"- machine: {meta['cpu']}, {meta['threads']['cpus_available']} CPUs available; "
        f"load average {meta['loadavg_start']} at start, {meta.get('loadavg_end', '?')} at end",
        f"- threads: {meta['threads']['requested']} for both (torch.set_num_threads = "
        f"{meta['threads'].get('torch_num_threads')}; XLA_FLAGS `{meta['threads']['XLA_FLAGS']}`; "
        f"affinity {meta['threads']['affinity']}{' (pinned)' if meta['threads']['pinned'] else ''})",
        f"- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "- method: warm-up, then Rosetta and the reference alternate (A B, B A, ...); times are "
        "median (min–max); ratios are reference time ÷ Rosetta time taken pair by pair within a round "
        "(> 1: Rosetta faster), median (min–max) of the pairs. CPU/wall is this process's CPU time "
        "per wall second (the cores a call really got).",
        "",
        f"> {meta['caveat']}",
        "",
    ]
    limits = result.get("limits")
    if limits:
        mm, rd = limits["matmul"], limits["read"]
        lines += ["## Machine limits (measured in this run)", "",
                  "| measure | JAX | torch |", "|---|---|---|",
                  f"| float32 matmul {mm['n']}³, GFLOP/s best (median) | {mm['jax']['gflops_per_s_best']:.1f} "
                  f"({mm['jax']['gflops_per_s_median']:.1f}) | {mm['torch']['gflops_per_s_best']:.1f} "
                  f"({mm['torch']['gflops_per_s_median']:.1f}) |",
                  f"| read bandwidth, sum over {rd['bytes'] / 2**30:.3g} GiB, GB/s best (median) | "
                  f"{rd['jax']['gb_per_s_best']:.1f} ({rd['jax']['gb_per_s_median']:.1f}) | "
                  f"{rd['torch']['gb_per_s_best']:.1f} ({rd['torch']['gb_per_s_median']:.1f}) |",
                  "",
                  f"Fractions below are of the machine's matmul peak ({max(limits['matmul_peak_gflops'].values()):.1f} "
                  f"GFLOP/s, the better framework's best sample) and read bandwidth "
                  f"({limits['read_bandwidth_gbs']:.1f} GB/s).", ""]
    for name, suite in result["suites"].items():
        lines += [f"## {name}", ""]
        if suite["status"] != "ok":
            status = "not available yet" if suite["status"] == "not available" else suite["status"].upper()
            lines += [f"{status}: {suite.get('reason', '')}", ""]
            continue
        lines += [suite["description"], ""]
        for case in suite["cases"]:
            lines += _case_markdown(case)
    lines += ["---", "Raw samples: `bench.json`. Produced by `python -m scripts.bench` "
              f"{' '.join(meta['argv'])}.", ""]
    return "\n".join(lines)


def _case_markdown(case: dict) -> list[str]:
    lines = [f"### {case['name']}", "", case["description"], ""]
    if case["status"] == "not available":
        return lines + [f"not available yet: {case['reason']}", ""]
    if case["status"] == "error":
        return lines + [f"ERROR: `{case['error']}`", ""]
    variants = case.get("variants") or {}
    if variants:
        unit = case["work"].get("item_unit", "item")
        columns = [  # (header, key in the variant summary, format); shown when any variant has it
            (f"{unit}/s", "items_per_s", lambda x: f"{x:.3g}"),
            ("GFLOP/s", "gflops_per_s", lambda x: f"{x:.1f}"),
            ("% matmul peak", "fraction_of_matmul_peak", _pct),
            ("% own framework's matmul peak", "fraction_of_own_matmul_peak", _pct),
            ("GB/s", "gb_per_s", lambda x: f"{x:.2f}"),
            ("% read bw", "fraction_of_read_bandwidth", _pct),
        ]
        columns = [c for c in columns if any(c[1] in v for v in variants.values())]
        lines += ["| variant | median | min | max | " + " | ".join(c[0] for c in columns) + " | CPU/wall |",
                  "|---|---|---|---|" + "---|" * len(columns) + "---|"]
        for vname, v in variants.items():
            t = v["time_s"]
            cells = [c[2](v[c[1]]) if c[1] in v else "—" for c in columns]
            lines.append(f"| {vname} ({v['framework']}) | {_time(t['median'])} | {_time(t['min'])} | "
                         f"{_time(t['max'])} | " + " | ".join(cells) + f" | {v['cpu_per_wall']['median']:.2f} |")
        lines.append("")
        for key, r in case.get("ratios", {}).items():
            lines.append(f"- ratio {r['baseline']} time ÷ {r['variant']} time: **{_ratio(r)}** paired over "
                         f"{len(r['paired'])} rounds; ratio of medians {r['ratio_of_medians']:.2f}×")
        lines.append("")
    compiled = (case.get("info") or {}).get("rosetta_compile")
    if compiled:
        lines += [f"- Rosetta compile, apart from the timed runs: {compiled['compile_s']:.2f} s (first call "
                  f"{compiled['first_call_s']:.2f} s after clearing JAX's caches − next call "
                  f"{compiled['steady_call_s']:.2f} s)", ""]
    check = case.get("check")
    if check:
        lines += ["- " + _flat(check), ""]
    metrics = case.get("metrics")
    if metrics:
        if "peak_rss_ratio" in metrics:
            lines += ["| load | peak-RSS growth | ÷ weight files |", "|---|---|---|"]
            for mode, ratio in metrics["peak_rss_ratio"].items():
                lines.append(f"| {mode} | {metrics['peak_rss_growth_bytes'][mode] / 1e6:.1f} MB | {ratio:.3f} |")
            rel = metrics.get("rosetta_model_vs_transformers")
            lines += ["", f"- weight files: {metrics['file_bytes'] / 1e6:.1f} MB; Rosetta model load ÷ "
                      f"transformers load (peak-RSS growth): " + ("—" if rel is None else f"**{rel:.2f}×**")]
            lazy = metrics.get("transformers_ratio_before_first_use")
            if lazy is not None:
                lines.append(f"- transformers right after from_pretrained, before its mmap-backed weights are "
                             f"first read: {lazy:.3f} (the table's figure is after one read of every weight)")
            if metrics["file_bytes"] < 50e6:
                lines.append("- a small folder: fixed costs (allocator, tracing) dominate these ratios; "
                             "the full run's 110M-parameter folder is the meaningful one")
            lines.append("")
        else:
            lines += ["- " + _flat(metrics), ""]
    return lines


def _flat(d: dict, prefix: str = "") -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, dict):
            parts.append(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, float):
            parts.append(f"{prefix}{k} = {v:.4g}")
        else:
            parts.append(f"{prefix}{k} = {v}")
    return "; ".join(parts)


def write_png(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []       # (label, median, min, max) of paired ratios
    fractions = []  # (label, fraction of a measured limit)
    for suite in result["suites"].values():
        for case in suite.get("cases", []):
            for r in case.get("ratios", {}).values():
                s = r["paired_stats"]
                bars.append((f"{case['name']}: {r['variant']} vs {r['baseline']}", s["median"], s["min"], s["max"]))
            for vname, v in (case.get("variants") or {}).items():
                if "fraction_of_matmul_peak" in v:
                    fractions.append((f"{case['name']}: {vname} (matmul peak)", v["fraction_of_matmul_peak"]))
                elif "fraction_of_read_bandwidth" in v:
                    fractions.append((f"{case['name']}: {vname} (read bw)", v["fraction_of_read_bandwidth"]))
    rows = max(len(bars), len(fractions), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.6 + 0.55 * rows))
    ax = axes[0]
    if bars:
        y = list(range(len(bars)))[::-1]
        med = [b[1] for b in bars]
        err = [[b[1] - b[2] for b in bars], [b[3] - b[1] for b in bars]]
        ax.barh(y, med, xerr=err, capsize=4, color=["tab:green" if m >= 1 else "tab:orange" for m in med])
        ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
        ax.set_xscale("log")
        for yi, m in zip(y, med):
            ax.annotate(f"{m:.2f}×", (m, yi), va="center", fontsize=8, xytext=(4, 8), textcoords="offset points")
        lo, hi = min(b[2] for b in bars), max(b[3] for b in bars)
        ax.set_xlim(min(lo, 1.0) / 1.5, max(hi, 1.0) * 1.5)
    else:
        ax.text(0.5, 0.5, "no paired cases in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("baseline time ÷ variant time, log scale (> 1: variant faster)")
    ax.set_title("Speed ratios: median of pairs, min–max", fontsize=10)
    ax = axes[1]
    if fractions:
        y = list(range(len(fractions)))[::-1]
        values = [100 * f for _, f in fractions]
        ax.barh(y, values, color="tab:blue")
        ax.set_yticks(y, [f[0] for f in fractions], fontsize=8)
        for yi, v in zip(y, values):
            ax.annotate(f"{v:.0f}%", (v, yi), va="center", fontsize=8, xytext=(4, 0), textcoords="offset points")
        ax.set_xlim(0, max(110, max(values) * 1.15))
    else:
        ax.text(0.5, 0.5, "no limit fractions in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(100, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("% of the machine limit measured in this run (median time)")
    ax.set_title("Fraction of the physical limit", fontsize=10)
    meta = result["meta"]
    fig.suptitle(f"Rosetta bench ({'quick' if meta['quick'] else 'full'}, {meta['threads']['requested']} threads, "
                 f"load avg {meta['loadavg_start']}) {meta['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
