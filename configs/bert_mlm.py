"""Masked-LM pretraining of a fresh BERT on the embedded corpus.

    python -m experiments.train --config=configs/bert_mlm.py --workdir=/tmp/mlm
    python -m experiments.train --config=configs/bert_mlm.py:tiny --workdir=/tmp/t --config.optimizer.lr=3e-4

Variants: `default` (a small BERT; ~2 min on two CPU cores), `tiny` (seconds; tests), `base`
(BERT-base shape on a multi-device mesh; point data.train at a real corpus).
"""
import ml_collections

from configs.base import base_config, bert_hf

VARIANTS = ("default", "tiny", "base")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"configs/bert_mlm.py:{variant}: unknown variant; choose one of {VARIANTS}")
    c = base_config()
    c.task = "masked-lm"
    c.tokenizer = "experiments/data/wordpiece"
    c.model.family = "bert"
    if variant == "default":
        c.model.hf = bert_hf(hidden=128, layers=2, heads=2, intermediate=512, max_positions=128)
        c.data.seq_len = 64
        c.train.steps = 400
        c.train.batch_size = 16
        c.train.eval_every = 100
        c.checkpoint.every = 100
        c.optimizer.lr = 1e-3
        c.optimizer.warmup_steps = 40
    elif variant == "tiny":
        c.model.hf = bert_hf(hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)
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
    else:
        c.model.hf = bert_hf(hidden=768, layers=12, heads=12, intermediate=3072, max_positions=512)
        c.data.seq_len = 128
        c.train.steps = 100_000
        c.train.batch_size = 256
        c.train.eval_batch_size = 256
        c.train.log_every = 100
        c.train.eval_every = 5_000
        c.checkpoint.every = 5_000
        c.optimizer.lr = 1e-4
        c.optimizer.warmup_steps = 10_000
        c.optimizer.schedule = "linear"
        c.model.dtype = "bfloat16"
        c.parallel.mode = "sharded"
        c.parallel.mesh_fsdp = -1
        c.parallel.mesh_data = 1
        c.parallel.fsdp_min_size = 2**16
    return c
