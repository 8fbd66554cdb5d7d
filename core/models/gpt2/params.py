"""GPT-2: Hugging Face tensor names ⇄ Flax param paths.

`transformers` writes GPT-2's projections as `Conv1D`, whose weight is stored (in, out) — the
Flax kernel layout already — so those rules do not transpose (`conv1d`). The LM head is a
torch `Linear` (out, in) and does (`dense`).
"""
from core.checkpoint.keymap import KeyMap, Rule, conv1d, dense, embedding, layer_norm, prefixed
from core.models.gpt2.config import GPT2Config

BASE_PREFIX = "transformer"


def decoder_rules(config: GPT2Config) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    return [
        *embedding("wte", "wte"),
        *embedding("wpe", "wpe"),
        *layer_norm(f"{layer}.ln_1", f"{block}/ln_1"),
        *conv1d(f"{layer}.attn.c_attn", f"{block}/attn/c_attn"),
        *conv1d(f"{layer}.attn.c_proj", f"{block}/attn/c_proj"),
        *layer_norm(f"{layer}.ln_2", f"{block}/ln_2"),
        *conv1d(f"{layer}.mlp.c_fc", f"{block}/mlp/up"),
        *conv1d(f"{layer}.mlp.c_proj", f"{block}/mlp/down"),
        *layer_norm("ln_f", "ln_f"),
    ]


# The causal-mask buffers older checkpoints carry (openai-community/gpt2: `h.0.attn.bias`,
# `h.0.attn.masked_bias`); `transformers` v5 builds masks instead and drops them too.
IGNORE = [r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)"]


def key_map(config: GPT2Config, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "transformer", decoder_rules(config))
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `wte` instead.
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    else:
        raise ValueError(f"GPT-2 has no task {task!r}")
    return KeyMap(rules, ignore)
