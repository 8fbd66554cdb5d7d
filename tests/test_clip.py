"""CLIP: CLIPModel against `transformers` on tiny random non-default configs (padded text,
random images, both eos pooling rules), contrastive loss, loading/saving and config checks.
Also the adapter the port tests use (TINY, CASES, build_reference, task_inputs).
"""
import contextlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from core.checkpoint import keymap as km
from core.configuration import ConfigError
from core.models.clip.config import CLIPConfig, CLIPTextConfig, CLIPVisionConfig
from tests import parity

# Non-default everywhere: text 3 heads of 4, intermediate 17, gelu, eps 1e-6, eos 37 (not the
# legacy 2), 10 positions; vision 5 heads of 3, intermediate 23, 12x12 images of 4x4 patches,
# 2 channels; projection 7.
TEXT = dict(vocab_size=50, hidden_size=12, intermediate_size=17, num_hidden_layers=2, num_attention_heads=3,
            max_position_embeddings=10, hidden_act="gelu", layer_norm_eps=1e-6, eos_token_id=37, pad_token_id=0,
            bos_token_id=1, projection_dim=9)
VISION = dict(hidden_size=15, intermediate_size=23, num_hidden_layers=3, num_attention_heads=5, num_channels=2,
              image_size=12, patch_size=4, layer_norm_eps=1e-4, projection_dim=9)
TINY = dict(text_config=TEXT, vision_config=VISION, projection_dim=7)
TOWER_FIELDS = ("last_hidden_state", "pooler_output", "hidden_states", "attentions")
# CLIPTextModel / CLIPVisionModel (model types clip_text_model / clip_vision_model) run under
# the tasks "text-encoder" / "vision-encoder" here (their "base" is the same module), so that
# one field list per task serves the port tests.
OUTPUT_FIELDS = {"base": ("loss", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"),
                 "text-encoder": TOWER_FIELDS, "vision-encoder": TOWER_FIELDS}
TOWERS = {"clip_text_model": ("CLIPTextModel", "CLIPTextConfig", "text_config"),
          "clip_vision_model": ("CLIPVisionModel", "CLIPVisionConfig", "vision_config")}

LEGACY = {"text_config": {**TEXT, "eos_token_id": 2, "hidden_act": "quick_gelu"},
          "vision_config": {**VISION, "hidden_act": "gelu_new", "num_channels": 1, "patch_size": 3}}
CASES = [
    ("clip", "base", {}),
    # Legacy pooling (eos_token_id == 2: the argmax of the ids), quick_gelu / gelu_new, 1 channel.
    ("clip", "base", LEGACY),
    ("clip_text_model", "text-encoder", {}),
    ("clip_text_model", "text-encoder", LEGACY),
    ("clip_vision_model", "vision-encoder", {}),
    ("clip_vision_model", "vision-encoder", LEGACY),
]


def build_reference(model_type, task, tmp_path, seed=0, **overrides):
    kwargs = {**TINY, **overrides}
    if model_type == "clip":
        model = parity.build_eager(transformers.CLIPModel, transformers.CLIPConfig(**kwargs), seed)
    else:
        hf, config, key = TOWERS[model_type]
        model = parity.build_eager(getattr(transformers, hf), getattr(transformers, config)(**kwargs[key]), seed)
    folder = tmp_path / f"hf-{model_type}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0):
    """3 right-padded texts, each ending in eos where it has room (row 0 has none, so it pools
    at position 0 or the largest id), and 2 images; labels: return_loss (needs texts ==
    images, so the loss case uses 2 texts: see test_contrastive_loss)."""
    text, vision = config_kwargs["text_config"], config_kwargs["vision_config"]
    rng = np.random.default_rng(seed)
    batch = parity.padded_batch(text["vocab_size"], batch=3, length=8, seed=seed, pad_id=text["pad_token_id"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ids[ids == text["eos_token_id"]] = 3
    for row in range(1, 3):
        ids[row, int(mask[row].sum()) - 1] = text["eos_token_id"]
    if text["eos_token_id"] == 2:
        ids[1:, :][ids[1:, :] >= 40] = 5
        for row in range(1, 3):
            ids[row, int(mask[row].sum()) - 1] = 45
    pixels = rng.normal(size=(2, vision["num_channels"], vision["image_size"], vision["image_size"]))
    if task == "text-encoder":
        return {"input_ids": ids, "attention_mask": mask}, {}
    if task == "vision-encoder":
        return {"pixel_values": pixels.astype(np.float32)}, {}
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels.astype(np.float32)}, {}


@contextlib.contextmanager
def clip_model():
    """`PretrainedModel` (kept as a context so the tests read as before)."""
    from core.modeling import PretrainedModel
    yield PretrainedModel


def load_jax(folder, task="base"):
    with clip_model() as cls:
        return cls.from_pretrained(folder, task=task)


def run_jax(model, inputs, **flags):
    return model.module.apply({"params": model.params}, **{k: jnp.asarray(v) for k, v in inputs.items()}, **flags)


def run_reference(reference, inputs, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch(inputs), **flags)


@pytest.mark.parametrize("model_type,task,overrides", CASES[:2], ids=["default", "legacy-eos"])
def test_parity_with_transformers(model_type, task, overrides, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = load_jax(folder, task)
    assert ours.config.model_type == "clip"
    inputs, _ = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, output_hidden_states=True, output_attentions=True)
    got = run_jax(ours, inputs, output_hidden_states=True, output_attentions=True)
    comparison = parity.compare_outputs(got, expected, OUTPUT_FIELDS[task])
    for tower in ("text_model_output", "vision_model_output"):
        sub = parity.compare_outputs(getattr(got, tower), getattr(expected, tower), TOWER_FIELDS)
        comparison.diffs.update({f"{tower}.{k}": v for k, v in sub.diffs.items()})
        comparison.scales.update({f"{tower}.{k}": v for k, v in sub.scales.items()})
    assert len(got.text_model_output.hidden_states) == TEXT["num_hidden_layers"] + 1
    parity.assert_close(comparison, record=record_property, label="clip vs transformers")
    # The features helpers (projected, not normalised).
    features = ours.module.apply({"params": ours.params}, jnp.asarray(inputs["input_ids"]),
                                 jnp.asarray(inputs["attention_mask"]), method="get_text_features")
    with torch.no_grad():
        want = reference.get_text_features(**parity.to_torch({k: inputs[k] for k in ("input_ids", "attention_mask")}))
    assert parity.max_abs(features, want.pooler_output) <= parity.TOL


@pytest.mark.parametrize("model_type,task,overrides", CASES[2:], ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES[2:])])
def test_towers_alone_match_transformers(model_type, task, overrides, tmp_path, record_property):
    """CLIPTextModel / CLIPVisionModel folders load through `PretrainedModel` as they are."""
    from core.modeling import PretrainedModel
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == model_type and not ours.load_report.get("dropped")
    inputs, _ = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, output_hidden_states=True, output_attentions=True)
    parity.assert_close(parity.compare_outputs(got, expected, TOWER_FIELDS), record=record_property,
                        label="clip vs transformers")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    reloaded = getattr(transformers, TOWERS[model_type][0]).from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_contrastive_loss(tmp_path, record_property):
    reference, folder = build_reference("clip", "base", tmp_path)
    ours = load_jax(folder)
    inputs, _ = task_inputs("base", TINY)
    inputs = {**inputs, "input_ids": inputs["input_ids"][1:], "attention_mask": inputs["attention_mask"][1:]}
    expected = run_reference(reference, inputs, return_loss=True)
    got = run_jax(ours, inputs, return_loss=True)
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS["base"]), record=record_property,
                        label="clip vs transformers")


