"""GPT-J: Hugging Face tensor names ⇄ Flax param paths (CodeGen's key map builds on these)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.gptj.config import GPTJConfig

BASE_PREFIX = "transformer"
LAYER = "h.{layer}"
BLOCK = "h/block"


def decoder_rules(config: GPTJConfig, attention: list[Rule] = None) -> list[Rule]:
    """The backbone's rules; `attention` replaces the q/k/v projections (CodeGen's fused one)."""
    if attention is None:
        attention = [rule for p in ("q_proj", "k_proj", "v_proj")
                     for rule in dense(f"{LAYER}.attn.{p}", f"{BLOCK}/attn/{p}", bias=False)]
    return [
        *embedding("wte", "wte"),
        *layer_norm(f"{LAYER}.ln_1", f"{BLOCK}/ln_1"),
        *attention,
        *dense(f"{LAYER}.attn.out_proj", f"{BLOCK}/attn/out_proj", bias=False),
        *dense(f"{LAYER}.mlp.fc_in", f"{BLOCK}/mlp/up"),
        *dense(f"{LAYER}.mlp.fc_out", f"{BLOCK}/mlp/down"),
        *layer_norm("ln_f", "ln_f"),
    ]


# Buffers older checkpoints persisted: causal masks (`h.0.attn.bias`, `.masked_bias`) and the
# sin/cos table (`embed_positions`); transformers v5 ignores them too.
IGNORE = [r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)", r"(transformer\.)?(h\.\d+\.attn\.)?embed_positions",
          r"(transformer\.)?rotary_emb\.embed_positions"]


def key_map(config: GPTJConfig, task: str, rules: list[Rule] = None, name: str = "GPT-J") -> KeyMap:
    rules = decoder_rules(config) if rules is None else rules
    if task == "base":
        return KeyMap(rules, IGNORE)
    rules = prefixed(BASE_PREFIX, "transformer", rules)
    ignore = list(IGNORE)
    if task == "causal-lm":
        if config.tie_word_embeddings:
            # The weight is `wte` (a tied copy some writers keep is ignored); the bias is the head's own.
            ignore.append(r"lm_head\.weight")
            rules.append(Rule("lm_head.bias", "lm_head_bias"))
        else:
            rules += dense("lm_head", "lm_head")
    elif task == "sequence-classification":
        rules += dense("score", "score", bias=False)
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"{name} has no task {task!r}")
    return KeyMap(rules, ignore)
