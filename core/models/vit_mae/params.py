"""ViTMAE: Hugging Face tensor names ⇄ Flax param paths.

The encoder is ViT's saved layout (`core/models/vit/params.py`). The decoder layers: published
checkpoints (facebook/vit-mae-*) name them `decoder.decoder_layers.N...`; transformers v5 writes
`decoder.decoder_encoder.layer.N...` (its ViT rename `encoder.layer.` → `layers.` applied in
reverse to `decoder_layers.`) and reads both. Saving writes the v5 form (listed first).
"""
from core.checkpoint.keymap import KeyMap, Rule, dense, layer_norm, prefixed
from core.models.vit.params import encoder_rules
from core.models.vit_mae.config import ViTMAEConfig

TASKS = ("base", "pretraining")


def decoder_layer_rules(config: ViTMAEConfig, hf_layer: str) -> list[Rule]:
    block = "decoder/decoder_layers/layer/block"
    return [
        *dense(f"{hf_layer}.attention.attention.{{proj}}", f"{block}/attention/attention/{{proj}}", config.qkv_bias),
        *dense(f"{hf_layer}.attention.output.dense", f"{block}/attention/output/dense"),
        *dense(f"{hf_layer}.intermediate.dense", f"{block}/intermediate/dense"),
        *dense(f"{hf_layer}.output.dense", f"{block}/output/dense"),
        *layer_norm(f"{hf_layer}.layernorm_before", f"{block}/layernorm_before"),
        *layer_norm(f"{hf_layer}.layernorm_after", f"{block}/layernorm_after"),
    ]


def key_map(config: ViTMAEConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(encoder_rules(config, False), [r"decoder\..*"])
    if task != "pretraining":
        raise ValueError(f"vit_mae has no task {task!r}")
    rules = prefixed("vit", "vit", encoder_rules(config, False))
    rules += decoder_layer_rules(config, "decoder.decoder_encoder.layer.{layer}")
    rules += decoder_layer_rules(config, "decoder.decoder_layers.{layer}")
    rules += [Rule("decoder.mask_token", "decoder/mask_token"),
              Rule("decoder.decoder_pos_embed", "decoder/decoder_pos_embed"),
              *dense("decoder.decoder_embed", "decoder/decoder_embed"),
              *layer_norm("decoder.decoder_norm", "decoder/decoder_norm"),
              *dense("decoder.decoder_pred", "decoder/decoder_pred")]
    return KeyMap(rules)
