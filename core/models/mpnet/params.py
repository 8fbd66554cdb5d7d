"""MPNet: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.mpnet.config import MPNetConfig

BASE_PREFIX = "mpnet"


def encoder_rules(config: MPNetConfig) -> list[Rule]:
    layer = "encoder.layer.{layer}"
    block = "encoder/layer/block"
    return [
        *embedding("embeddings.word_embeddings", "embeddings/word_embeddings"),
        *embedding("embeddings.position_embeddings", "embeddings/position_embeddings"),
        *layer_norm("embeddings.LayerNorm", "embeddings/LayerNorm"),
        *dense(f"{layer}.attention.attn.{{proj}}", f"{block}/attention/attn/{{proj}}"),
        *layer_norm(f"{layer}.attention.LayerNorm", f"{block}/attention/LayerNorm"),
        *dense(f"{layer}.intermediate.dense", f"{block}/intermediate/dense"),
        *dense(f"{layer}.output.dense", f"{block}/output/dense"),
        *layer_norm(f"{layer}.output.LayerNorm", f"{block}/output/LayerNorm"),
        *embedding("encoder.relative_attention_bias", "encoder/relative_attention_bias"),
        *dense("pooler.dense", "pooler/dense"),
    ]


# The position id buffer `transformers` registers (non-persistent in v5, persisted by older versions).
IGNORE = [r"(mpnet\.)?embeddings\.position_ids"]


def key_map(config: MPNetConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "mpnet", encoder_rules(config))
    ignore = list(IGNORE)
    if task == "masked-lm":
        rules += [
            *dense("lm_head.dense", "lm_head/dense"),
            *layer_norm("lm_head.layer_norm", "lm_head/layer_norm"),
            Rule("lm_head.bias", "lm_head/bias"),
        ]
        if config.tie_word_embeddings:
            # Tied copies some writers keep; the model reads the embedding table and `lm_head.bias`.
            ignore += [r"lm_head\.decoder\.weight", r"lm_head\.decoder\.bias"]
        else:
            rules += dense("lm_head.decoder", "lm_head/decoder")
    elif task == "sequence-classification":
        rules += [*dense("classifier.dense", "classifier/dense"), *dense("classifier.out_proj", "classifier/out_proj")]
    elif task in ("token-classification", "multiple-choice"):
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"MPNet has no task {task!r}")
    return KeyMap(rules, ignore)
