"""ViT, DeiT, ViT-MSN: every head against `transformers` on tiny random configs (non-square
images included), position-table interpolation at other resolutions, loading/saving and
config checks. Also the adapter the port tests use (TINY, CASES, build_reference, task_inputs).

`core.modeling.PretrainedModel` builds its abstract params from token ids and requires
`input_ids` in `__call__` (see `pixel_model` below): until it learns `pixel_values`, these
tests load through it with a pixel-shaped init and call `module.apply` directly.
"""
import contextlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.checkpoint import keymap as km
from core.configuration import ConfigError
from core.models.vit.config import DeiTConfig, ViTConfig, ViTMSNConfig
from tests import parity

# Non-default everywhere: 5 heads of 3, intermediate 23, 12x12 images of 4x4 patches (a 3x3
# grid), epsilon 1e-6, encoder_stride = patch_size (masked image modeling needs it).
TINY = dict(hidden_size=15, num_hidden_layers=2, num_attention_heads=5, intermediate_size=23, image_size=12,
            patch_size=4, num_channels=3, encoder_stride=4, layer_norm_eps=1e-6)
CONFIGS = {"vit": "ViTConfig", "deit": "DeiTConfig", "vit_msn": "ViTMSNConfig"}
OURS = {"vit": ViTConfig, "deit": DeiTConfig, "vit_msn": ViTMSNConfig}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
    "masked-image-modeling": ("loss", "reconstruction", "hidden_states", "attentions"),
    "image-classification-with-teacher": ("logits", "cls_logits", "distillation_logits", "hidden_states",
                                          "attentions"),
}
DEFAULT_FIELDS = ("loss", "logits", "hidden_states", "attentions")
_MSN_ONLY_VIT = ("encoder_stride", "pooler_output_size", "pooler_act")


def hf_class(model_type, task):
    return getattr(transformers, registry.family(model_type).heads[task][1])


def reference_config(model_type, **overrides):
    kwargs = {**TINY, **overrides}
    if model_type == "vit_msn":
        kwargs = {k: v for k, v in kwargs.items() if k not in _MSN_ONLY_VIT}
    return getattr(transformers, CONFIGS[model_type])(**kwargs)


def build_reference(model_type, task, tmp_path, seed=0, **overrides):
    model = parity.build_eager(hf_class(model_type, task), reference_config(model_type, **overrides), seed)
    folder = tmp_path / f"hf-{model_type}-{task}"
    model.save_pretrained(folder)
    return model, folder


