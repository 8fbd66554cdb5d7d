"""ResNet: Hugging Face tensor names ⇄ Flax param paths. Blocks differ (the first of each stage
may carry a shortcut), so every stage and block is its own module: the rules are generated per
block from the config.

`num_batches_tracked` (torch's BatchNorm counter buffer, an int64 scalar that inference never
reads) has no Flax leaf: loading ignores it, and saving does not write it (see the report in
tests/test_resnet.py: `transformers` reloads such a folder, re-creating the counters as 0).
"""
from core.checkpoint.keymap import KeyMap, Rule, batch_norm, conv, dense, prefixed
from core.models.resnet.config import ResNetConfig

TASKS = ("base", "image-classification")
IGNORE = [r"(resnet\.)?.*\.num_batches_tracked"]


def conv_layer(hf: str, flax: str) -> list[Rule]:
    return conv(f"{hf}.convolution", f"{flax}/convolution", bias=False) + \
        batch_norm(f"{hf}.normalization", f"{flax}/normalization")


def base_rules(config: ResNetConfig) -> list[Rule]:
    rules = conv_layer("embedder.embedder", "embedder/embedder")
    sizes = (config.embedding_size,) + tuple(config.hidden_sizes)
    convs = 3 if config.layer_type == "bottleneck" else 2
    for i, depth in enumerate(config.depths):
        stride = 2 if (i > 0 or config.downsample_in_first_stage) else 1
        for j in range(depth):
            hf, flax = f"encoder.stages.{i}.layers.{j}", f"encoder/stages_{i}/layers_{j}"
            if j == 0 and (sizes[i] != sizes[i + 1] or stride != 1):
                rules += conv_layer(f"{hf}.shortcut", f"{flax}/shortcut")
            for k in range(convs):
                rules += conv_layer(f"{hf}.layer.{k}", f"{flax}/layer_{k}")
    return rules


def key_map(config: ResNetConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(base_rules(config), IGNORE)
    if task == "image-classification":
        return KeyMap(prefixed("resnet", "resnet", base_rules(config)) + dense("classifier.1", "classifier"), IGNORE)
    raise ValueError(f"resnet has no task {task!r}")
