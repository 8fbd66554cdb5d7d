"""Swin: Hugging Face tensor names ⇄ Flax param paths.

Stages and blocks are explicit modules (`encoder/layers_{i}/blocks_{j}`), so every rule
carries the stage and block index as plain name fields. transformers v5 saves the published
layout (attention.self.{query,key,value}, attention.output.dense, ...); the relative position
index is a non-persistent buffer there (never saved by v5), but older checkpoints carry it:
it is ignored (recomputed from window_size).
"""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, layer_norm, prefixed
from core.models.swin.config import SwinConfig

TASKS = ("base", "image-classification", "masked-image-modeling")


def encoder_rules(config: SwinConfig, use_mask_token: bool) -> list[Rule]:
    block = "encoder.layers.{stage}.blocks.{block}"
    flax = "encoder/layers_{stage}/blocks_{block}"
    rules = [
        *conv("embeddings.patch_embeddings.projection", "embeddings/patch_embeddings/projection"),
        *layer_norm("embeddings.norm", "embeddings/norm"),
        *dense(f"{block}.attention.self.{{proj}}", f"{flax}/attention/self/{{proj}}", config.qkv_bias),
        Rule(f"{block}.attention.self.relative_position_bias_table",
             f"{flax}/attention/self/relative_position_bias_table"),
        *dense(f"{block}.attention.output.dense", f"{flax}/attention/output/dense"),
        *dense(f"{block}.intermediate.dense", f"{flax}/intermediate/dense"),
        *dense(f"{block}.output.dense", f"{flax}/output/dense"),
        *layer_norm(f"{block}.layernorm_before", f"{flax}/layernorm_before"),
        *layer_norm(f"{block}.layernorm_after", f"{flax}/layernorm_after"),
        *layer_norm("encoder.layers.{stage}.downsample.norm", "encoder/layers_{stage}/downsample/norm"),
        *dense("encoder.layers.{stage}.downsample.reduction", "encoder/layers_{stage}/downsample/reduction", False),
        *layer_norm("layernorm", "layernorm"),
    ]
    if config.use_absolute_embeddings:
        rules.append(Rule("embeddings.position_embeddings", "embeddings/position_embeddings"))
    if use_mask_token:
        rules.append(Rule("embeddings.mask_token", "embeddings/mask_token"))
    return rules


def key_map(config: SwinConfig, task: str) -> KeyMap:
    # The relative position index: a buffer (persistent in transformers v4 checkpoints).
    ignore = [r"(swin\.)?encoder\.layers\.\d+\.blocks\.\d+\.attention\.self\.relative_position_index"]
    if task != "masked-image-modeling":
        ignore.append(r"(swin\.)?embeddings\.mask_token")
    if task == "base":
        return KeyMap(encoder_rules(config, False), ignore)
    rules = prefixed("swin", "swin", encoder_rules(config, task == "masked-image-modeling"))
    if task == "image-classification":
        rules += dense("classifier", "classifier")
    elif task == "masked-image-modeling":
        rules += conv("decoder.0", "decoder/conv")
    else:
        raise ValueError(f"swin has no task {task!r}")
    return KeyMap(rules, ignore)
