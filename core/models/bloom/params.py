"""BLOOM: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.bloom.config import BloomConfig

BASE_PREFIX = "transformer"


def decoder_rules(config: BloomConfig) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    return [
        *embedding("word_embeddings", "word_embeddings"),
        *layer_norm("word_embeddings_layernorm", "word_embeddings_layernorm"),
        *layer_norm(f"{layer}.input_layernorm", f"{block}/input_layernorm"),
        *dense(f"{layer}.self_attention.query_key_value", f"{block}/self_attention/query_key_value"),
        *dense(f"{layer}.self_attention.dense", f"{block}/self_attention/dense"),
        *layer_norm(f"{layer}.post_attention_layernorm", f"{block}/post_attention_layernorm"),
        *dense(f"{layer}.mlp.dense_h_to_4h", f"{block}/mlp/dense_h_to_4h"),
        *dense(f"{layer}.mlp.dense_4h_to_h", f"{block}/mlp/dense_4h_to_h"),
        *layer_norm("ln_f", "ln_f"),
    ]


def key_map(config: BloomConfig, task: str) -> KeyMap:
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
        raise ValueError(f"BLOOM has no task {task!r}")
    return KeyMap(rules, ignore)
