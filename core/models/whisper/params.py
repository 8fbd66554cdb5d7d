"""Whisper: Hugging Face tensor names ⇄ Flax param paths."""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, embedding, layer_norm, prefixed
from core.models.whisper.config import WhisperConfig


def _attention(hf: str, flax: str) -> list[Rule]:
    return [*dense(f"{hf}.k_proj", f"{flax}/k_proj", bias=False),
            *[r for proj in ("v_proj", "q_proj", "out_proj") for r in dense(f"{hf}.{proj}", f"{flax}/{proj}")]]


def _layer(hf: str, flax: str, cross: bool) -> list[Rule]:
    rules = [*_attention(f"{hf}.self_attn", f"{flax}/self_attn"),
             *layer_norm(f"{hf}.self_attn_layer_norm", f"{flax}/self_attn_layer_norm")]
    if cross:
        rules += _attention(f"{hf}.encoder_attn", f"{flax}/encoder_attn")
        rules += layer_norm(f"{hf}.encoder_attn_layer_norm", f"{flax}/encoder_attn_layer_norm")
    return [*rules, *dense(f"{hf}.fc1", f"{flax}/fc1"), *dense(f"{hf}.fc2", f"{flax}/fc2"),
            *layer_norm(f"{hf}.final_layer_norm", f"{flax}/final_layer_norm")]


def encoder_rules() -> list[Rule]:
    return [*conv("encoder.conv1", "encoder/conv1"), *conv("encoder.conv2", "encoder/conv2"),
            *embedding("encoder.embed_positions", "encoder/embed_positions"),
            *_layer("encoder.layers.{layer}", "encoder/layers/block", cross=False),
            *layer_norm("encoder.layer_norm", "encoder/layer_norm")]


def decoder_rules() -> list[Rule]:
    return [*embedding("decoder.embed_tokens", "decoder/embed_tokens"),
            *embedding("decoder.embed_positions", "decoder/embed_positions"),
            *_layer("decoder.layers.{layer}", "decoder/layers/block", cross=True),
            *layer_norm("decoder.layer_norm", "decoder/layer_norm")]


def key_map(config: WhisperConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap([*encoder_rules(), *decoder_rules()], [])
    if task == "seq2seq-lm":
        rules = prefixed("model", "model", [*encoder_rules(), *decoder_rules()])
        ignore = []
        if config.tie_word_embeddings:
            ignore.append(r"proj_out\.weight")      # a tied copy of model.decoder.embed_tokens
        else:
            rules += dense("proj_out", "proj_out", bias=False)
        return KeyMap(rules, ignore)
    if task == "sequence-classification":
        rules = [*encoder_rules(), *dense("projector", "projector"), *dense("classifier", "classifier")]
        if config.use_weighted_layer_sum:
            rules.append(Rule("layer_weights", "layer_weights"))
        return KeyMap(rules, [])
    raise ValueError(f"whisper has no task {task!r}")
