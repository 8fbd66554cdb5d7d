"""BART family: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.bart.config import BartConfig


def _attention(hf: str, flax: str) -> list[Rule]:
    return [r for proj in ("k_proj", "v_proj", "q_proj", "out_proj") for r in dense(f"{hf}.{proj}", f"{flax}/{proj}")]


def stack_rules(config: BartConfig, side: str, own_embeddings: bool) -> list[Rule]:
    """encoder.* or decoder.* (side), as transformers names them."""
    layer = f"{side}.layers.{{layer}}"
    block = f"{side}/layers/block"
    rules = []
    if own_embeddings:
        rules += embedding(f"{side}.embed_tokens", f"{side}/embed_tokens")
    if config.position_kind == "learned":
        rules += embedding(f"{side}.embed_positions", f"{side}/embed_positions")
    if config.has_layernorm_embedding:
        rules += layer_norm(f"{side}.layernorm_embedding", f"{side}/layernorm_embedding")
    if config.normalize_before:
        rules += layer_norm(f"{side}.layer_norm", f"{side}/layer_norm")
    rules += _attention(f"{layer}.self_attn", f"{block}/self_attn")
    rules += layer_norm(f"{layer}.self_attn_layer_norm", f"{block}/self_attn_layer_norm")
    if side == "decoder":
        rules += _attention(f"{layer}.encoder_attn", f"{block}/encoder_attn")
        rules += layer_norm(f"{layer}.encoder_attn_layer_norm", f"{block}/encoder_attn_layer_norm")
    rules += dense(f"{layer}.fc1", f"{block}/fc1")
    rules += dense(f"{layer}.fc2", f"{block}/fc2")
    rules += layer_norm(f"{layer}.final_layer_norm", f"{block}/final_layer_norm")
    return rules


def model_rules(config: BartConfig) -> list[Rule]:
    untied = not config.tie_word_embeddings
    return [*embedding("shared", "shared"), *stack_rules(config, "encoder", untied),
            *stack_rules(config, "decoder", untied)]


def model_ignore(config: BartConfig, prefix: str) -> list[str]:
    ignore = []
    if config.position_kind != "learned":
        # Sinusoidal tables: computed, never parameters (some classes save them, some do not).
        ignore.append(rf"{prefix}(encoder|decoder)\.embed_positions\.(weight|weights|_float_tensor)")
    if config.tie_word_embeddings:
        # Tied copies of `shared` that some writers keep.
        ignore.append(rf"{prefix}(encoder|decoder)\.embed_tokens\.weight")
    return ignore


def key_map(config: BartConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(model_rules(config), model_ignore(config, ""))
    if task == "causal-lm":
        rules = prefixed("model", "model", stack_rules(config, "decoder", True))
        ignore = model_ignore(config, r"model\.")
        ignore = [p for p in ignore if "embed_tokens" not in p]
        if config.tie_word_embeddings:
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
        return KeyMap(rules, ignore)
    rules = prefixed("model", "model", model_rules(config))
    ignore = model_ignore(config, r"model\.")
    if task == "seq2seq-lm":
        if config.has_final_logits_bias:
            rules.append(Rule("final_logits_bias", "final_logits_bias"))
        if config.tie_word_embeddings:
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
    elif task == "sequence-classification":
        rules += dense("classification_head.dense", "classification_head/dense")
        rules += dense("classification_head.out_proj", "classification_head/out_proj")
    elif task == "question-answering":
        rules += dense("qa_outputs", "qa_outputs")
    else:
        raise ValueError(f"{config.model_type} has no task {task!r}")
    return KeyMap(rules, ignore)
