"""BERT: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.bert.config import BertConfig

BASE_PREFIX = "bert"


def encoder_rules(config: BertConfig) -> list[Rule]:
    layer = "encoder.layer.{layer}"
    block = "encoder/layer/block"
    return [
        *embedding("embeddings.word_embeddings", "embeddings/word_embeddings"),
        *embedding("embeddings.position_embeddings", "embeddings/position_embeddings"),
        *embedding("embeddings.token_type_embeddings", "embeddings/token_type_embeddings"),
        *layer_norm("embeddings.LayerNorm", "embeddings/LayerNorm"),
        *dense(f"{layer}.attention.self.{{proj}}", f"{block}/attention/self/{{proj}}"),
        *dense(f"{layer}.attention.output.dense", f"{block}/attention/output/dense"),
        *layer_norm(f"{layer}.attention.output.LayerNorm", f"{block}/attention/output/LayerNorm"),
        *dense(f"{layer}.intermediate.dense", f"{block}/intermediate/dense"),
        *dense(f"{layer}.output.dense", f"{block}/output/dense"),
        *layer_norm(f"{layer}.output.LayerNorm", f"{block}/output/LayerNorm"),
        *dense("pooler.dense", "pooler/dense"),
    ]


# Buffers `transformers` registers (non-persistent in v5, persisted by older versions).
IGNORE = [r"(bert\.)?embeddings\.position_ids", r"(bert\.)?embeddings\.token_type_ids"]


def key_map(config: BertConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "bert", encoder_rules(config))
    ignore = list(IGNORE)
    if task not in ("sequence-classification", "multiple-choice"):
        # Heads without a pooler: published checkpoints (bert-base-*) still carry one.
        ignore.append(r"bert\.pooler\..*")
    if task == "masked-lm":
        rules += [
            *dense("cls.predictions.transform.dense", "cls/predictions/transform/dense"),
            *layer_norm("cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm"),
            Rule("cls.predictions.bias", "cls/predictions/bias"),
        ]
        if config.tie_word_embeddings:
            # Tied copies some writers keep; the model reads the embedding table instead.
            ignore += [r"cls\.predictions\.decoder\.weight", r"cls\.predictions\.decoder\.bias"]
        else:
            rules += dense("cls.predictions.decoder", "cls/predictions/decoder")
    elif task in ("sequence-classification", "token-classification", "multiple-choice"):
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"BERT has no task {task!r}")
    return KeyMap(rules, ignore)
