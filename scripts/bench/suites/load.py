"""`load`: loading a checkpoint folder (BERT-base, 110M parameters, one safetensors file;
--quick: the tiny BERT), Rosetta `AutoModel.from_pretrained` against `transformers`
`BertModel.from_pretrained`, alternating; and the peak memory of loading.

Memory comes from `load_memory.py` (each measurement in a fresh process: peak-RSS growth over
the RSS after imports, as a ratio to the weight files' size; ideal 1.0), run for its `reader`
and `model` modes, and the same measurement of `transformers` (load_memory_transformers.py).
The children are started by the harness's spawner (spawner.py), not by the harness itself.
"""
from __future__ import annotations

import json
import pathlib
import sys

from scripts.bench import load_memory, load_memory_transformers, models
from scripts.bench.registry import Case, Context, Variant, suite

REPO = pathlib.Path(__file__).resolve().parents[3]


@suite("load", "checkpoint load time: Rosetta AutoModel vs transformers from_pretrained; peak-RSS ratios")
def load(ctx: Context) -> list[Case]:
    import jax
    import jax.numpy as jnp
    import torch
    import transformers

    from core.auto import AutoModel

    folder = ctx.bert_folder(ctx.preset["bert"])
    files = models.weight_files(folder)
    nbytes = sum(f.stat().st_size for f in files)

    # transformers 5 returns weights backed by the mmap'd safetensors file: from_pretrained reads
    # (almost) nothing and the reading moves to the first use of each weight. So a load here is
    # from_pretrained plus one read of every weight (a sum per tensor), for both; the lazy
    # transformers load alone is timed too, for information (no ratio is taken against it).
    def run_ours():
        model = AutoModel.from_pretrained(folder)
        jax.block_until_ready([jnp.sum(leaf) for leaf in jax.tree.leaves(model.params)])

    def run_ref():
        model = transformers.BertModel.from_pretrained(folder, dtype=torch.float32)
        with torch.inference_mode():
            [p.sum() for p in model.parameters()]

    def run_ref_lazy():
        transformers.BertModel.from_pretrained(folder, dtype=torch.float32)

    timed = Case(
        name="bert-load",
        description=f"from_pretrained of a BertModel folder ({nbytes / 1e6:.1f} MB in {len(files)} file(s), "
                    "page cache warm after warm-up) + one read of every weight",
        variants=[Variant("rosetta", run_ours, "jax", "rosetta"),
                  Variant("transformers", run_ref, "torch", "reference"),
                  Variant("transformers-lazy", run_ref_lazy, "torch", "reference")],
        baseline="transformers",
        work={"bytes": nbytes, "items": 1, "item_unit": "load"},
        info={"folder": str(folder), "files": [f.name for f in files],
              "bytes_meaning": "weight-file bytes per load; GB/s is compared with the read bandwidth",
              "transformers-lazy": "from_pretrained alone: its weights stay mmap-backed and unread, so "
                                   "this defers the reading to first use (not comparable)"},
        warmup=ctx.preset["load_warmup"], repeats=ctx.preset["load_repeats"],
    )
    memory = Case(
        name="bert-load-memory",
        description="peak-RSS growth of a load ÷ weight-file size, each in a fresh process (ideal 1.0)",
        measure=lambda: measure_memory(ctx, folder),
        info={"method": "scripts/bench/load_memory.py (reader, model) and "
                        "scripts/bench/load_memory_transformers.py (transformers), via the spawner"},
    )
    return [timed, memory]


def _child(ctx: Context, argv: list[str]) -> dict:
    if ctx.spawner is None:
        raise RuntimeError("peak-RSS children need the harness's spawner (started before heavy imports)")
    done = ctx.spawner.run([sys.executable, *argv], cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(ctx: Context, folder: pathlib.Path) -> dict:
    results = {}
    for mode in ("reader", "model"):
        ctx.log(f"    load_memory.py --_mode {mode}")
        results[mode] = _child(ctx, [load_memory.__file__, "--_measure", str(folder), "--_mode", mode])
    ctx.log("    load_memory_transformers.py")
    results["transformers"] = _child(ctx, ["-m", load_memory_transformers.__name__, str(folder)])
    growth = {k: r["peak_rss"] - r["baseline_rss"] for k, r in results.items()}
    return {
        "raw": results,
        "file_bytes": results["model"]["file_bytes"],
        "peak_rss_ratio": {k: r["ratio"] for k, r in results.items()},
        "peak_rss_growth_bytes": growth,
        "rosetta_model_vs_transformers": growth["model"] / growth["transformers"] if growth["transformers"] > 0 else None,
        "transformers_ratio_before_first_use": results["transformers"]["ratio_before_first_use"],
    }
