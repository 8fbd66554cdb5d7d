"""ViT / DeiT / ViT-MSN: Hugging Face tensor names ⇄ Flax param paths.

`transformers` v5 renames the ViT modules at load time (q_proj, layers.N, mlp.fc1, ...) but
writes checkpoints in the published layout (encoder.layer.N.attention.attention.query, ...):
the rules below are that saved layout, which both versions read.
"""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, layer_norm, prefixed
from core.models.vit.config import ViTMSNConfig

TASKS = ("base", "image-classification", "masked-image-modeling", "image-classification-with-teacher")


def base_prefix(config: ViTMSNConfig) -> str:
    return "deit" if config.model_type == "deit" else "vit"


def encoder_rules(config: ViTMSNConfig, use_mask_token: bool) -> list[Rule]:
    layer = "encoder.layer.{layer}"
    block = "encoder/layer/block"
    rules = [
        Rule("embeddings.cls_token", "embeddings/cls_token"),
        Rule("embeddings.position_embeddings", "embeddings/position_embeddings"),
        *conv("embeddings.patch_embeddings.projection", "embeddings/patch_embeddings/projection"),
        *dense(f"{layer}.attention.attention.{{proj}}", f"{block}/attention/attention/{{proj}}", config.qkv_bias),
        *dense(f"{layer}.attention.output.dense", f"{block}/attention/output/dense"),
        *dense(f"{layer}.intermediate.dense", f"{block}/intermediate/dense"),
        *dense(f"{layer}.output.dense", f"{block}/output/dense"),
        *layer_norm(f"{layer}.layernorm_before", f"{block}/layernorm_before"),
        *layer_norm(f"{layer}.layernorm_after", f"{block}/layernorm_after"),
        *layer_norm("layernorm", "layernorm"),
    ]
    if config.num_special_tokens == 2:
        rules.append(Rule("embeddings.distillation_token", "embeddings/distillation_token"))
    if use_mask_token:
        rules.append(Rule("embeddings.mask_token", "embeddings/mask_token"))
    if config.has_pooler:
        rules += dense("pooler.dense", "pooler/dense")
    return rules


def key_map(config: ViTMSNConfig, task: str) -> KeyMap:
    prefix = base_prefix(config)
    # Parts of other heads' backbones (a pooler, a mask token) that this head does not use.
    ignore = [rf"({prefix}\.)?pooler\..*"] if task != "base" else []
    if task != "masked-image-modeling":
        ignore.append(rf"({prefix}\.)?embeddings\.mask_token")
    if task == "base":
        return KeyMap(encoder_rules(config, False), ignore)
    rules = prefixed(prefix, prefix, encoder_rules(config, task == "masked-image-modeling"))
    if config.model_type == "vit_msn":
        # ViTMSNForImageClassification checkpoints (the published ones, and transformers v5's
        # save) keep the encoder layers at the root: `encoder.layer.N...`, not `vit.encoder...`.
        # Those rules come first (they are what saving writes); the prefixed form still loads.
        rules = [Rule(r.hf[len(prefix) + 1:], r.flax, r.transform) for r in rules
                 if r.hf.startswith(f"{prefix}.encoder.")] + rules
    if task == "image-classification":
        rules += dense("classifier", "classifier")
    elif task == "masked-image-modeling":
        rules += conv("decoder.0", "decoder/conv")
    elif task == "image-classification-with-teacher" and config.num_special_tokens == 2:
        rules += dense("cls_classifier", "cls_classifier") + dense("distillation_classifier", "distillation_classifier")
    else:
        raise ValueError(f"{config.model_type} has no task {task!r}")
    return KeyMap(rules, ignore)
