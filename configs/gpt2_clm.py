"""Causal-LM training of a fresh GPT-2 on the embedded corpus (byte-level BPE tokenizer).

    python -m experiments.train --config=configs/gpt2_clm.py --workdir=/tmp/clm

This is the main job of the README (`bash scripts/run_main.sh`): the default variant trains a
2-layer GPT-2 in about two minutes on two CPU cores, prints samples at each eval, exports a
Hugging Face folder to <workdir>/hf and reports that folder's max |diff| in the PyTorch port and
in `transformers` from JAX. Variants: `default`, `tiny` (a few seconds; the tests use it).
"""
import ml_collections

from configs.base import base_config

VARIANTS = ("default", "tiny")


def gpt2_hf(n_embd: int, n_layer: int, n_head: int, n_positions: int, dropout: float = 0.1):
    return ml_collections.ConfigDict(dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=n_positions,
                                          resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout))


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"configs/gpt2_clm.py:{variant}: unknown variant; choose one of {VARIANTS}")
    c = base_config()
    c.task = "causal-lm"
    c.tokenizer = "experiments/data/bpe"
    c.model.family = "gpt2"
    c.optimizer.no_decay = "bias,norm,embedding"
    c.sample.prompts = "We hold these truths|The nation"
    if variant == "default":
        c.model.hf = gpt2_hf(n_embd=128, n_layer=2, n_head=2, n_positions=128)
        c.data.seq_len = 64
        c.train.steps = 300
        c.train.batch_size = 16
        c.train.eval_every = 100
        c.checkpoint.every = 100
        c.optimizer.lr = 1e-3
        c.optimizer.warmup_steps = 30
    else:
        c.model.hf = gpt2_hf(n_embd=32, n_layer=2, n_head=2, n_positions=64)
        c.data.seq_len = 32
        c.train.steps = 20
        c.train.batch_size = 8
        c.train.eval_batch_size = 8
        c.train.log_every = 5
        c.train.eval_every = 10
        c.checkpoint.every = 10
        c.optimizer.warmup_steps = 5
        c.log.progress = False
        c.export_check = False           # seconds of torch/transformers imports; the main-job test turns it on
    return c
