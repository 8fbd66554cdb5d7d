"""GPT-NeoX: Hugging Face tensor names ⇄ Flax param paths.

Checkpoints store the LM head as `embed_out` (transformers v5 renames it `lm_head` in memory and
back on save); a file that spells it `lm_head` loads too. The fused `query_key_value` keeps its
per-head [q | k | v] layout: the model reshapes, the key map only renames.
"""
from core.checkpoint.keymap import TRANSPOSE, KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.gpt_neox.config import GPTNeoXConfig

BASE_PREFIX = "gpt_neox"


def decoder_rules(config: GPTNeoXConfig) -> list[Rule]:
    layer = "layers.{layer}"
    block = "layers/block"
    bias = config.attention_bias
    return [
        *embedding("embed_in", "embed_in"),
        *layer_norm(f"{layer}.input_layernorm", f"{block}/input_layernorm"),
        *layer_norm(f"{layer}.post_attention_layernorm", f"{block}/post_attention_layernorm"),
        *dense(f"{layer}.attention.query_key_value", f"{block}/attention/query_key_value", bias),
        *dense(f"{layer}.attention.dense", f"{block}/attention/dense", bias),
        *dense(f"{layer}.mlp.dense_h_to_4h", f"{block}/mlp/up"),
        *dense(f"{layer}.mlp.dense_4h_to_h", f"{block}/mlp/down"),
        *layer_norm("final_layer_norm", "final_layer_norm"),
    ]


# Buffers older checkpoints persisted (Pythia: the causal-mask `attention.bias`/`masked_bias`,
# `attention.rotary_emb.inv_freq`); `transformers` v5 ignores them too.
IGNORE = [r"(gpt_neox\.)?layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)",
          r"(gpt_neox\.)?rotary_emb\.inv_freq"]


def key_map(config: GPTNeoXConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "gpt_neox", decoder_rules(config))
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `embed_in` instead.
            ignore.append(r"(embed_out|lm_head)\.weight")
        else:
            rules += dense("embed_out", "embed_out", bias=False)
            rules.append(Rule("lm_head.weight", "embed_out/kernel", TRANSPOSE))   # the in-memory spelling
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    elif task == "token-classification":
        rules += dense("classifier", "classifier")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"GPT-NeoX has no task {task!r}")
    return KeyMap(rules, ignore)
