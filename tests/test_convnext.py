"""ConvNeXT: the bare model and the image classifier against `transformers` on tiny random
non-default configs (non-square images, no layer scale, other activations and epsilons),
loading/saving and config checks. Also the adapter the port tests use (TINY, CASES,
build_reference, task_inputs, OUTPUT_FIELDS).
"""
import functools
import json
import pathlib
import tempfile

import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.convnext.config import ConvNextConfig
from tests import parity

# Non-default: two stages of widths 6 and 10 (depths 2 and 1), 2x2 patches on 12x12 images
# (6x6, then 3x3 after the downsampling), final LayerNorm epsilon 1e-5, tanh gelu.
TINY = dict(num_channels=3, num_stages=2, hidden_sizes=[6, 10], depths=[2, 1], patch_size=2, image_size=12,
            layer_norm_eps=1e-5, hidden_act="gelu_new", layer_scale_init_value=0.5)
OUTPUT_FIELDS = {"base": ("last_hidden_state", "pooler_output", "hidden_states"),
                 "image-classification": ("loss", "logits", "hidden_states")}

CASES = [
    ("base", {}),
    ("image-classification", {"num_labels": 3}),
    # Regression, no layer scale, exact gelu → silu, a non-square image (12x10 → 6x5 → 3x2).
    ("image-classification", {"num_labels": 1, "layer_scale_init_value": 0.0, "hidden_act": "silu",
                              "image_size": [12, 10]}),
    # Multi-label, 2 channels, 3x3 patches (4x4 → 2x2), equal stage widths (still downsampled).
    ("image-classification", {"num_labels": 4, "problem_type": "multi_label_classification", "num_channels": 2,
                              "patch_size": 3, "hidden_sizes": [8, 8], "hidden_act": "gelu"}),
]


def hf_class(task):
    return getattr(transformers, registry.family("convnext").heads[task][1])


@functools.cache
def _reference(task, frozen):
    overrides = json.loads(frozen)
    model = parity.build_eager(hf_class(task), transformers.ConvNextConfig(**{**TINY, **overrides}), seed=0)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="rosetta-convnext-")) / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def build_reference(task, tmp_path, **overrides):
    """(transformers model, saved folder), built once per (task, overrides) in this process."""
    return _reference(task, json.dumps(overrides, sort_keys=True))


def _hw(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def task_inputs(task, config_kwargs, seed=0):
    """pixel_values (2, channels, height, width) at the configured size; classification adds labels."""
    rng = np.random.default_rng(seed)
    height, width = _hw(config_kwargs["image_size"])
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
    assert ours.config.model_type == "convnext"
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True)
    got = ours(**inputs, **labels, output_hidden_states=True)
    assert len(got.hidden_states) == 1 + TINY["num_stages"]
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="convnext vs transformers")


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    reference, folder = build_reference(*CASES[1][:1], tmp_path, **CASES[1][1])
    ours = PretrainedModel.from_pretrained(folder, task="image-classification")
    out = ours.save_pretrained(tmp_path / "rosetta")
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = hf_class("image-classification").from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["ConvNextForImageClassification"]
    # The bare model loads from the classifier's folder (the head is dropped and reported).
    base = PretrainedModel.from_pretrained(folder, task="base")
    assert "classifier.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", {**TINY, **CASES[1][1]})
    diff = parity.max_abs(base(**inputs).pooler_output, run_reference(reference.convnext, inputs).pooler_output)
    assert diff <= parity.TOL


def test_config_json_round_trips(tmp_path):
    for task, overrides in CASES[:3]:
        _, folder = build_reference(task, tmp_path, **overrides)
        data = json.loads((folder / "config.json").read_text())
        config = ConvNextConfig.from_dict(data)
        assert config.to_dict() == data
        assert config.hidden_sizes == tuple(TINY["hidden_sizes"])


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="depths"):
        ConvNextConfig(num_stages=2, hidden_sizes=(4, 8), depths=(1, 1, 1))
    with pytest.raises(ConfigError, match="hidden_sizes"):
        ConvNextConfig(num_stages=3, hidden_sizes=(4, 8), depths=(1, 1, 1))
    with pytest.raises(ConfigError, match="hidden_act"):
        ConvNextConfig(hidden_act="gelu_erf")
    with pytest.raises(ConfigError, match="model_type"):
        ConvNextConfig.from_dict({"model_type": "resnet"})
