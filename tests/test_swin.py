"""Swin Transformer: every head against `transformers` on tiny random configs (shifted windows
with padding to whole windows, a clipped window, odd patch merging, a non-square image, pixel
padding to whole patches, absolute positions), loading/saving and config checks. Also the
adapter the port tests use (TINY, CASES, build_reference, task_inputs, OUTPUT_FIELDS).
"""
import json

import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.swin.config import SwinConfig
from tests import parity

# Non-default everywhere: 32x32 images of 4x4 patches (an 8x8 grid), window 3 (the 8x8 and
# 4x4 maps are padded to 9x9 / 6x6 and the odd blocks shifted by 1), heads (2, 3), mlp_ratio
# 1.5, epsilon 1e-4 (the embeddings / patch-merging norms keep torch's 1e-5, as transformers),
# encoder_stride 8 = patch_size * 2 (the SimMIM decoder restores the full image). The default
# drop_path_rate 0.1 is kept: drop path must be the identity at inference.
TINY = dict(image_size=32, patch_size=4, num_channels=3, embed_dim=12, depths=[2, 2], num_heads=[2, 3],
            window_size=3, mlp_ratio=1.5, layer_norm_eps=1e-4, encoder_stride=8)
FIELDS = ("hidden_states", "attentions", "reshaped_hidden_states")
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output") + FIELDS,
    "image-classification": ("loss", "logits") + FIELDS,
    "masked-image-modeling": ("loss", "reconstruction") + FIELDS,
}

CASES = [
    # A 30x30 image: zero-padded to 32x32 before the patch convolution; window 4: the 8x8 stage is
    # shifted by 2, the 4x4 second stage is clipped to one unshifted window.
    ("base", {"image_size": 30, "window_size": 4, "hidden_act": "gelu_new"}),
    # Window 3: the 8x8 and 4x4 maps are padded to 9x9 / 6x6 windows and the odd blocks shifted by 1.
    ("image-classification", {"num_labels": 3}),
    ("masked-image-modeling", {"use_absolute_embeddings": True}),
    # Non-square 28x36: a 7x9 grid (padded to 9x9), merged with padding to 4x5; regression; no q/k/v bias.
    ("image-classification", {"image_size": [28, 36], "num_labels": 1, "hidden_act": "quick_gelu", "qkv_bias": False}),
]


def hf_class(task):
    return getattr(transformers, registry.family("swin").heads[task][1])


def build_reference(task, tmp_path, seed=0, **overrides):
    model = parity.build_eager(hf_class(task), transformers.SwinConfig(**{**TINY, **overrides}), seed)
    folder = tmp_path / f"hf-swin-{task}"
    model.save_pretrained(folder)
    return model, folder


def _hw(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def task_inputs(task, config_kwargs, seed=0):
    """pixel_values (2, channels, height, width); masked image modeling adds bool_masked_pos
    (about half the patches); classification adds labels."""
    rng = np.random.default_rng(seed)
    height, width = _hw(config_kwargs["image_size"])
    inputs = {"pixel_values": rng.normal(size=(2, config_kwargs["num_channels"], height, width)).astype(np.float32)}
    labels = {}
    if task == "masked-image-modeling":
        ph, pw = _hw(config_kwargs["patch_size"])
        inputs["bool_masked_pos"] = rng.random((2, -(-height // ph) * -(-width // pw))) < 0.5
    elif task == "image-classification":
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
    assert ours.config.model_type == "swin"
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    assert len(got.attentions) == len(TINY["depths"]) and len(got.hidden_states) == len(TINY["depths"]) + 1
    # The last stage's pre-LayerNorm residual reaches |x| ~ 18: at 1e-5 that is float32 roundoff
    # level (transformers' own float32 run is ~6e-6 from its float64 run there).
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="swin vs transformers")


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    reference, folder = build_reference("masked-image-modeling", tmp_path, use_absolute_embeddings=True)
    ours = PretrainedModel.from_pretrained(folder, task="masked-image-modeling")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = hf_class("masked-image-modeling").from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["SwinForMaskedImageModeling"] and saved["model_type"] == "swin"


def test_v4_checkpoints_with_the_relative_position_index_load(tmp_path):
    """transformers v4 saved the relative position index buffer; it is recomputed, not read.
    A classification checkpoint also loads as the bare model (the classifier is dropped)."""
    reference, folder = build_reference("image-classification", tmp_path, num_labels=3)
    plain = PretrainedModel.from_pretrained(folder, task="image-classification")
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(folder / "model.safetensors"))
    index = reference.swin.encoder.layers[0].blocks[0].attention.relative_position_bias.relative_position_index
    for stage, depth in enumerate(TINY["depths"]):
        for block in range(depth):
            tensors[f"swin.encoder.layers.{stage}.blocks.{block}.attention.self.relative_position_index"] = \
                index.numpy().reshape(9, 9)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    base = PretrainedModel.from_pretrained(folder, task="base")
    assert "classifier.weight" in base.load_report["dropped"]
    from core.checkpoint import keymap as km
    want = km.flatten(plain.params["swin"])
    got = km.flatten(base.params)
    assert sorted(got) == sorted(want)
    for path, value in got.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(want[path]), err_msg=path)


def test_relative_position_index_is_transformers():
    from core.layers.positions import grid_relative_position_index
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias
    for window in (1, 2, 3, 7):
        want = SwinRelativePositionBias(2, (window, window))._create_relative_position_index()
        np.testing.assert_array_equal(np.asarray(grid_relative_position_index(window, window)), want.numpy())


def test_config_json_round_trips(tmp_path):
    for overrides in ({}, {"image_size": [28, 36], "num_labels": 3, "use_absolute_embeddings": True}):
        _, folder = build_reference("base", tmp_path / str(len(overrides)), **overrides)
        data = json.loads((folder / "config.json").read_text())
        config = SwinConfig.from_dict(data)
        assert config.to_dict() == data
        assert config.hidden_size == data["hidden_size"] == 24 and config.num_layers == data["num_layers"]


def test_bad_configs_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="num_heads"):
        SwinConfig(embed_dim=12, depths=(2, 2), num_heads=(5, 3))
    with pytest.raises(ConfigError, match="num_heads"):
        SwinConfig(depths=(2, 2), num_heads=(3, 6, 12))
    with pytest.raises(ConfigError, match="hidden_act"):
        SwinConfig(hidden_act="gelu_erf")
    with pytest.raises(ConfigError, match="model_type"):
        SwinConfig.from_dict({"model_type": "vit"})
    with pytest.raises(ConfigError, match="depths"):
        SwinConfig(depths="2,2")


def test_window_larger_than_a_feature_map_is_refused_like_transformers(tmp_path):
    """A 4x4 stage with window_size 5 would clip the window to 4, but the bias table is sized
    for 5: transformers v5 fails on the shapes, Rosetta says why."""
    reference, folder = build_reference("base", tmp_path, window_size=5)
    inputs, _ = task_inputs("base", TINY)
    with pytest.raises(RuntimeError):
        run_reference(reference, inputs)
    with pytest.raises(ValueError, match="window_size"):
        PretrainedModel.from_pretrained(folder, task="base")
