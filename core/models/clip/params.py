"""CLIP: Hugging Face tensor names ⇄ Flax param paths (the `transformers` v5 saved layout)."""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, embedding, layer_norm, prefixed
from core.models.clip.config import CLIPConfig

# Non-persistent buffers that older checkpoints still carry.
IGNORE = [r"(.*\.)?position_ids"]


def encoder_rules() -> list[Rule]:
    layer = "encoder.layers.{layer}"
    block = "encoder/layers/block"
    return [
        *dense(f"{layer}.self_attn.{{proj}}", f"{block}/self_attn/{{proj}}"),
        *dense(f"{layer}.mlp.fc1", f"{block}/mlp/fc1"),
        *dense(f"{layer}.mlp.fc2", f"{block}/mlp/fc2"),
        *layer_norm(f"{layer}.layer_norm1", f"{block}/layer_norm1"),
        *layer_norm(f"{layer}.layer_norm2", f"{block}/layer_norm2"),
    ]


def text_rules() -> list[Rule]:
    return [
        *embedding("embeddings.token_embedding", "embeddings/token_embedding"),
        *embedding("embeddings.position_embedding", "embeddings/position_embedding"),
        *encoder_rules(),
        *layer_norm("final_layer_norm", "final_layer_norm"),
    ]


def vision_rules() -> list[Rule]:
    return [
        Rule("embeddings.class_embedding", "embeddings/class_embedding"),
        *conv("embeddings.patch_embedding", "embeddings/patch_embedding", bias=False),
        *embedding("embeddings.position_embedding", "embeddings/position_embedding"),
        *layer_norm("pre_layrnorm", "pre_layrnorm"),
        *encoder_rules(),
        *layer_norm("post_layernorm", "post_layernorm"),
    ]


def tower_key_map(rules: list[Rule], prefix: str) -> KeyMap:
    """CLIPTextModel / CLIPVisionModel: v5 writes the layers at the root (those rules come
    first: they are what saving writes); older checkpoints' `text_model.` / `vision_model.`
    prefix still loads."""
    return KeyMap(rules + prefixed(prefix, "", rules), IGNORE)


def key_map(config, task: str) -> KeyMap:
    if config.model_type == "clip_text_model" and task in ("base", "text-encoder"):
        return tower_key_map(text_rules(), "text_model")
    if config.model_type == "clip_vision_model" and task in ("base", "vision-encoder"):
        return tower_key_map(vision_rules(), "vision_model")
    if config.model_type != "clip" or task != "base":
        raise ValueError(f"{config.model_type} has no task {task!r}")
    rules = [
        *prefixed("text_model", "text_model", text_rules()),
        *prefixed("vision_model", "vision_model", vision_rules()),
        *dense("visual_projection", "visual_projection", bias=False),
        *dense("text_projection", "text_projection", bias=False),
        Rule("logit_scale", "logit_scale"),
    ]
    return KeyMap(rules, IGNORE)
