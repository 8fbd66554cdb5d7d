"""`compile`: first-call time of a 12-layer BERT forward (trace + lower + XLA compile + one
run), with its layers under `lax.scan` (`P.Repeat`, the default) and, where the model exposes
it, unrolled (`P.Repeat(unroll=True)`).

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

# Names a module field switching P.Repeat to unroll=True might have.
UNROLL_FIELDS = ("unroll", "unroll_layers", "scan_unroll")


@suite("compile", "first-call compile time of a 12-layer BERT: scanned layers (and unrolled, if buildable)")
def compile_time(ctx: Context) -> list[Case]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from core import registry as core_registry
    from core.modeling import PretrainedModel
    from core.models.bert.config import BertConfig

    jax.config.update("jax_enable_compilation_cache", False)   # no persistent cache between samples
    preset = ctx.preset
    config = BertConfig(**preset["compile_bert"])
    batch, seq = preset["batch"], preset["seq"]
    scanned = PretrainedModel.from_config(config, task="base")
    ids = np.random.default_rng(0).integers(1, config.vocab_size, size=(batch, seq))
    inputs = {"input_ids": jnp.asarray(ids, jnp.int32), "attention_mask": jnp.ones((batch, seq), jnp.int32)}

    module_cls = core_registry.family("bert").module_class("base")
    field = next((f.name for f in dataclasses.fields(module_cls) if f.name in UNROLL_FIELDS), None)
    models = {"scan": scanned}
    if field is not None:
        # Same stacked param layout: only the loop changes.
        module = PretrainedModel.build_module(config, "base", module_kwargs={field: True})
        models["unrolled"] = PretrainedModel(config, module, scanned.params, "base")

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
        out = {}
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
                jax.block_until_ready(compiled({"params": model.params}, **inputs))
                steady.append(time.perf_counter() - s)
            out[name] = {"trace_s": t1 - t0, "lower_s": t2 - t1, "compile_s": t3 - t2,
                         "steady_call_s_median": statistics.median(steady),
                         "hlo_chars": len(compiled.as_text() or "")}
        return out

    info = {"config": {"num_hidden_layers": config.num_hidden_layers, "hidden_size": config.hidden_size},
            "batch": batch, "seq": seq,
            "sample": "jax.clear_caches() + new PretrainedModel (untimed), then the first model(...) call"}
    cases = [Case(
        name="bert-compile",
        description=f"first call of a {config.num_hidden_layers}-layer BertModel forward "
                    f"(d={config.hidden_size}, batch {batch} × {seq}): trace + compile + run",
        variants=[variant(name) for name in models],
        baseline="scan" if len(models) > 1 else None,
        work={"items": 1, "item_unit": "compile"},
        info=dict(info, unroll_field=field),
        warmup=1, repeats=preset["compile_repeats"],
        check=breakdown,
    )]
    if field is None:
        cases.append(Case(
            name="bert-compile-unrolled",
            description="the same with the layers unrolled (P.Repeat(unroll=True))",
            unavailable=(f"only the scanned model is measurable: {module_cls.__name__} has no field "
                         f"({' / '.join(UNROLL_FIELDS)}) that reaches P.Repeat's `unroll`. Core change that "
                         "would allow it: an `unroll: bool = False` field on BertModule and BertEncoder "
                         "(and the task heads, as `remat` is threaded), passed as "
                         "P.Repeat(BertLayer, n, kwargs, remat=self.remat, unroll=self.unroll); then "
                         "PretrainedModel.from_config(config, module_kwargs={'unroll': True}) builds it."),
        ))
    return cases
