"""GPTBigCode: Hugging Face tensor names ⇄ Flax param paths (torch `Linear`s: transposed)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.gpt_bigcode.config import GPTBigCodeConfig

BASE_PREFIX = "transformer"


def decoder_rules(config: GPTBigCodeConfig) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    return [
        *embedding("wte", "wte"),
        *embedding("wpe", "wpe"),
        *layer_norm(f"{layer}.ln_1", f"{block}/ln_1"),
        *dense(f"{layer}.attn.c_attn", f"{block}/attn/c_attn"),
        *dense(f"{layer}.attn.c_proj", f"{block}/attn/c_proj"),
        *layer_norm(f"{layer}.ln_2", f"{block}/ln_2"),
        *dense(f"{layer}.mlp.c_fc", f"{block}/mlp/up"),
        *dense(f"{layer}.mlp.c_proj", f"{block}/mlp/down"),
        *layer_norm("ln_f", "ln_f"),
    ]


# The causal-mask buffers older checkpoints carry (the model's `bias`, per-layer mask buffers);
# `transformers` v5 builds masks instead and does not persist them.
IGNORE = [r"(transformer\.)?bias", r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)"]


def key_map(config: GPTBigCodeConfig, task: str) -> KeyMap:
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
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    else:
        raise ValueError(f"GPTBigCode has no task {task!r}")
    return KeyMap(rules, ignore)
