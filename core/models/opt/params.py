"""OPT: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.opt.config import OPTConfig

BASE_PREFIX = "model"


def decoder_rules(config: OPTConfig) -> list[Rule]:
    layer = "decoder.layers.{layer}"
    block = "decoder/layers/block"
    bias = config.enable_bias
    rules = [
        *embedding("decoder.embed_tokens", "decoder/embed_tokens"),
        *embedding("decoder.embed_positions", "decoder/embed_positions"),
        *dense(f"{layer}.self_attn.q_proj", f"{block}/self_attn/q_proj", bias),
        *dense(f"{layer}.self_attn.k_proj", f"{block}/self_attn/k_proj", bias),
        *dense(f"{layer}.self_attn.v_proj", f"{block}/self_attn/v_proj", bias),
        *dense(f"{layer}.self_attn.out_proj", f"{block}/self_attn/out_proj", bias),
        *dense(f"{layer}.fc1", f"{block}/fc1", bias),
        *dense(f"{layer}.fc2", f"{block}/fc2", bias),
    ]
    if config.layer_norm_elementwise_affine:
        rules += [*layer_norm(f"{layer}.self_attn_layer_norm", f"{block}/self_attn_layer_norm"),
                  *layer_norm(f"{layer}.final_layer_norm", f"{block}/final_layer_norm")]
        if config.has_final_layer_norm:
            rules += layer_norm("decoder.final_layer_norm", "decoder/final_layer_norm")
    if config.proj_dim != config.hidden_size:
        rules += [*dense("decoder.project_in", "decoder/project_in", bias=False),
                  *dense("decoder.project_out", "decoder/project_out", bias=False)]
    return rules


def key_map(config: OPTConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config))
    rules = prefixed(BASE_PREFIX, "model", decoder_rules(config))
    ignore = []
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `embed_tokens` instead.
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"OPT has no task {task!r}")
    return KeyMap(rules, ignore)
