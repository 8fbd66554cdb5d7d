"""`generate` and `seq2seq`: greedy decoding, Rosetta's one-jit `generate` (prefill and the
whole decode loop in one `lax.while_loop`, explicit KV cache) against `transformers`' `generate`
(torch eager, sdpa attention, `inference_mode`), both loaded from the same folder and forced to
the same number of new tokens (min_new_tokens = max_new_tokens), so both do the same work.

generate: GPT-2 124M, batch 1 and batch 8, a 16-token prompt, 64 new tokens (--quick: tiny GPT-2,
batch 1 and 2, 8 + 8). Rosetta's compile time is reported apart (`info.rosetta_compile`: first
call after clearing JAX's caches minus the next call).
Decoding one token reads every weight once, so the bound is parameter bytes ÷ read bandwidth:
`work.bytes` is parameter bytes × new tokens, and `fraction_of_read_bandwidth` says how close a
variant comes to it. The check also times JAX alone reading those weights (a jitted sum over
the decode layout's buffers): XLA:CPU's own ceiling per token, in tokens/s.

seq2seq: t5-small (60M), batch 1, a 64-token source, 32 new tokens (--quick: tiny T5).
"""
from __future__ import annotations

from scripts.bench.registry import Case, Context, Variant, suite


def _param_bytes(torch_model) -> int:
    return sum(p.numel() * p.element_size() for p in torch_model.parameters())


def _same_tokens(a, b) -> dict:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    return {"tokens_identical": bool(a.shape == b.shape and (a == b).all()), "shape": list(a.shape)}


def _jax_weight_read(model, repeats: int = 10) -> dict:
    """How fast JAX alone reads the weights decoding runs on (a jitted sum over every buffer of
    `decode_params`, the per-layer layout): XLA:CPU's own ceiling for one token, next to the
    machine's read bandwidth (the best of JAX and torch on a 1 GiB array)."""
    import statistics
    import time

    import jax
    import jax.numpy as jnp

    from core.generation.model import decode_params

    params = decode_params(model)
    read = jax.jit(lambda tree: sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree)))
    jax.block_until_ready(read(params))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(read(params))
        times.append(time.perf_counter() - start)
    nbytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(params))
    return {"jax_read_weights_ms_median": 1e3 * statistics.median(times),
            "jax_read_weights_gb_per_s_best": nbytes / min(times) / 1e9,
            "jax_read_bound_tok_per_s": 1 / statistics.median(times)}


def _decoding_case(name, description, run_ours, run_ref, tokens: int, nbytes: int, info: dict, check) -> Case:
    """Rosetta's generate against transformers' on the same work: `tokens` generated in all,
    `nbytes` read from the weights in all (the rows or beams of a step share one read)."""
    return Case(name=name, description=description,
                variants=[Variant("rosetta", run_ours, "jax", "rosetta"),
                          Variant("transformers", run_ref, "torch", "reference")],
                baseline="transformers",
                work={"items": tokens, "item_unit": "token", "bytes": nbytes},
                info=info, check=check)


def _first_call_seconds(run) -> dict:
    """Compile time of Rosetta's generate, reported apart from the timed runs: the first call
    after `jax.clear_caches()` (trace + compile + one run) and the next one (run only)."""
    import time

    import jax

    jax.clear_caches()
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    run()
    steady = time.perf_counter() - start
    return {"first_call_s": first, "steady_call_s": steady, "compile_s": max(first - steady, 0.0)}


