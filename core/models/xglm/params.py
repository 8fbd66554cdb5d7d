"""XGLM: Hugging Face tensor names ⇄ Flax param paths (torch `Linear`s: transposed kernels)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.xglm.config import XGLMConfig

BASE_PREFIX = "model"


def fairseq_layer_rules(layer: str, block: str) -> list[Rule]:
    """The rules of one `FairseqDecoderLayer` (XGLM's and BioGPT's names)."""
    return [
        *dense(f"{layer}.self_attn.k_proj", f"{block}/self_attn/k_proj"),
        *dense(f"{layer}.self_attn.v_proj", f"{block}/self_attn/v_proj"),
        *dense(f"{layer}.self_attn.q_proj", f"{block}/self_attn/q_proj"),
        *dense(f"{layer}.self_attn.out_proj", f"{block}/self_attn/out_proj"),
        *layer_norm(f"{layer}.self_attn_layer_norm", f"{block}/self_attn_layer_norm"),
        *dense(f"{layer}.fc1", f"{block}/fc1"),
        *dense(f"{layer}.fc2", f"{block}/fc2"),
        *layer_norm(f"{layer}.final_layer_norm", f"{block}/final_layer_norm"),
    ]


def decoder_rules(config: XGLMConfig) -> list[Rule]:
    return [
        *embedding("embed_tokens", "embed_tokens"),
        *fairseq_layer_rules("layers.{layer}", "layers/block"),
        *layer_norm("layer_norm", "layer_norm"),
    ]


# The sinusoidal table is a non-persistent buffer; older checkpoints may carry it.
IGNORE = [r"(model\.)?embed_positions\.weights?"]


def key_map(config: XGLMConfig, task: str) -> KeyMap:
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
    else:
        raise ValueError(f"XGLM has no task {task!r}")
    return KeyMap(rules, ignore)
