"""ELECTRA: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, layer_norm, prefixed
from core.models.bert import params as bert_params
from core.models.electra.config import ElectraConfig

BASE_PREFIX = "electra"


def encoder_rules(config: ElectraConfig) -> list[Rule]:
    # Embeddings and encoder layers carry BERT's names; ELECTRA has no pooler.
    rules = [r for r in bert_params.encoder_rules(config) if not r.hf.startswith("pooler.")]
    if config.embedding_size != config.hidden_size:
        rules += dense("embeddings_project", "embeddings_project")
    return rules


# Buffers `transformers` registers (non-persistent in v5, persisted by older versions).
IGNORE = [r"(electra\.)?embeddings\.position_ids", r"(electra\.)?embeddings\.token_type_ids"]


def key_map(config: ElectraConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "electra", encoder_rules(config))
    ignore = list(IGNORE)
    if task == "pretraining":
        rules += [*dense("discriminator_predictions.dense", "discriminator_predictions/dense"),
                  *dense("discriminator_predictions.dense_prediction", "discriminator_predictions/dense_prediction")]
    elif task == "masked-lm":
        rules += [
            *dense("generator_predictions.dense", "generator_predictions/dense"),
            *layer_norm("generator_predictions.LayerNorm", "generator_predictions/LayerNorm"),
            Rule("generator_lm_head.bias", "generator_lm_head/bias"),
        ]
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads the embedding table instead.
            ignore.append(r"generator_lm_head\.weight")
        else:
            rules += dense("generator_lm_head", "generator_lm_head", bias=False)
    elif task == "sequence-classification":
        rules += [*dense("classifier.dense", "classifier/dense"), *dense("classifier.out_proj", "classifier/out_proj")]
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    elif task == "multiple-choice":
        rules += dense("classifier", "classifier")
        if config.summary_use_proj:
            rules += dense("sequence_summary.summary", "sequence_summary/summary")
    else:
        raise ValueError(f"ELECTRA has no task {task!r}")
    return KeyMap(rules, ignore)
