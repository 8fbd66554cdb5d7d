"""ALBERT: Hugging Face tensor names ⇄ Flax param paths.

A group's params are stored once (`encoder.albert_layer_groups.{group}.albert_layers.{inner}`),
however many layers share them; Flax list attributes are named `<attr>_<index>`.
"""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.albert.config import AlbertConfig

BASE_PREFIX = "albert"


def encoder_rules(config: AlbertConfig) -> list[Rule]:
    hf_layer = "encoder.albert_layer_groups.{group}.albert_layers.{inner}"
    fl_layer = "encoder/albert_layer_groups_{group}/albert_layers_{inner}"
    rules = [
        *embedding("embeddings.word_embeddings", "embeddings/word_embeddings"),
        *embedding("embeddings.position_embeddings", "embeddings/position_embeddings"),
        *embedding("embeddings.token_type_embeddings", "embeddings/token_type_embeddings"),
        *layer_norm("embeddings.LayerNorm", "embeddings/LayerNorm"),
        *dense("encoder.embedding_hidden_mapping_in", "encoder/embedding_hidden_mapping_in"),
    ]
    for proj in ("query", "key", "value", "dense"):
        rules += dense(f"{hf_layer}.attention.{proj}", f"{fl_layer}/attention/{proj}")
    rules += [
        *layer_norm(f"{hf_layer}.attention.LayerNorm", f"{fl_layer}/attention/LayerNorm"),
        *dense(f"{hf_layer}.ffn", f"{fl_layer}/ffn"),
        *dense(f"{hf_layer}.ffn_output", f"{fl_layer}/ffn_output"),
        *layer_norm(f"{hf_layer}.full_layer_layer_norm", f"{fl_layer}/full_layer_layer_norm"),
        *dense("pooler", "pooler"),
    ]
    return rules


# Buffers `transformers` registers (non-persistent in v5, persisted by older versions).
IGNORE = [r"(albert\.)?embeddings\.position_ids", r"(albert\.)?embeddings\.token_type_ids"]


def mlm_rules(config: AlbertConfig) -> tuple[list[Rule], list[str]]:
    rules = [
        *dense("predictions.dense", "predictions/dense"),
        *layer_norm("predictions.LayerNorm", "predictions/LayerNorm"),
        Rule("predictions.bias", "predictions/bias"),
    ]
    if config.tie_word_embeddings:
        # Tied: decoder.weight is the word embedding table and decoder.bias is predictions.bias;
        # transformers writes neither, and copies some writers keep are ignored.
        return rules, [r"predictions\.decoder\.weight", r"predictions\.decoder\.bias"]
    return rules + dense("predictions.decoder", "predictions/decoder"), []


def key_map(config: AlbertConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "albert", encoder_rules(config))
    ignore = list(IGNORE)
    if task in ("masked-lm", "pretraining"):
        head_rules, head_ignore = mlm_rules(config)
        rules += head_rules
        ignore += head_ignore
        if task == "pretraining":
            rules += dense("sop_classifier.classifier", "sop_classifier/classifier")
    elif task in ("sequence-classification", "token-classification", "multiple-choice"):
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"ALBERT has no task {task!r}")
    return KeyMap(rules, ignore)
