"""`forward`: a BERT encoder forward, Rosetta (jit) against `transformers` (torch eager mode,
sdpa attention, under `torch.inference_mode()`), both loaded from the same folder.

Full: BERT-base, batch 8 × 128 tokens. --quick: a tiny BERT, batch 2 × 32.
"""
from __future__ import annotations

from scripts.bench import models
from scripts.bench.registry import Case, Context, Variant, suite


@suite("forward", "BERT forward: Rosetta jit vs transformers torch (sdpa, inference_mode), same weights")
def forward(ctx: Context) -> list[Case]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import transformers

    from core.auto import AutoModel

    preset = ctx.preset
    folder = ctx.bert_folder(preset["bert"])
    batch, seq = preset["batch"], preset["seq"]
    ours = AutoModel.from_pretrained(folder)
    ref = transformers.BertModel.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()

    rng = np.random.default_rng(0)
    ids = rng.integers(1, ours.config.vocab_size, size=(batch, seq))
    mask = np.ones((batch, seq), np.int64)        # what a tokenizer returns for full-length text
    jax_inputs = {"input_ids": jnp.asarray(ids, jnp.int32), "attention_mask": jnp.asarray(mask, jnp.int32)}
    torch_inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    def run_ours():
        return jax.block_until_ready(ours(**jax_inputs))

    def run_ref():
        with torch.inference_mode():
            return ref(**torch_inputs)

    def check() -> dict:
        a, b = run_ours(), run_ref()
        return {
            "max_abs_diff_last_hidden_state": float(np.max(np.abs(
                np.asarray(a.last_hidden_state) - b.last_hidden_state.numpy()))),
            "max_abs_diff_pooler_output": float(np.max(np.abs(
                np.asarray(a.pooler_output) - b.pooler_output.numpy()))),
        }

    config = ours.config
    return [Case(
        name="bert-forward",
        description=(f"BertModel forward, {config.num_hidden_layers} layers, d={config.hidden_size}, "
                     f"batch {batch} × {seq} tokens, float32"),
        variants=[Variant("rosetta", run_ours, "jax", "rosetta"),
                  Variant("transformers", run_ref, "torch", "reference")],
        baseline="transformers",
        work={"flops": models.bert_forward_flops(config, batch, seq), "items": batch, "item_unit": "seq"},
        info={"folder": str(folder), "batch": batch, "seq": seq, "parameters": ours.num_params(),
              "config": {k: getattr(config, k) for k in ("hidden_size", "num_hidden_layers",
                                                          "num_attention_heads", "intermediate_size",
                                                          "vocab_size")},
              "reference": "transformers.BertModel, attn_implementation='sdpa', torch eager mode, "
                           "torch.inference_mode()",
              "rosetta": "AutoModel.from_pretrained(folder)(input_ids=..., attention_mask=...) "
                         "(jit-compiled apply; inputs already device arrays)",
              "flops": "analytic matmul FLOPs, see models.bert_forward_flops"},
        check=check,
    )]
