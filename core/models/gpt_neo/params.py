"""GPT-Neo: Hugging Face tensor names ⇄ Flax param paths.

`transformers` nests the attention projections as `attn.attention.*` and names the MLP
`c_fc`/`c_proj` (torch Linears, unlike GPT-2's Conv1D: transposed).
"""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.gpt_neo.config import GPTNeoConfig

BASE_PREFIX = "transformer"


def decoder_rules(config: GPTNeoConfig) -> list[Rule]:
    layer = "h.{layer}"
    block = "h/block"
    return [
        *embedding("wte", "wte"),
        *embedding("wpe", "wpe"),
        *layer_norm(f"{layer}.ln_1", f"{block}/ln_1"),
        *dense(f"{layer}.attn.attention.q_proj", f"{block}/attn/q_proj", bias=False),
        *dense(f"{layer}.attn.attention.k_proj", f"{block}/attn/k_proj", bias=False),
        *dense(f"{layer}.attn.attention.v_proj", f"{block}/attn/v_proj", bias=False),
        *dense(f"{layer}.attn.attention.out_proj", f"{block}/attn/out_proj"),
        *layer_norm(f"{layer}.ln_2", f"{block}/ln_2"),
        *dense(f"{layer}.mlp.c_fc", f"{block}/mlp/up"),
        *dense(f"{layer}.mlp.c_proj", f"{block}/mlp/down"),
        *layer_norm("ln_f", "ln_f"),
    ]


# The causal-mask buffers older checkpoints persisted (`h.0.attn.attention.bias`, `.masked_bias`).
IGNORE = [r"(transformer\.)?h\.\d+\.attn\.attention\.(bias|masked_bias)"]


def key_map(config: GPTNeoConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(decoder_rules(config), IGNORE)
    rules = prefixed(BASE_PREFIX, "transformer", decoder_rules(config))
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The tied copy some writers keep; the model reads `wte` instead.
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
        raise ValueError(f"GPT-Neo has no task {task!r}")
    return KeyMap(rules, ignore)
