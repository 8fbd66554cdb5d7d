"""`train`: one causal-LM training step (forward, backward, global-norm clipping, AdamW update)
of GPT-2 124M on batch 8 × 128 tokens with dropout on, Rosetta's own train step (the one
`experiments.train` runs: `core.training.steps.make_train_step`, jit with the state donated)
against a `transformers` + torch loop (`GPT2LMHeadModel`, sdpa attention, `loss.backward()`,
`clip_grad_norm_`, `torch.optim.AdamW`), both from the same folder. --quick: a tiny GPT-2.

Two Rosetta variants: `rosetta` draws one dropout mask per batch (`dropout_rng="per_batch"`,
what torch does) and `rosetta-per-example` the trainer's default (masks independent of the
device layout, at the cost of a vmap). Compile time of the Rosetta step is reported in `info`.
"""
from __future__ import annotations

import time

from scripts.bench import models
from scripts.bench.registry import Case, Context, Variant, suite


@suite("train", "causal-LM training step (fwd + bwd + AdamW): Rosetta train step vs transformers + torch")
def train(ctx: Context) -> list[Case]:
    import jax
    import jax.numpy as jnp
    import ml_collections
    import numpy as np
    import torch
    import transformers

    from core.auto import AutoModelForCausalLM
    from core.training import optim, parallel
    from core.training import steps as S

    preset = ctx.preset
    folder = ctx.folder("gpt2", preset["gpt2"])
    batch, seq = preset["train_batch"], preset["train_seq"]
    lr, clip = 1e-4, 1.0
    ours = AutoModelForCausalLM.from_pretrained(folder)
    config = ours.config
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, size=(batch, seq))
    host_batch = {"input_ids": ids.astype(np.int32), "attention_mask": np.ones((batch, seq), np.int32),
                  "weights": np.ones((batch,), np.float32), "index": np.arange(batch, dtype=np.int32)}

    opt = ml_collections.ConfigDict(dict(name="adamw", lr=lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01,
                                         no_decay="bias,norm", schedule="constant", warmup_steps=0,
                                         decay_steps=1, end_lr_ratio=0.0, clip_norm=clip))
    tx, schedule = optim.make_optimizer(opt, ours.params)
    placement = parallel.Placement("single")
    device_batch = placement.put_batch(host_batch)
    compile_seconds = {}

    def rosetta_variant(dropout_rng: str):
        cfg = S.StepConfig(task="causal-lm", input_names=("input_ids", "attention_mask"), dropout_rng=dropout_rng)
        state = {"step": jnp.zeros((), jnp.int32), "params": jax.tree.map(jnp.array, ours.params),
                 "opt_state": jax.jit(tx.init)(ours.params), "rng": jax.random.key_data(jax.random.key(0))}
        step = placement.compile_train(lambda **hooks: S.make_train_step(ours.module, tx, schedule, cfg, **hooks),
                                       state)
        tic = time.perf_counter()
        compiled = step.lower(state, device_batch).compile()
        compile_seconds[dropout_rng] = time.perf_counter() - tic
        holder = {"state": state}

        def run():
            holder["state"], metrics = compiled(holder["state"], device_batch)
            return jax.block_until_ready(metrics["loss"])

        return run

    run_batch, run_example = rosetta_variant("per_batch"), rosetta_variant("per_example")

    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
    ref.train()
    decay = [p for n, p in ref.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in ref.named_parameters() if p.ndim < 2]
    torch_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.999), eps=1e-8)
    torch_ids = torch.from_numpy(ids)
    torch_mask = torch.ones_like(torch_ids)

    def run_ref():
        loss = ref(input_ids=torch_ids, attention_mask=torch_mask, labels=torch_ids).loss
        torch_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)
        torch_opt.step()
        return loss.item()

    flops = 3 * models.gpt2_forward_flops(config, batch, seq)      # backward ≈ 2 × forward
    return [Case(
        name="gpt2-train-step",
        description=(f"GPT-2 causal-LM train step, {config.n_layer} layers, d={config.n_embd}, batch {batch} × "
                     f"{seq} tokens, dropout on, AdamW + clipping, float32"),
        variants=[Variant("rosetta", run_batch, "jax", "rosetta"),
                  Variant("rosetta-per-example", run_example, "jax", "rosetta"),
                  Variant("transformers", run_ref, "torch", "reference")],
        baseline="transformers",
        work={"flops": flops, "items": batch * seq, "item_unit": "token"},
        warmup=preset["train_warmup"], repeats=preset["train_repeats"],
        info={"folder": str(folder), "parameters": ours.num_params(), "batch": batch, "seq": seq,
              "compile_s": compile_seconds,
              "reference": "transformers.GPT2LMHeadModel (sdpa) train mode, loss.backward(), clip_grad_norm_, "
                           "torch.optim.AdamW (no decay on biases/norms)",
              "rosetta": "core.training.steps.make_train_step (what experiments.train runs), jit, state donated",
              "flops": "3 × analytic forward matmul FLOPs (models.gpt2_forward_flops)"},
    )]
