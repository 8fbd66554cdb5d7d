"""ResNet: the bare model and the image classifier against `transformers` on tiny random
non-default configs (basic and bottleneck blocks, downsampling in the first stage or in the
bottleneck's 1x1 conv, odd and non-square images through the max pool, random BatchNorm running
statistics), loading/saving and config checks. Also the adapter the port tests use (TINY,
CASES, build_reference, task_inputs, OUTPUT_FIELDS).
"""
import functools
import json
import pathlib
import tempfile

import jax
import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.resnet.config import ResNetConfig
from tests import parity

# Non-default: a 6-wide stem, two stages of widths 8 and 12 (depths 2 and 1), basic blocks,
# gelu after each residual sum (the convs inside a block keep ReLU, as in transformers), 3
# channels, 19x16 images (→ 10x8 → max pool 5x4 → 3x2).
TINY = dict(num_channels=3, embedding_size=6, hidden_sizes=[8, 12], depths=[2, 1], layer_type="basic",
            hidden_act="gelu", image_size=[19, 16])
OUTPUT_FIELDS = {"base": ("last_hidden_state", "pooler_output", "hidden_states"),
                 "image-classification": ("loss", "logits", "hidden_states")}

CASES = [
    ("base", {}),
    ("image-classification", {"num_labels": 3}),
    # Bottleneck blocks (8 → 2 → 8, 16 → 4 → 16), strided first stage and 1x1-conv downsampling.
    ("image-classification", {"num_labels": 3, "layer_type": "bottleneck", "hidden_sizes": [8, 16],
                              "downsample_in_first_stage": True, "downsample_in_bottleneck": True,
                              "image_size": [32, 27]}),
    # Bottleneck, stem as wide as the first stage (its first block has no shortcut), ReLU.
    ("base", {"layer_type": "bottleneck", "embedding_size": 8, "hidden_act": "relu"}),
    # Multi-label on small 2-channel images (9x9 → 5x5 → 3x3 → 2x2), silu.
    ("image-classification", {"num_labels": 4, "problem_type": "multi_label_classification", "num_channels": 2,
                              "hidden_act": "silu", "image_size": [9, 9]}),
]


def hf_class(task):
    return getattr(transformers, registry.family("resnet").heads[task][1])


def reference_config(**overrides):
    kwargs = {k: v for k, v in {**TINY, **overrides}.items() if k != "image_size"}   # not a ResNet key
    return transformers.ResNetConfig(**kwargs)


