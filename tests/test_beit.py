"""BEiT: every head against `transformers` on tiny random configs (relative position biases per
layer and shared, absolute positions, layer scale, mean/[CLS] pooling), loading/saving and config
checks. Also the adapter the port tests use (TINY, CASES, build_reference, task_inputs)."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.beit.config import BeitConfig
from tests import parity

# Non-default everywhere: 5 heads of 3, intermediate 23, 12x12 images of 4x4 patches (a 3x3
# grid), 13 visual tokens, epsilon 1e-6, every position mechanism on, layer scale 0.3.
TINY = dict(hidden_size=15, num_hidden_layers=2, num_attention_heads=5, intermediate_size=23, image_size=12,
            patch_size=4, num_channels=3, vocab_size=13, layer_norm_eps=1e-6, layer_scale_init_value=0.3,
            use_mask_token=True, use_absolute_position_embeddings=True, use_relative_position_bias=True,
            use_shared_relative_position_bias=True, drop_path_rate=0.2, hidden_act="gelu_new")
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
}
CASES = [
    ("base", {}),
    ("base", {"use_mean_pooling": False, "layer_scale_init_value": 0.0, "use_relative_position_bias": False,
              "hidden_act": "quick_gelu"}),
    ("image-classification", {"num_labels": 3}),
    ("image-classification", {"num_labels": 1, "use_shared_relative_position_bias": False,
                              "use_absolute_position_embeddings": False, "hidden_act": "gelu"}),
    ("image-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                              "use_mean_pooling": False}),
    ("masked-image-modeling", {}),
    ("masked-image-modeling", {"use_relative_position_bias": False, "num_channels": 1, "image_size": 9,
                               "patch_size": 3}),
]


def hf_class(task):
    return getattr(transformers, registry.family("beit").heads[task][1])


_BUILT = {}


def build_reference(task, tmp_path, seed=0, **overrides):
    """The reference model and its saved folder; built once per (task, overrides, seed) (the
    first caller's tmp_path keeps the folder for the session)."""
    key = (task, json.dumps(overrides, sort_keys=True), seed)
    if key not in _BUILT:
        model = parity.build_eager(hf_class(task), transformers.BeitConfig(**{**TINY, **overrides}), seed)
        folder = tmp_path / f"hf-beit-{task}"
        model.save_pretrained(folder)
        _BUILT[key] = (model, folder)
    return _BUILT[key]


def _hw(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def task_inputs(task, config_kwargs, seed=0):
    """pixel_values (3, channels, height, width); masked image modeling adds bool_masked_pos
    (about half the patches) and labels (one visual token per masked patch, one of them -100);
    classification adds labels."""
    rng = np.random.default_rng(seed)
    height, width = _hw(config_kwargs["image_size"])
    inputs = {"pixel_values": rng.normal(size=(3, config_kwargs["num_channels"], height, width)).astype(np.float32)}
    labels = {}
    if task == "masked-image-modeling":
        patch = config_kwargs["patch_size"]
        mask = rng.random((3, (height // patch) * (width // patch))) < 0.5
        mask[:, 0] = True
        inputs["bool_masked_pos"] = mask
        tokens = rng.integers(0, config_kwargs["vocab_size"], size=(int(mask.sum()),))
        tokens[1] = -100
        labels["labels"] = tokens
    elif task == "image-classification":
        n_labels = config_kwargs.get("num_labels", 2)
        if n_labels == 1:
            labels["labels"] = rng.normal(size=(3,)).astype(np.float32)
        elif config_kwargs.get("problem_type") == "multi_label_classification":
            labels["labels"] = (rng.random((3, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    return inputs, labels


def run_jax(model, inputs, labels=None, **flags):
    arrays = {k: jnp.asarray(v) for k, v in {**inputs, **(labels or {})}.items()}
    return model.module.apply({"params": model.params}, **arrays, **flags)


def run_reference(reference, inputs, labels=None, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch({**inputs, **(labels or {})}), **flags)


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "beit"
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)      # jitted
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    assert len(got.hidden_states) == TINY["num_hidden_layers"] + 1
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="beit vs transformers")


def test_relative_position_index_is_transformers():
    from core.models.beit.modeling import relative_position_index
    from transformers.models.beit.modeling_beit import BeitRelativePositionBias
    for window in ((3, 3), (2, 4), (1, 1)):
        want = BeitRelativePositionBias.generate_relative_position_index(window)
        np.testing.assert_array_equal(np.asarray(relative_position_index(*window)), want.numpy())


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    task = "masked-image-modeling"
    reference, folder = build_reference(task, tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    saved = safe_open(str(out / "model.safetensors"), "np")
    assert sorted(saved.keys()) == sorted(original.keys())
    for key in original.keys():
        np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = hf_class(task).from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BeitForMaskedImageModeling"] and config["model_type"] == "beit"


def test_config_json_round_trips(tmp_path):
    _, folder = build_reference("image-classification", tmp_path, num_labels=3)
    data = json.loads((folder / "config.json").read_text())
    config = BeitConfig.from_dict(data)
    assert config.to_dict() == data
    assert config.grid_hw == (3, 3) and config.num_relative_distance == 28


def test_bad_configs_and_inputs_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="num_attention_heads"):
        BeitConfig(hidden_size=16, num_attention_heads=5)
    with pytest.raises(ConfigError, match="patch_size"):
        BeitConfig(image_size=8, patch_size=(4, 2))
    with pytest.raises(ConfigError, match="image_size"):
        BeitConfig(image_size=(8, 12), patch_size=4)
    reference, folder = build_reference("base", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="base")
    inputs, _ = task_inputs("base", TINY)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        run_jax(ours, inputs, interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="image_size"):
        run_jax(ours, {"pixel_values": np.zeros((1, 3, 16, 16), np.float32)})
