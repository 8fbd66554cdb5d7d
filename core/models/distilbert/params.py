"""DistilBERT: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.distilbert.config import DistilBertConfig

BASE_PREFIX = "distilbert"


def encoder_rules(config: DistilBertConfig) -> list[Rule]:
    layer = "transformer.layer.{layer}"
    block = "transformer/layer/block"
    rules = [
        *embedding("embeddings.word_embeddings", "embeddings/word_embeddings"),
        # A weight in every checkpoint, sinusoidal_pos_embds or not.
        *embedding("embeddings.position_embeddings", "embeddings/position_embeddings"),
        *layer_norm("embeddings.LayerNorm", "embeddings/LayerNorm"),
    ]
    for proj in ("q_lin", "k_lin", "v_lin", "out_lin"):
        rules += dense(f"{layer}.attention.{proj}", f"{block}/attention/{proj}")
    rules += [
        *layer_norm(f"{layer}.sa_layer_norm", f"{block}/sa_layer_norm"),
        *dense(f"{layer}.ffn.lin1", f"{block}/ffn/lin1"),
        *dense(f"{layer}.ffn.lin2", f"{block}/ffn/lin2"),
        *layer_norm(f"{layer}.output_layer_norm", f"{block}/output_layer_norm"),
    ]
    return rules


# The position-ids buffer (non-persistent in v5, persisted by older versions).
IGNORE = [r"(distilbert\.)?embeddings\.position_ids"]


def key_map(config: DistilBertConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "distilbert", encoder_rules(config))
    ignore = list(IGNORE)
    if task == "masked-lm":
        rules += [
            *dense("vocab_transform", "vocab_transform"),
            *layer_norm("vocab_layer_norm", "vocab_layer_norm"),
        ]
        if config.tie_word_embeddings:
            # transformers writes only the bias; a copy of the tied weight some writers keep is ignored.
            rules.append(Rule("vocab_projector.bias", "vocab_projector/bias"))
            ignore.append(r"vocab_projector\.weight")
        else:
            rules += dense("vocab_projector", "vocab_projector")
    elif task in ("sequence-classification", "multiple-choice"):
        rules += [*dense("pre_classifier", "pre_classifier"), *dense("classifier", "classifier")]
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"DistilBERT has no task {task!r}")
    return KeyMap(rules, ignore)
