"""OpenAI GPT: Hugging Face tensor names ⇄ Flax param paths.

The projections are `transformers` `Conv1D`s, stored (in, out) — the Flax kernel layout — so
those rules do not transpose (`conv1d`); the LM head and the score are torch `Linear`s.
"""
from core.checkpoint.keymap import KeyMap, Rule, conv1d, dense, embedding, layer_norm, prefixed
from core.models.openai.config import OpenAIGPTConfig

BASE_PREFIX = "transformer"


def decoder_rules(config: OpenAIGPTConfig) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    return [
        *embedding("tokens_embed", "tokens_embed"),
        *embedding("positions_embed", "positions_embed"),
        *conv1d(f"{layer}.attn.c_attn", f"{block}/attn/c_attn"),
        *conv1d(f"{layer}.attn.c_proj", f"{block}/attn/c_proj"),
        *layer_norm(f"{layer}.ln_1", f"{block}/ln_1"),
        *conv1d(f"{layer}.mlp.c_fc", f"{block}/mlp/up"),
        *conv1d(f"{layer}.mlp.c_proj", f"{block}/mlp/down"),
        *layer_norm(f"{layer}.ln_2", f"{block}/ln_2"),
    ]


# Non-persistent buffers (the causal triangle, position ids) that older checkpoints carry.
IGNORE = [r"(transformer\.)?h\.\d+\.attn\.bias", r"(transformer\.)?position_ids"]


def key_map(config: OpenAIGPTConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "transformer", decoder_rules(config))
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `tokens_embed` instead.
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    else:
        raise ValueError(f"OpenAI GPT has no task {task!r}")
    return KeyMap(rules, ignore)
