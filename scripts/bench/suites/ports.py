"""`ports`: the generated PyTorch and TensorFlow ports against `transformers` on the same folder.

- forward: BERT-base, batch 8 × 128 (--quick: tiny BERT). The torch port runs eagerly under
  `inference_mode` (its attention twin calls sdpa); the tf port under one `tf.function`
  (graph mode, traced once in the warm-up); `transformers` with sdpa under `inference_mode`.
- decode: GPT-2 124M greedy, 16-token prompt + 64 new tokens (--quick: tiny). The ports'
  `generate` steps their model with a KV cache (torch: updated in place) and picks tokens on
  the host (`core.generation.host`), as `transformers` does in its Python loop. The tf port
  runs twice: its default graph step and `generate(jit_compile=True)` (XLA).

TensorFlow is pinned to the run's thread count (intra- and inter-op pools) before it starts.
"""
from __future__ import annotations

from scripts.bench import models
from scripts.bench.registry import Case, Context, Variant, suite


def _tensorflow(threads: int):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:        # already initialised by an earlier suite: settings are fixed
        pass
    return tf


@suite("ports", "generated torch and tf ports vs transformers: BERT forward, GPT-2 decode")
def ports(ctx: Context) -> list[Case]:
    import numpy as np
    import torch
    import transformers

    tf = _tensorflow(ctx.threads)
    import ports.tf as tf_port
    import ports.torch as torch_port

    preset = ctx.preset
    cases = []

    # -- forward ---------------------------------------------------------------------------------
    folder = ctx.bert_folder(preset["bert"])
    batch, seq = preset["batch"], preset["seq"]
    ref = transformers.BertModel.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()
    pt_model = torch_port.AutoModel.from_pretrained(folder)
    tf_model = tf_port.AutoModel.from_pretrained(folder)
    ids = np.random.default_rng(0).integers(1, ref.config.vocab_size, size=(batch, seq))
    mask = np.ones((batch, seq), np.int64)
    torch_inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    tf_inputs = {"input_ids": tf.constant(ids, tf.int32), "attention_mask": tf.constant(mask, tf.int32)}
    tf_forward = tf.function(lambda input_ids, attention_mask: tf_model(input_ids=input_ids,
                                                                        attention_mask=attention_mask))

    def run_torch_port():
        with torch.inference_mode():
            return pt_model(**torch_inputs)

    def run_tf_port():
        return tf_forward(**tf_inputs).last_hidden_state.numpy()

    def run_ref():
        with torch.inference_mode():
            return ref(**torch_inputs)

    def check_forward() -> dict:
        expected = run_ref().last_hidden_state.numpy()
        return {"max_abs_diff_torch_port": float(np.max(np.abs(run_torch_port().last_hidden_state.numpy() - expected))),
                "max_abs_diff_tf_port": float(np.max(np.abs(run_tf_port() - expected)))}

    config = ref.config
    cases.append(Case(
        name="bert-forward-ports",
        description=(f"BertModel forward, {config.num_hidden_layers} layers, d={config.hidden_size}, "
                     f"batch {batch} × {seq}, float32: torch port, tf port, transformers"),
        variants=[Variant("torch-port", run_torch_port, "torch", "rosetta"),
                  Variant("tf-port", run_tf_port, "tf", "rosetta"),
                  Variant("transformers", run_ref, "torch", "reference")],
        baseline="transformers",
        work={"flops": models.bert_forward_flops(config, batch, seq), "items": batch, "item_unit": "seq"},
        info={"folder": str(folder), "torch-port": "ports.torch.AutoModel, eager, inference_mode (sdpa twin)",
              "tf-port": "ports.tf.AutoModel under one tf.function (graph mode)",
              "reference": "transformers.BertModel, sdpa, inference_mode"},
        check=check_forward,
    ))

    # -- decode ----------------------------------------------------------------------------------
    folder = ctx.folder("gpt2", preset["gpt2"])
    prompt, new = preset["decode_prompt"], preset["decode_new"]
    ref_lm = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa",
                                                          dtype=torch.float32).eval()
    pt_lm = torch_port.AutoModelForCausalLM.from_pretrained(folder)
    tf_lm = tf_port.AutoModelForCausalLM.from_pretrained(folder)
    prompt_ids = np.random.default_rng(0).integers(0, ref_lm.config.vocab_size, size=(1, prompt))
    torch_ids = torch.from_numpy(prompt_ids)
    options = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False)

    def decode_torch_port():
        with torch.inference_mode():
            return pt_lm.generate(torch_ids, **options)

    def decode_tf_port():
        return tf_lm.generate(tf.constant(prompt_ids, tf.int32), **options)

    def decode_tf_port_xla():
        return tf_lm.generate(tf.constant(prompt_ids, tf.int32), jit_compile=True, **options)

    def decode_ref():
        with torch.inference_mode():
            return ref_lm.generate(torch_ids, attention_mask=torch.ones_like(torch_ids), **options,
                                   pad_token_id=ref_lm.config.eos_token_id)

    def check_decode() -> dict:
        expected = decode_ref().numpy()
        return {"tokens_identical_torch_port": bool((np.asarray(decode_torch_port()) == expected).all()),
                "tokens_identical_tf_port": bool((np.asarray(decode_tf_port()) == expected).all()),
                "tokens_identical_tf_port_xla": bool((np.asarray(decode_tf_port_xla()) == expected).all())}

    nbytes = sum(p.numel() * p.element_size() for p in ref_lm.parameters())
    lm_config = ref_lm.config
    cases.append(Case(
        name="gpt2-decode-ports",
        description=(f"GPT-2 greedy decode, {lm_config.n_layer} layers, d={lm_config.n_embd}, batch 1, "
                     f"{prompt} + {new} new tokens, float32: torch port, tf port, transformers"),
        variants=[Variant("torch-port", decode_torch_port, "torch", "rosetta"),
                  Variant("tf-port", decode_tf_port, "tf", "rosetta"),
                  Variant("tf-port-xla", decode_tf_port_xla, "tf", "rosetta"),
                  Variant("transformers", decode_ref, "torch", "reference")],
        baseline="transformers",
        work={"items": new, "item_unit": "token", "bytes": nbytes * new},
        info={"folder": str(folder), "parameter_bytes": nbytes,
              "ports": "Module.generate: model steps in the framework (KV cache), token choice on the host",
              "tf-port": "the cached step as a tf.function (graph)",
              "tf-port-xla": "generate(jit_compile=True): the cached step compiled by XLA",
              "reference": "transformers.GPT2LMHeadModel.generate (sdpa, DynamicCache, inference_mode)"},
        check=check_decode,
    ))
    return cases