def calibrate_running_stats_(model, inputs, seed=0):
    """`parity.build_eager` randomizes parameters only (running mean 0, variance 1), and with
    O(1) random conv weights the activations then grow ~10x per conv: at O(100) a 1e-5
    difference is float32 rounding and would say nothing. So give every BatchNorm realistic,
    random statistics: those of a calibration batch (one training-mode pass with momentum 1),
    each perturbed (mean shifted by 0.1 std, variance scaled by 2-4, so normalised values have
    std 0.5-0.7 and the residual sums stay O(1)); the batch counters are reset to 0 (see
    params.py on `num_batches_tracked`)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in norms:
            module.momentum = 1.0
        model.train()
        model(**parity.to_torch(inputs))
        model.eval()
        for module in norms:
            module.momentum = 0.1
            std = module.running_var.sqrt()
            module.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=generator))
            module.running_var.mul_(2.0 + 2.0 * torch.rand(std.shape, generator=generator))
            module.num_batches_tracked.zero_()
    return model


@functools.cache
def _reference(task, frozen):
    overrides = json.loads(frozen)
    calibration, _ = task_inputs(task, {**TINY, **overrides}, seed=1)
    model = calibrate_running_stats_(parity.build_eager(hf_class(task), reference_config(**overrides), seed=0),
                                     calibration)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="rosetta-resnet-")) / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def build_reference(task, tmp_path, **overrides):
    """(transformers model, saved folder), built once per (task, overrides) in this process."""
    return _reference(task, json.dumps(overrides, sort_keys=True))


def task_inputs(task, config_kwargs, seed=0):
    """pixel_values (2, channels, height, width) of `image_size` (a test-only key: ResNet takes
    any size); classification adds labels."""
    rng = np.random.default_rng(seed)
    height, width = config_kwargs["image_size"]
    inputs = {"pixel_values": rng.normal(size=(2, config_kwargs["num_channels"], height, width)).astype(np.float32)}
    labels = {}
    if task == "image-classification":
        n_labels = config_kwargs.get("num_labels", 2)
        if n_labels == 1:
            labels["labels"] = rng.normal(size=(2,)).astype(np.float32)
        elif config_kwargs.get("problem_type") == "multi_label_classification":
            labels["labels"] = (rng.random((2, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(2,))
    return inputs, labels


def run_reference(reference, inputs, labels=None, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch({**inputs, **(labels or {})}), **flags)


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "resnet"
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True)
    got = ours(**inputs, **labels, output_hidden_states=True)
    assert len(got.hidden_states) == 1 + len(TINY["depths"])
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="resnet vs transformers")


def test_training_mode_normalises_with_batch_statistics(tmp_path, record_property):
    """deterministic=False: BatchNorm uses the batch's statistics, as torch's train() does."""
    task, overrides = CASES[2]
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, _ = task_inputs(task, {**TINY, **overrides})
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    try:
        reference.train()
        with torch.no_grad():
            expected = reference(**parity.to_torch(inputs)).logits
    finally:
        reference.load_state_dict(state)
        reference.eval()
    got = ours(**inputs, deterministic=False, dropout_rng=jax.random.key(0)).logits
    diff = parity.max_abs(got, expected)
    record_property("parity:resnet (training mode) vs transformers", diff)
    assert diff <= parity.TOL


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    task, overrides = CASES[2]
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert all(k.endswith("num_batches_tracked") for k in ours.load_report["dropped"])
    out = ours.save_pretrained(tmp_path / "rosetta")
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        # Every tensor but torch's BatchNorm batch counters (no Flax leaf; see params.py).
        kept = sorted(k for k in original.keys() if not k.endswith("num_batches_tracked"))
        assert sorted(saved.keys()) == kept
        for key in kept:
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded, info = hf_class(task).from_pretrained(out, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert all(k.endswith("num_batches_tracked") for k in info["missing_keys"])
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["ResNetForImageClassification"]
    # The bare model loads from the classifier's folder (the head is dropped and reported).
    base = PretrainedModel.from_pretrained(folder, task="base")
    assert "classifier.1.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", {**TINY, **overrides})
    diff = parity.max_abs(base(**inputs).pooler_output, run_reference(reference.resnet, inputs).pooler_output)
    assert diff <= parity.TOL


def test_config_json_round_trips(tmp_path):
    for task, overrides in CASES[:4]:
        _, folder = build_reference(task, tmp_path, **overrides)
        data = json.loads((folder / "config.json").read_text())
        config = ResNetConfig.from_dict(data)
        assert config.to_dict() == data
        assert config.layer_type == overrides.get("layer_type", "basic")


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="layer_type"):
        ResNetConfig(layer_type="preactivation")
    with pytest.raises(ConfigError, match="hidden_sizes"):
        ResNetConfig(hidden_sizes=(8, 16), depths=(1, 1, 1))
    with pytest.raises(ConfigError, match="hidden_sizes"):
        ResNetConfig(hidden_sizes=(2, 8), depths=(1, 1))          # bottleneck of width 2 // 4 = 0
    with pytest.raises(ConfigError, match="hidden_act"):
        ResNetConfig(hidden_act="gelu_erf")
    with pytest.raises(ConfigError, match="model_type"):
        ResNetConfig.from_dict({"model_type": "convnext"})
