"""Falcon: Hugging Face tensor names ⇄ Flax param paths (the LayerNorms a block has depend on
the variant: see `FalconConfig.two_layernorms`)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.falcon.config import FalconConfig

BASE_PREFIX = "transformer"


def decoder_rules(config: FalconConfig) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    bias = config.bias
    if config.two_layernorms:
        norms = ["ln_attn", "ln_mlp"]
    else:
        norms = ["input_layernorm"]
    if not config.parallel_attn:
        norms.append("post_attention_layernorm")
    rules = [*embedding("word_embeddings", "word_embeddings")]
    for norm in norms:
        rules += layer_norm(f"{layer}.{norm}", f"{block}/{norm}")
    return rules + [
        *dense(f"{layer}.self_attention.query_key_value", f"{block}/self_attention/query_key_value", bias),
        *dense(f"{layer}.self_attention.dense", f"{block}/self_attention/dense", bias),
        *dense(f"{layer}.mlp.dense_h_to_4h", f"{block}/mlp/dense_h_to_4h", bias),
        *dense(f"{layer}.mlp.dense_4h_to_h", f"{block}/mlp/dense_4h_to_h", bias),
        *layer_norm("ln_f", "ln_f"),
    ]


def key_map(config: FalconConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config))
    rules = prefixed(BASE_PREFIX, "transformer", decoder_rules(config))
    ignore = []
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `word_embeddings` instead.
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"Falcon has no task {task!r}")
    return KeyMap(rules, ignore)