def save_round_trip(tmp_path):
    reference, folder = build_reference("clip", "base", tmp_path)
    out = tmp_path / "rosetta"
    load_jax(folder).save_pretrained(out, max_shard_size="8KB")
    return reference, folder, out


def test_saved_folder_round_trips_bit_identically(tmp_path):
    _, folder, out = save_round_trip(tmp_path)
    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert sorted(index["weight_map"]) == sorted(original.keys())
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key).ravel(), original.get_tensor(key).ravel(), err_msg=key)
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["CLIPModel"] and saved["model_type"] == "clip"
    assert saved["text_config"] == json.loads((folder / "config.json").read_text())["text_config"]


def test_saved_folder_loads_in_transformers_with_identical_state_dict(tmp_path):
    reference, folder, out = save_round_trip(tmp_path)
    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    for shard in set(json.loads((out / "model.safetensors.index.json").read_text())["weight_map"].values()):
        with safe_open(str(out / shard), "np") as f:
            for key in f.keys():
                assert f.get_tensor(key).shape == original.get_tensor(key).shape, key
    reloaded = transformers.CLIPModel.from_pretrained(out).eval()
    state = reference.state_dict()
    assert sorted(reloaded.state_dict()) == sorted(state)
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_config_json_round_trips(tmp_path):
    for i, (_, _, overrides) in enumerate(CASES[:2]):
        _, folder = build_reference("clip", "base", tmp_path / str(i), **overrides)
        data = json.loads((folder / "config.json").read_text())
        config = CLIPConfig.from_dict(data)
        assert config.to_dict() == data
        assert config.text.eos_token_id == data["text_config"]["eos_token_id"]
        assert config.vision.num_patches == (12 // data["vision_config"]["patch_size"]) ** 2
    # Defaults: the sub-configs are transformers' defaults.
    data = transformers.CLIPConfig().to_dict()
    config = CLIPConfig.from_dict(data)
    assert config.to_dict() == data
    assert config.text == CLIPTextConfig.from_dict(data["text_config"])
    assert (config.text.hidden_size, config.vision.hidden_size, config.vision.patch_size) == (512, 768, 32)


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="num_attention_heads"):
        CLIPTextConfig(hidden_size=16, num_attention_heads=5)
    with pytest.raises(ConfigError, match="patch_size"):
        CLIPVisionConfig(image_size=8, patch_size=16)
    with pytest.raises(ConfigError, match="text_config.*hidden_act"):
        CLIPConfig(text_config={"hidden_act": "gelu_erf"})
    with pytest.raises(ConfigError, match="vision_config.*image_size"):
        CLIPConfig(vision_config={"image_size": [8, 12]})
    with pytest.raises(ConfigError, match="eos_token_id"):
        CLIPTextConfig(eos_token_id=[2, 3])
    with pytest.raises(ConfigError, match="model_type"):
        CLIPConfig.from_dict({"model_type": "clip_text_model"})
