"""BioGPT: Hugging Face tensor names ⇄ Flax param paths (torch `Linear`s: transposed kernels)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.biogpt.config import BioGptConfig
from core.models.xglm.params import fairseq_layer_rules

BASE_PREFIX = "biogpt"


def decoder_rules(config: BioGptConfig) -> list[Rule]:
    return [
        *embedding("embed_tokens", "embed_tokens"),
        *embedding("embed_positions", "embed_positions"),
        *fairseq_layer_rules("layers.{layer}", "layers/block"),
        *layer_norm("layer_norm", "layer_norm"),
    ]


def key_map(config: BioGptConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), [])
    rules = prefixed(BASE_PREFIX, "biogpt", decoder_rules(config))
    ignore = []
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `embed_tokens` instead.
            ignore.append(r"output_projection\.weight")
        else:
            rules += dense("output_projection", "output_projection", bias=False)
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    else:
        raise ValueError(f"BioGPT has no task {task!r}")
    return KeyMap(rules, ignore)