@suite("generate", "greedy decoding tokens/s: Rosetta one-jit generate vs transformers (GPT-2 124M, batch 1 and 8)")
def generate(ctx: Context) -> list[Case]:
    import numpy as np
    import torch
    import transformers

    from core.auto import AutoModelForCausalLM

    preset = ctx.preset
    folder = ctx.folder("gpt2", preset["gpt2"])
    prompt, new = preset["decode_prompt"], preset["decode_new"]
    ours = AutoModelForCausalLM.from_pretrained(folder)
    ref = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa",
                                                       dtype=torch.float32).eval()
    options = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False)
    config = ours.config
    nbytes = _param_bytes(ref)
    cases = []
    for batch in preset["decode_batches"]:
        ids = np.random.default_rng(batch).integers(0, ours.config.vocab_size, size=(batch, prompt))
        torch_ids = torch.from_numpy(ids)

        def run_ours(ids=ids):
            return ours.generate(ids, **options)               # numpy out: blocks until done

        def run_ref(torch_ids=torch_ids):
            with torch.inference_mode():
                return ref.generate(torch_ids, attention_mask=torch.ones_like(torch_ids), **options,
                                    pad_token_id=ref.config.eos_token_id)

        def check(run_ours=run_ours, run_ref=run_ref, batch=batch):
            out = _same_tokens(run_ours(), run_ref().numpy())
            if batch == 1:
                out.update(_jax_weight_read(ours))
            return out

        compile_info = _first_call_seconds(run_ours)
        cases.append(_decoding_case(
            "gpt2-decode" if batch == 1 else f"gpt2-decode-batch{batch}",
            f"GPT-2 greedy decode, {config.n_layer} layers, d={config.n_embd}, batch {batch}, "
            f"{prompt}-token prompt + {new} new tokens, float32",
            run_ours, run_ref, new * batch, nbytes * new,
            {"folder": str(folder), "parameters": ours.num_params(), "parameter_bytes": nbytes,
             "batch": batch, "prompt": prompt, "new_tokens": new, "rosetta_compile": compile_info,
             "reference": "transformers.GPT2LMHeadModel.generate (sdpa, torch eager, inference_mode, DynamicCache)",
             "rosetta": "AutoModelForCausalLM.generate: prefill + lax.while_loop decode in one jit",
             "bound": "bytes = parameter bytes × new tokens: one full read of the weights per step"},
            check))
    return cases


@suite("seq2seq", "encoder-decoder greedy generation: Rosetta vs transformers (t5-small)")
def seq2seq(ctx: Context) -> list[Case]:
    import numpy as np
    import torch
    import transformers

    from core.auto import AutoModelForSeq2SeqLM

    preset = ctx.preset
    folder = ctx.folder("t5", preset["t5"])
    batch, source, new = preset["seq2seq_batch"], preset["seq2seq_source"], preset["seq2seq_new"]
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ref = transformers.T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="sdpa",
                                                                  dtype=torch.float32).eval()
    ids = np.random.default_rng(0).integers(2, ours.config.vocab_size, size=(batch, source))
    mask = np.ones_like(ids)
    torch_ids, torch_mask = torch.from_numpy(ids), torch.from_numpy(mask)
    config = ours.config
    nbytes = _param_bytes(ref)
    cases = []
    # Summarisation-style: greedy, then beam search (min_new_tokens keeps every run at full length).
    for name, beams in (("greedy", 1), (f"beam{preset['seq2seq_beams']}", preset["seq2seq_beams"])):
        options = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, num_beams=beams)

        def run_ours(options=options):
            return ours.generate(ids, attention_mask=mask, **options)

        def run_ref(options=options):
            with torch.inference_mode():
                return ref.generate(torch_ids, attention_mask=torch_mask, **options)

        cases.append(_decoding_case(
            f"t5-generate-{name}",
            f"T5 {name} generation, {config.num_layers}+{config.num_decoder_layers or config.num_layers} layers, "
            f"d={config.d_model}, batch {batch}, {source}-token source + {new} new tokens, float32",
            run_ours, run_ref, new * batch, nbytes * new,
            {"folder": str(folder), "parameters": ours.num_params(), "parameter_bytes": nbytes,
             "reference": "transformers.T5ForConditionalGeneration.generate (sdpa, torch eager, inference_mode)",
             "rosetta": "AutoModelForSeq2SeqLM.generate: encoder once, cross K/V cached, decode in one jit",
             "bound": "bytes = parameter bytes × new tokens (the weights each step reads, whatever the beams)"},
            lambda run_ours=run_ours, run_ref=run_ref: _same_tokens(run_ours(), run_ref().numpy())))
    return cases
