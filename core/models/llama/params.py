"""LLaMA: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.llama.config import LlamaConfig

BASE_PREFIX = "model"


def decoder_rules(config: LlamaConfig) -> list[Rule]:
    layer = "layers.{layer}"
    block = "layers/block"
    bias = config.attention_bias
    return [
        *embedding("embed_tokens", "embed_tokens"),
        *dense(f"{layer}.self_attn.q_proj", f"{block}/self_attn/q_proj", bias),
        *dense(f"{layer}.self_attn.k_proj", f"{block}/self_attn/k_proj", bias),
        *dense(f"{layer}.self_attn.v_proj", f"{block}/self_attn/v_proj", bias),
        *dense(f"{layer}.self_attn.o_proj", f"{block}/self_attn/o_proj", bias),
        *dense(f"{layer}.mlp.gate_proj", f"{block}/mlp/gate", config.mlp_bias),
        *dense(f"{layer}.mlp.up_proj", f"{block}/mlp/up", config.mlp_bias),
        *dense(f"{layer}.mlp.down_proj", f"{block}/mlp/down", config.mlp_bias),
        *layer_norm(f"{layer}.input_layernorm", f"{block}/input_layernorm", bias=False),
        *layer_norm(f"{layer}.post_attention_layernorm", f"{block}/post_attention_layernorm", bias=False),
        *layer_norm("norm", "norm", bias=False),
    ]


# Rotary buffers older versions persisted (`...self_attn.rotary_emb.inv_freq`); v5 does not.
IGNORE = [r"(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq"]


def key_map(config: LlamaConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "model", decoder_rules(config))
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `embed_tokens` instead.
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    else:
        raise ValueError(f"LLaMA has no task {task!r}")
    return KeyMap(rules, ignore)
