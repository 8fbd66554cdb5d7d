"""`compile`: first-call time of a 12-layer BERT forward (trace + lower + XLA compile + one
run), with its layers under `lax.scan` (`P.Repeat` on stacked params, what init and checkpoints
give) and unrolled (`P.Repeat` on `P.per_layer_params`: one buffer per layer, the layers traced
as a Python loop, the layout decoding uses).

Every sample starts from `jax.clear_caches()` and a fresh `PretrainedModel` wrapper (untimed),
then times the first `model(...)` call. After the timed rounds, an untimed breakdown records
trace / lower / compile separately and the steady-state call time.
Full: BERT-base; --quick: 12 layers of the tiny BERT (compile time follows depth, not width).
"""
from __future__ import annotations

import dataclasses
import statistics
import time

from scripts.bench.registry import Case, Context, Variant, suite

@suite("compile", "first-call compile time of a 12-layer BERT: scanned and unrolled layers")
def compile_time(ctx: Context) -> list[Case]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from core.layers import prims as P
    from core.modeling import PretrainedModel
    from core.models.bert.config import BertConfig

    jax.config.update("jax_enable_compilation_cache", False)   # no persistent cache between samples
    preset = ctx.preset
    config = BertConfig(**preset["compile_bert"])
    batch, seq = preset["batch"], preset["seq"]
    scanned = PretrainedModel.from_config(config, task="base")
    ids = np.random.default_rng(0).integers(1, config.vocab_size, size=(batch, seq))
    inputs = {"input_ids": jnp.asarray(ids, jnp.int32), "attention_mask": jnp.ones((batch, seq), jnp.int32)}

    # Same module and weights: only the params' layout (stacked vs one subtree per layer) differs.
    models = {"scan": scanned,
              "unrolled": PretrainedModel(config, scanned.module, P.per_layer_params(scanned.params), "base")}

    def variant(name: str) -> Variant:
        holder = {}
        source = models[name]

        def prepare():
            jax.clear_caches()
            holder["model"] = PretrainedModel(source.config, source.module, source.params, "base")

        def run():
            jax.block_until_ready(holder["model"](**inputs))

        return Variant(name, run, "jax", "rosetta", prepare)

    def breakdown() -> dict:
        out, results = {}, {}
        for name, model in models.items():
            jax.clear_caches()
            fn = jax.jit(model.module.apply, static_argnames=("deterministic", "output_attentions",
                                                                "output_hidden_states"))
            t0 = time.perf_counter()
            traced = fn.trace({"params": model.params}, **inputs)
            t1 = time.perf_counter()
            lowered = traced.lower()
            t2 = time.perf_counter()
            compiled = lowered.compile()
            t3 = time.perf_counter()
            steady = []
            for _ in range(3):
                s = time.perf_counter()
                results[name] = jax.block_until_ready(compiled({"params": model.params}, **inputs))
                steady.append(time.perf_counter() - s)
            out[name] = {"trace_s": t1 - t0, "lower_s": t2 - t1, "compile_s": t3 - t2,
                         "steady_call_s_median": statistics.median(steady),
                         "hlo_chars": len(compiled.as_text() or "")}
        out["max_abs_diff_unrolled_vs_scan"] = float(jnp.max(jnp.abs(
            results["unrolled"].last_hidden_state - results["scan"].last_hidden_state)))
        return out

    info = {"config": {"num_hidden_layers": config.num_hidden_layers, "hidden_size": config.hidden_size},
            "batch": batch, "seq": seq,
            "sample": "jax.clear_caches() + new PretrainedModel (untimed), then the first model(...) call"}
    cases = [Case(
        name="bert-compile",
        description=f"first call of a {config.num_hidden_layers}-layer BertModel forward "
                    f"(d={config.hidden_size}, batch {batch} × {seq}): trace + compile + run",
        variants=[variant(name) for name in models],
        baseline="scan",
        work={"items": 1, "item_unit": "compile"},
        info=dict(info, unrolled="P.per_layer_params: the layers traced one by one"),
        warmup=1, repeats=preset["compile_repeats"],
        check=breakdown,
    )]
    return cases
