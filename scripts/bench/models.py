"""Size presets, the shared Hugging Face folders, and analytic FLOP counts.

Every suite that compares Rosetta with `transformers` loads both from ONE folder written by
`transformers` `save_pretrained` (random weights, seed 0), so both run the same weights. The
folders live in the run's work directory (a temp dir, or `--cache-dir` to keep them).
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import time

# transformers.BertConfig() defaults: BERT-base, 110M parameters.
BERT_BASE: dict = {}
# --quick: a tiny BERT (about 0.6M parameters), same code paths.
BERT_TINY = dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=512, max_position_embeddings=128)

# transformers.GPT2Config() defaults: GPT-2 small, 124M parameters. --quick: 2 tiny layers.
GPT2_SMALL: dict = {}
GPT2_TINY = dict(vocab_size=1000, n_embd=128, n_layer=2, n_head=2, n_positions=256, bos_token_id=999, eos_token_id=999)
# transformers.T5Config() defaults: t5-small, 60M parameters (generation starts from the pad id,
# as t5-small's config.json says).
T5_SMALL = dict(decoder_start_token_id=0)
T5_TINY = dict(vocab_size=1000, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4, decoder_start_token_id=0)

PRESETS = {
    "full": {
        "bert": BERT_BASE, "batch": 8, "seq": 128,
        "gpt2": GPT2_SMALL, "decode_prompt": 16, "decode_new": 64, "decode_batches": (1, 8),
        "train_batch": 8, "train_seq": 128, "train_warmup": 1, "train_repeats": 3,
        "t5": T5_SMALL, "seq2seq_batch": 1, "seq2seq_source": 256, "seq2seq_new": 64, "seq2seq_beams": 4,
        "compile_bert": dict(num_hidden_layers=12),
        "matmul_n": 2048, "read_bytes": 2 ** 30, "warmup": 2, "repeats": 5,
        "load_warmup": 1, "load_repeats": 5, "compile_repeats": 3,
    },
    "quick": {
        "bert": BERT_TINY, "batch": 2, "seq": 32,
        "gpt2": GPT2_TINY, "decode_prompt": 8, "decode_new": 8, "decode_batches": (1, 2),
        "train_batch": 2, "train_seq": 32, "train_warmup": 1, "train_repeats": 2,
        "t5": T5_TINY, "seq2seq_batch": 1, "seq2seq_source": 16, "seq2seq_new": 8, "seq2seq_beams": 2,
        # Compile time depends on depth, hardly on width: keep 12 layers, tiny width.
        "compile_bert": {**BERT_TINY, "num_hidden_layers": 12},
        "matmul_n": 1024, "read_bytes": 2 ** 27, "warmup": 1, "repeats": 3,
        "load_warmup": 1, "load_repeats": 3, "compile_repeats": 2,
    },
}


def bert_forward_flops(config, batch: int, seq: int, pooler: bool = True) -> float:
    """Matmul FLOPs (2 per multiply-add) of a BERT encoder forward; `config` is any object with
    BERT's field names. Counted: Q/K/V/output projections (8·d² per token per layer), the
    feed-forward (4·d·d_ff), attention scores and their weighted sum (4·seq·d), the pooler
    (2·d² per sequence). Not counted (elementwise, < 1%): embeddings, LayerNorm, GELU, softmax."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token_layer = 8 * d * d + 4 * d * ff + 4 * seq * d
    total = batch * seq * layers * per_token_layer
    if pooler:
        total += batch * 2 * d * d
    return float(total)


def gpt2_forward_flops(config, batch: int, seq: int) -> float:
    """Matmul FLOPs of a GPT-2 LM forward over `seq` tokens (causal attention counted in full,
    as the kernels compute it): per token and layer 24·d² (QKV, output, 4·d MLP) + 4·seq·d
    (scores and weighted sum); the LM head 2·d·vocab per token."""
    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size
    return float(batch * seq * (layers * (24 * d * d + 4 * seq * d) + 2 * d * vocab))


# Which transformers classes write each benchmark folder.
FOLDER_CLASSES = {"bert": ("BertConfig", "BertModel"), "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
                  "t5": ("T5Config", "T5ForConditionalGeneration")}


def build_bert_folder(work_dir: pathlib.Path, config_kwargs: dict, log=print) -> pathlib.Path:
    return build_folder(work_dir, "bert", config_kwargs, log)


def build_folder(work_dir: pathlib.Path, kind: str, config_kwargs: dict, log=print) -> pathlib.Path:
    """A `transformers` model of `kind` (FOLDER_CLASSES) with random weights (seed 0), saved
    with `save_pretrained` (safetensors, one file). Reused when the folder already exists with
    the same config."""
    import torch
    import transformers

    config_name, model_name = FOLDER_CLASSES[kind]
    key = json.dumps({"kind": kind, "config": config_kwargs, "transformers": transformers.__version__,
                      "seed": 0}, sort_keys=True)
    folder = pathlib.Path(work_dir) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / "config.json").is_file() and (folder / "bench-key.json").is_file():
        if (folder / "bench-key.json").read_text() == key:
            log(f"  reusing {folder}")
            return folder
    start = time.perf_counter()
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**config_kwargs)
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(folder)
    (folder / "bench-key.json").write_text(key)
    log(f"  wrote {folder} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{time.perf_counter() - start:.1f} s)")
    return folder


def weight_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix in (".safetensors", ".bin"))
