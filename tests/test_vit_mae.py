"""ViTMAE: the bare model and the pre-training head against `transformers` with the same
`noise` (so the same random masking), loading/saving (both decoder-layer layouts), config checks.
Also the adapter the port tests use (TINY, CASES, build_reference, task_inputs, OUTPUT_FIELDS).
"""
import json

import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.checkpoint import keymap as km
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.vit_mae.config import ViTMAEConfig
from tests import parity

# Non-default everywhere: 3 heads of 4 (transformers' sin-cos init needs hidden % 4 == 0), a 4x4
# grid of 3x3 patches, mask_ratio 0.6 (6 of 16 patches kept), a decoder of 5 heads of 4 and
# intermediate 13, epsilon 1e-6.
TINY = dict(hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=23, image_size=12,
            patch_size=3, num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu_new", mask_ratio=0.6,
            decoder_hidden_size=20, decoder_num_attention_heads=5, decoder_num_hidden_layers=2,
            decoder_intermediate_size=13)
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "mask", "ids_restore", "hidden_states", "attentions"),
    "pretraining": ("loss", "logits", "mask", "ids_restore", "hidden_states", "attentions"),
}
CASES = [
    ("base", {}),
    ("base", {"mask_ratio": 0.3, "qkv_bias": False, "hidden_act": "quick_gelu"}),
    ("pretraining", {}),
    ("pretraining", {"norm_pix_loss": True, "num_channels": 1, "decoder_num_hidden_layers": 1, "hidden_act": "gelu"}),
]
_BUILT = {}


def hf_class(task):
    return getattr(transformers, registry.family("vit_mae").heads[task][1])


def build_reference(task, tmp_path, seed=0, **overrides):
    """The reference model and its saved folder, built once per (task, overrides, seed)."""
    key = (task, json.dumps(overrides, sort_keys=True), seed)
    if key not in _BUILT:
        model = parity.build_eager(hf_class(task), transformers.ViTMAEConfig(**{**TINY, **overrides}), seed)
        folder = tmp_path / f"hf-vit_mae-{task}"
        model.save_pretrained(folder)
        _BUILT[key] = (model, folder)
    return _BUILT[key]


def task_inputs(task, config_kwargs, seed=0):
    """pixel_values (3, channels, size, size) and the masking noise (3, patches); no labels (the
    pre-training loss is against the pixels)."""
    rng = np.random.default_rng(seed)
    size = config_kwargs["image_size"]
    patches = (size // config_kwargs["patch_size"]) ** 2
    inputs = {"pixel_values": rng.normal(size=(3, config_kwargs["num_channels"], size, size)).astype(np.float32),
              "noise": rng.random((3, patches)).astype(np.float32)}
    return inputs, {}


def run_reference(reference, inputs, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch(inputs), **flags)


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "vit_mae"
    inputs, _ = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, output_hidden_states=True, output_attentions=True)       # jitted
    assert len(got.hidden_states) == TINY["num_hidden_layers"] + 1
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="vit_mae vs transformers")


def test_masking_without_noise_and_with_ties(tmp_path):
    """No noise: an error naming the fix while mask_ratio > 0; with mask_ratio = 0 every patch
    is kept in order. Tied noise ranks like a stable sort."""
    _, folder = build_reference("base", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="base")
    inputs, _ = task_inputs("base", TINY)
    with pytest.raises(ValueError, match="pass `noise`"):
        ours(pixel_values=inputs["pixel_values"])
    ties = np.repeat(np.array([[0.5, 0.1, 0.5, 0.1]], np.float32), 4, axis=1).repeat(3, axis=0)
    got = ours(pixel_values=inputs["pixel_values"], noise=ties)
    want = np.argsort(np.argsort(ties, axis=1, kind="stable"), axis=1, kind="stable")
    np.testing.assert_array_equal(np.asarray(got.ids_restore), want)
    unmasked = PretrainedModel.from_pretrained(folder, task="base", mask_ratio=0.0)
    free = unmasked(pixel_values=inputs["pixel_values"])
    assert not np.asarray(free.mask).any() and free.last_hidden_state.shape == (3, 17, TINY["hidden_size"])
    np.testing.assert_array_equal(np.asarray(free.ids_restore), np.tile(np.arange(16), (3, 1)))


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    reference, folder = build_reference("pretraining", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="pretraining")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    from safetensors import safe_open
    from safetensors.numpy import save_file
    original = safe_open(str(folder / "model.safetensors"), "np")
    saved = safe_open(str(out / "model.safetensors"), "np")
    assert sorted(saved.keys()) == sorted(original.keys())
    for key in original.keys():
        np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = hf_class("pretraining").from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    # The published layout (decoder.decoder_layers.N) loads too.
    published = tmp_path / "published"
    published.mkdir()
    (published / "config.json").write_text((folder / "config.json").read_text())
    save_file({k.replace("decoder.decoder_encoder.layer.", "decoder.decoder_layers."): original.get_tensor(k)
               for k in original.keys()}, str(published / "model.safetensors"))
    again = km.flatten(PretrainedModel.from_pretrained(published, task="pretraining").params)
    for path, value in km.flatten(ours.params).items():
        np.testing.assert_array_equal(np.asarray(again[path]), np.asarray(value), err_msg=path)


def test_config_json_round_trips_and_bad_configs_are_rejected(tmp_path):
    _, folder = build_reference("pretraining", tmp_path)
    data = json.loads((folder / "config.json").read_text())
    config = ViTMAEConfig.from_dict(data)
    assert config.to_dict() == data
    assert config.len_keep == 6 and config.decoder_config.head_dim == 4
    with pytest.raises(ConfigError, match="decoder_hidden_size"):
        ViTMAEConfig(decoder_hidden_size=20, decoder_num_attention_heads=3)
    with pytest.raises(ConfigError, match="mask_ratio"):
        ViTMAEConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="patch_size"):
        ViTMAEConfig(image_size=12, patch_size=(3, 4))