def _hw(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def task_inputs(task, config_kwargs, seed=0, size=None):
    """pixel_values (3, channels, height, width) at the configured size (or `size`); masked
    image modeling adds bool_masked_pos (half the patches); classification adds labels."""
    rng = np.random.default_rng(seed)
    height, width = size or _hw(config_kwargs["image_size"])
    inputs = {"pixel_values": rng.normal(size=(3, config_kwargs["num_channels"], height, width)).astype(np.float32)}
    labels = {}
    if task == "masked-image-modeling":
        ph, pw = _hw(config_kwargs["patch_size"])
        inputs["bool_masked_pos"] = rng.random((3, (height // ph) * (width // pw))) < 0.5
    elif task == "image-classification":
        n_labels = config_kwargs.get("num_labels", 2)
        if n_labels == 1 or config_kwargs.get("problem_type") == "regression":
            labels["labels"] = rng.normal(size=(3, n_labels) if n_labels > 1 else (3,)).astype(np.float32)
        elif config_kwargs.get("problem_type") == "multi_label_classification":
            labels["labels"] = (rng.random((3, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    return inputs, labels


CASES = [
    ("vit", "base", {}),
    ("vit", "base", {"pooler_output_size": 7, "pooler_act": "relu", "hidden_act": "gelu_new", "qkv_bias": False}),
    ("vit", "image-classification", {"num_labels": 3}),
    # Non-square image and patches: a 2x4 grid.
    ("vit", "image-classification", {"num_labels": 1, "image_size": [8, 12], "patch_size": [4, 3],
                                     "hidden_act": "quick_gelu"}),
    ("vit", "image-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                                     "num_channels": 2}),
    ("vit", "masked-image-modeling", {}),
    ("vit", "masked-image-modeling", {"image_size": 9, "patch_size": 3, "encoder_stride": 3, "num_channels": 1}),
    ("deit", "base", {}),
    ("deit", "image-classification", {"num_labels": 3, "hidden_act": "silu"}),
    ("deit", "masked-image-modeling", {}),
    ("deit", "image-classification-with-teacher", {"num_labels": 5}),
    ("vit_msn", "image-classification", {"num_labels": 3, "qkv_bias": False}),
]
# Not in CASES (which the port tests share, with one field list per task): ViTMSNModel returns
# no pooler_output at all.
MORE_CASES = [("vit_msn", "base", {})]


# -- the JAX model (see the module docstring) ----------------------------------------------------------

@contextlib.contextmanager
def pixel_model():
    """`PretrainedModel` (its dummy inputs are pixels for configs with image_size)."""
    from core.modeling import PretrainedModel
    yield PretrainedModel


def load_jax(folder, task):
    with pixel_model() as cls:
        return cls.from_pretrained(folder, task=task)


def run_jax(model, inputs, labels=None, **flags):
    arrays = {k: jnp.asarray(v) for k, v in {**inputs, **(labels or {})}.items()}
    return model.module.apply({"params": model.params}, **arrays, **flags)


def run_reference(reference, inputs, labels=None, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch({**inputs, **(labels or {})}), **flags)


@pytest.mark.parametrize("model_type,task,overrides", CASES + MORE_CASES,
                         ids=[f"{m}-{t}-{i}" for i, (m, t, _) in enumerate(CASES + MORE_CASES)])
def test_parity_with_transformers(model_type, task, overrides, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = load_jax(folder, task)
    assert ours.config.model_type == model_type
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True, output_attentions=True)
    got = run_jax(ours, inputs, labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, DEFAULT_FIELDS)
    if model_type == "vit_msn" and task == "base":
        fields = tuple(f for f in fields if f != "pooler_output")
        assert got.pooler_output is None
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label=f"{model_type} vs transformers")


@pytest.mark.parametrize("model_type,task,size", [
    ("vit", "base", (16, 16)),                 # a 4x4 grid from the 3x3 table
    ("vit", "image-classification", (8, 20)),  # 2x5: down one way, up the other
    ("deit", "image-classification-with-teacher", (20, 12)),
])
def test_position_table_is_interpolated_at_other_resolutions(model_type, task, size, tmp_path, record_property):
    """Other resolutions resize the patch rows of the position table bicubically, as
    `transformers` does with interpolate_pos_encoding=True (torch's bicubic, A=-0.75)."""
    overrides = {"num_labels": 3} if "classification" in task else {}
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = load_jax(folder, task)
    inputs, _ = task_inputs(task, {**TINY, **overrides}, size=size)
    expected = run_reference(reference, inputs, interpolate_pos_encoding=True, output_hidden_states=True)
    got = run_jax(ours, inputs, output_hidden_states=True)
    fields = ("hidden_states",) + (("logits",) if "classification" in task else ("last_hidden_state",))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label=f"{model_type} vs transformers")


def test_bicubic_matrix_is_torchs_bicubic_resize():
    from core.models.vit.modeling import bicubic_matrix
    for n_in, n_out in ((3, 4), (3, 2), (5, 9), (4, 4), (7, 3)):
        table = torch.randn(1, 2, n_in, n_in, generator=torch.Generator().manual_seed(n_out))
        want = torch.nn.functional.interpolate(table, size=(n_out, n_out), mode="bicubic", align_corners=False)
        m = np.asarray(bicubic_matrix(n_in, n_out))
        got = np.einsum("ij,cjk,lk->cil", m, table[0].numpy().astype(np.float64), m)
        np.testing.assert_allclose(got, want[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("model_type,task,overrides", [
    ("vit", "masked-image-modeling", {}),
    ("deit", "image-classification-with-teacher", {"num_labels": 3}),
    ("vit_msn", "image-classification", {"num_labels": 3}),     # encoder keys at the root
])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(model_type, task, overrides, tmp_path):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = load_jax(folder, task)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out, max_shard_size="8KB")
    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert sorted(index["weight_map"]) == sorted(original.keys())
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = hf_class(model_type, task).from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == [hf_class(model_type, task).__name__] and saved["model_type"] == model_type


def test_base_model_loads_from_a_head_checkpoint(tmp_path, record_property):
    """The backbone of a masked-image-modeling folder as a bare model: the decoder, mask token
    (and the absent pooler) are dropped or reported."""
    reference, folder = build_reference("vit", "masked-image-modeling", tmp_path)
    with pixel_model() as cls:
        base = cls.from_pretrained(folder, task="base", module_kwargs={"add_pooling_layer": False})
    assert "decoder.0.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    expected = run_reference(reference.vit, inputs).last_hidden_state
    diff = parity.max_abs(run_jax(base, inputs).last_hidden_state, expected)
    record_property("parity:vit vs transformers", diff)
    assert diff <= parity.TOL


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_config_json_round_trips(model_type, tmp_path):
    for overrides in ({}, {"image_size": [8, 12], "patch_size": [4, 3], "num_labels": 3}):
        _, folder = build_reference(model_type, "base", tmp_path / str(len(overrides)), **overrides)
        data = json.loads((folder / "config.json").read_text())
        config = OURS[model_type].from_dict(data)
        assert config.to_dict() == data
        assert config.grid_hw == ((3, 3) if not overrides else (2, 4))


def test_bad_configs_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="num_attention_heads"):
        ViTConfig(hidden_size=16, num_attention_heads=5)
    with pytest.raises(ConfigError, match="patch_size"):
        ViTConfig(image_size=8, patch_size=16)
    with pytest.raises(ConfigError, match="hidden_act"):
        DeiTConfig(hidden_act="gelu_erf")
    with pytest.raises(ConfigError, match="model_type"):
        ViTConfig.from_dict({"model_type": "deit"})
    with pytest.raises(ConfigError, match="image_size"):
        ViTMSNConfig(image_size="large")


def test_masked_image_modeling_needs_patch_size_equal_to_encoder_stride(tmp_path):
    _, folder = build_reference("vit", "masked-image-modeling", tmp_path, encoder_stride=2, image_size=8)
    ours = load_jax(folder, "masked-image-modeling")
    inputs, _ = task_inputs("masked-image-modeling", {**TINY, "image_size": 8})
    with pytest.raises(ValueError, match="encoder_stride"):
        run_jax(ours, inputs)
    assert run_jax(ours, {"pixel_values": inputs["pixel_values"]}).reconstruction.shape == (3, 3, 4, 4)
