"""ConvNeXT: Hugging Face tensor names ⇄ Flax param paths (one rule set per stage: the stages
differ in width, so each is its own `Repeat` of blocks)."""
from core.checkpoint.keymap import KeyMap, Rule, conv, dense, layer_norm, prefixed
from core.models.convnext.config import ConvNextConfig

TASKS = ("base", "image-classification")


def base_rules(config: ConvNextConfig) -> list[Rule]:
    rules = [*conv("embeddings.patch_embeddings", "embeddings/patch_embeddings"),
             *layer_norm("embeddings.layernorm", "embeddings/layernorm"),
             *layer_norm("layernorm", "layernorm")]
    sizes = config.hidden_sizes
    for i in range(config.num_stages):
        stage, flax = f"encoder.stages.{i}", f"encoder/stages_{i}"
        if i > 0 or sizes[max(i - 1, 0)] != sizes[i]:
            rules += layer_norm(f"{stage}.downsampling_layer.0", f"{flax}/downsampling_layer_0")
            rules += conv(f"{stage}.downsampling_layer.1", f"{flax}/downsampling_layer_1")
        layer, block = f"{stage}.layers.{{layer}}", f"{flax}/layers/block"
        rules += [*conv(f"{layer}.dwconv", f"{block}/dwconv"),
                  *layer_norm(f"{layer}.layernorm", f"{block}/layernorm"),
                  *dense(f"{layer}.pwconv1", f"{block}/pwconv1"),
                  *dense(f"{layer}.pwconv2", f"{block}/pwconv2")]
        if config.has_layer_scale:
            rules.append(Rule(f"{layer}.layer_scale_parameter", f"{block}/layer_scale_parameter"))
    return rules


def key_map(config: ConvNextConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(base_rules(config))
    if task == "image-classification":
        return KeyMap(prefixed("convnext", "convnext", base_rules(config)) + dense("classifier", "classifier"))
    raise ValueError(f"convnext has no task {task!r}")
