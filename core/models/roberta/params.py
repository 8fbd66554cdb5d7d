"""RoBERTa / XLM-RoBERTa / CamemBERT: Hugging Face tensor names ⇄ Flax param paths.

The backbone's names are BERT's (`encoder_rules` is reused); all three model types keep the
backbone under `roberta.`.
"""
from core.checkpoint.keymap import KeyMap, dense, layer_norm, prefixed, Rule
from core.models.bert.params import encoder_rules
from core.models.roberta.config import RobertaConfig

BASE_PREFIX = "roberta"

# Buffers `transformers` registers (non-persistent in v5, persisted by older versions).
IGNORE = [r"(roberta\.)?embeddings\.position_ids", r"(roberta\.)?embeddings\.token_type_ids"]
# Heads without a pooler: published checkpoints (e.g. roberta-base) carry the pooler of the
# bare model, which `transformers` drops when loading these heads; so do we (listed in the
# load report).
IGNORE_POOLER = [r"roberta\.pooler\.dense\.weight", r"roberta\.pooler\.dense\.bias"]


def key_map(config: RobertaConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "roberta", encoder_rules(config))
    ignore = list(IGNORE)
    if task != "multiple-choice":
        ignore += IGNORE_POOLER
    if task == "masked-lm":
        rules += [
            *dense("lm_head.dense", "lm_head/dense"),
            *layer_norm("lm_head.layer_norm", "lm_head/layer_norm"),
            Rule("lm_head.bias", "lm_head/bias"),
        ]
        if config.tie_word_embeddings:
            # Tied copies older writers keep; the model reads the embedding table and `bias`.
            ignore += [r"lm_head\.decoder\.weight", r"lm_head\.decoder\.bias"]
        else:
            rules += dense("lm_head.decoder", "lm_head/decoder")
    elif task == "sequence-classification":
        rules += [*dense("classifier.dense", "classifier/dense"),
                  *dense("classifier.out_proj", "classifier/out_proj")]
    elif task in ("token-classification", "multiple-choice"):
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"{config.model_type} has no task {task!r}")
    return KeyMap(rules, ignore)
