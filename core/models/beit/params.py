"""BEiT: Hugging Face tensor names ⇄ Flax param paths.

`transformers` v5 renames the BEiT modules at load time (q_proj, layers.N, mlp.fc1,
shared_position_bias, ...) but writes checkpoints in the published layout
(encoder.layer.N.attention.attention.query, encoder.relative_position_bias, ...): the rules
below are that saved layout, which both versions read.
"""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, layer_norm, prefixed
from core.models.beit.config import BeitConfig

TASKS = ("base", "image-classification", "masked-image-modeling")


def encoder_rules(config: BeitConfig, add_pooling_layer: bool) -> list[Rule]:
    layer = "encoder.layer.{layer}"
    block = "encoder/layer/block"
    rules = [
        Rule("embeddings.cls_token", "embeddings/cls_token"),
        *conv("embeddings.patch_embeddings.projection", "embeddings/patch_embeddings/projection"),
        *dense(f"{layer}.attention.attention.query", f"{block}/attention/attention/query"),
        *dense(f"{layer}.attention.attention.key", f"{block}/attention/attention/key", bias=False),
        *dense(f"{layer}.attention.attention.value", f"{block}/attention/attention/value"),
        *dense(f"{layer}.attention.output.dense", f"{block}/attention/output/dense"),
        *dense(f"{layer}.intermediate.dense", f"{block}/intermediate/dense"),
        *dense(f"{layer}.output.dense", f"{block}/output/dense"),
        *layer_norm(f"{layer}.layernorm_before", f"{block}/layernorm_before"),
        *layer_norm(f"{layer}.layernorm_after", f"{block}/layernorm_after"),
    ]
    if config.use_mask_token:
        rules.append(Rule("embeddings.mask_token", "embeddings/mask_token"))
    if config.use_absolute_position_embeddings:
        rules.append(Rule("embeddings.position_embeddings", "embeddings/position_embeddings"))
    if config.use_relative_position_bias:
        rules.append(Rule(f"{layer}.attention.attention.relative_position_bias.relative_position_bias_table",
                          f"{block}/attention/attention/relative_position_bias/relative_position_bias_table"))
    if config.use_shared_relative_position_bias:
        rules.append(Rule("encoder.relative_position_bias.relative_position_bias_table",
                          "encoder/relative_position_bias/relative_position_bias_table"))
    if config.layer_scale_init_value > 0:
        rules += [Rule(f"{layer}.lambda_1", f"{block}/lambda_1"), Rule(f"{layer}.lambda_2", f"{block}/lambda_2")]
    if not config.use_mean_pooling:
        rules += layer_norm("layernorm", "layernorm")
    if add_pooling_layer and config.use_mean_pooling:
        rules += layer_norm("pooler.layernorm", "pooler/layernorm")
    return rules


def key_map(config: BeitConfig, task: str) -> KeyMap:
    # Old checkpoints carry the (recomputed) relative position index buffers.
    ignore = [r".*relative_position_index"]
    if task == "base":
        return KeyMap(encoder_rules(config, True), ignore)
    if task == "image-classification":
        rules = prefixed("beit", "beit", encoder_rules(config, True)) + dense("classifier", "classifier")
    elif task == "masked-image-modeling":
        rules = prefixed("beit", "beit", encoder_rules(config, False))
        rules += layer_norm("layernorm", "layernorm") + dense("lm_head", "lm_head")
        ignore.append(r"beit\.pooler\..*")
    else:
        raise ValueError(f"beit has no task {task!r}")
    return KeyMap(rules, ignore)
