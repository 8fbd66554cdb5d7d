"""BART family: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.bart.config import BartConfig


def _attention(hf: str, flax: str) -> list[Rule]:
    return [r for proj in ("k_proj", "v_proj", "q_proj", "out_proj") for r in dense(f"{hf}.{proj}", f"{flax}/{proj}")]


def _prompt(hf: str, flax: str) -> list[Rule]:
    """MVP's MvpPrompt: prompt_trans is an nn.Sequential (Linear, GELU, Linear)."""
    return [*embedding(f"{hf}.prompt_embedding", f"{flax}/prompt_embedding"),
            *dense(f"{hf}.prompt_trans.0", f"{flax}/prompt_trans_0"),
            *dense(f"{hf}.prompt_trans.2", f"{flax}/prompt_trans_1")]


def stack_rules(config: BartConfig, side: str, own_embeddings: bool, prompts: bool = True) -> list[Rule]:
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
    if config.uses_prompts and prompts and side == "decoder":
        # MVP: transformers v5 builds the encoder without its prompt (MvpEncoder(config,
        # config.use_prompt) passes the flag as embed_tokens), so only the decoder has them.
        rules += _prompt(f"{side}.self_attn_prompt", f"{side}/self_attn_prompt")
        rules += _prompt(f"{side}.cross_attn_prompt", f"{side}/cross_attn_prompt")
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
    if not config.shared_table:
        # FSMT: no `shared`; tied, the decoder's table serves both sides and the projection.
        if untied:
            return [*stack_rules(config, "encoder", True), *stack_rules(config, "decoder", True),
                    *dense("decoder.output_projection", "decoder/output_projection", bias=False)]
        return [*embedding("decoder.embed_tokens", "shared"), *stack_rules(config, "encoder", False),
                *stack_rules(config, "decoder", False)]
    return [*embedding("shared", "shared"), *stack_rules(config, "encoder", untied),
            *stack_rules(config, "decoder", untied)]


def model_ignore(config: BartConfig, prefix: str) -> list[str]:
    ignore = []
    if config.position_kind != "learned":
        # Sinusoidal tables: computed, never parameters (some classes save them, some do not).
        ignore.append(rf"{prefix}(encoder|decoder)\.embed_positions\.(weight|weights|_float_tensor)")
    if config.tie_word_embeddings and not config.shared_table:
        ignore.append(rf"{prefix}(encoder\.embed_tokens|decoder\.output_projection)\.weight")
    elif config.tie_word_embeddings:
        # Tied copies of `shared` that some writers keep.
        ignore.append(rf"{prefix}(encoder|decoder)\.embed_tokens\.weight")
    return ignore


def key_map(config: BartConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(model_rules(config), model_ignore(config, ""))
    if task == "causal-lm":
        rules = prefixed("model", "model", stack_rules(config, "decoder", True, prompts=False))
        ignore = model_ignore(config, r"model\.")
        ignore = [p for p in ignore if "embed_tokens" not in p]
        if config.tie_word_embeddings:
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
        return KeyMap(rules, ignore)
    rules = prefixed("model", "model", model_rules(config))
    ignore = model_ignore(config, r"model\.")
    if task == "seq2seq-lm" and not config.shared_table:
        pass                    # FSMT: the projection is the decoder's own
    elif task == "seq2seq-lm":
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
