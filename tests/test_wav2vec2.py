"""Wav2Vec2, HuBERT and WavLM: every head against `transformers` on tiny random configs (both
feature-encoder norms, post-norm and stable-layer-norm encoders, HuBERT's BatchNorm position
conv and LayerNorm-free projection, WavLM's gated relative position bias with few enough
buckets that the log-spaced ones are used), a padded batch of raw audio, CTC and classification
losses, Wav2Vec2's and WavLM's audio-frame-classification (multi-hot frame labels) and x-vector
heads (dilated TDNN layers, statistics pooling over the valid frames, AMSoftmax loss),
loading/saving and config checks. Also the adapter the port tests use (TINY, CASES,
build_reference, task_inputs, OUTPUT_FIELDS).
"""
import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from core import registry
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.wav2vec2.config import HubertConfig, Wav2Vec2Config, WavLMConfig
from tests import parity

# Non-default: conv_dim (8, 8), kernels (5, 3), strides (3, 2), 16 hidden in 2 heads, 2 layers,
# intermediate 19, a 4-tap positional conv in 2 groups, eps 1e-6, conv biases.
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=19, conv_dim=[8, 8],
            conv_kernel=[5, 3], conv_stride=[3, 2], num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
            layer_norm_eps=1e-6, conv_bias=True, vocab_size=11, classifier_proj_size=7,
            ctc_loss_reduction="mean")
CONFIGS = {"wav2vec2": "Wav2Vec2Config", "hubert": "HubertConfig", "wavlm": "WavLMConfig"}
OURS = {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig, "wavlm": WavLMConfig}
# WavLM: 12 buckets (6 per direction, 3 exact) up to distance 20 over 32 frames: exact,
# log-spaced and clipped buckets all occur.
WAVLM_BUCKETS = {"num_buckets": 12, "max_bucket_distance": 20}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "extract_features", "hidden_states", "attentions"),
    "audio-xvector": ("loss", "logits", "embeddings", "hidden_states", "attentions"),
}
# Odd TDNN widths; dilations make the real output length (32 - 2 - 2 = 28 frames) shorter than
# transformers' dilation-free pooled length (32 - 3 = 29), which is then cut at 28.
XVECTOR = {"tdnn_dim": [5, 7, 3], "tdnn_kernel": [3, 2, 1], "tdnn_dilation": [1, 2, 3], "xvector_output_dim": 9}
DEFAULT_FIELDS = ("loss", "logits", "hidden_states", "attentions")
SAMPLES = 200


def hf_class(model_type, task):
    return getattr(transformers, registry.family(model_type).heads[task][1])


def reference_config(model_type, **overrides):
    return getattr(transformers, CONFIGS[model_type])(**{**TINY, **overrides})


def build_reference(model_type, task, tmp_path, seed=0, **overrides):
    model = parity.build_eager(hf_class(model_type, task), reference_config(model_type, **overrides), seed)
    folder = tmp_path / f"hf-{model_type}-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0):
    """input_values (3, SAMPLES) with two right-padded rows (padding zeros) and the attention
    mask over samples; CTC adds labels padded with -100, classification integer labels."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(3, SAMPLES)).astype(np.float32)
    mask = np.ones((3, SAMPLES), np.int64)
    for row, n in ((1, 150), (2, 110)):
        mask[row, n:] = 0
        values[row, n:] = 0.0
    inputs = {"input_values": values, "attention_mask": mask}
    labels = {}
    if task == "ctc":
        vocab = config_kwargs["vocab_size"]
        ids = rng.integers(1, vocab, size=(3, 6))
        ids[1, 4:] = -100
        ids[2, 2:] = -100
        labels["labels"] = ids
    elif task in ("sequence-classification", "audio-xvector"):
        labels["labels"] = rng.integers(0, config_kwargs.get("num_labels", 2), size=(3,))
    elif task == "audio-frame-classification":
        # Multi-hot (batch, frames, num_labels), padded frames included as transformers takes
        # them; ties (and all-zero frames) pick the first maximal label.
        frames = SAMPLES
        for kernel, stride in zip(config_kwargs["conv_kernel"], config_kwargs["conv_stride"]):
            frames = (frames - kernel) // stride + 1
        num_labels = config_kwargs.get("num_labels", 2)
        labels["labels"] = (rng.random((3, frames, num_labels)) < 0.4).astype(np.float32)
    return inputs, labels


CASES = [
    ("wav2vec2", "base", {}),
    ("wav2vec2", "base", {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "hidden_act": "gelu_new",
                          "feat_extract_activation": "relu", "num_conv_pos_embeddings": 5, "conv_bias": False}),
    # "mean" CTC reduction (TINY): a "sum" loss is O(100), where float32 rounding alone exceeds 1e-5
    # between implementations; "sum" is checked against torch's ctc_loss in tests/test_layers.py.
    ("wav2vec2", "ctc", {"do_stable_layer_norm": True, "feat_extract_norm": "layer", "pad_token_id": 3}),
    ("wav2vec2", "sequence-classification", {"num_labels": 4, "use_weighted_layer_sum": True,
                                             "mask_time_prob": 0.0}),
    ("hubert", "ctc", {"conv_pos_batch_norm": True, "feat_proj_layer_norm": False, "hidden_act": "silu"}),
    ("hubert", "sequence-classification", {"num_labels": 3}),
    ("wavlm", "base", {**WAVLM_BUCKETS, "hidden_act": "gelu_new"}),
    ("wavlm", "ctc", {**WAVLM_BUCKETS, "do_stable_layer_norm": True, "feat_extract_norm": "layer",
                      "num_attention_heads": 4}),
    ("wavlm", "sequence-classification", {**WAVLM_BUCKETS, "num_labels": 3, "use_weighted_layer_sum": True}),
    # The two heads share one module set across model types (only the backbone's name differs): one
    # parity case each (a compile is ~6 s), crossed over model types and layer-sum settings; the
    # other two (model type, head) pairs are checked by the save/load round trip below.
    ("wav2vec2", "audio-frame-classification", {"num_labels": 3, "use_weighted_layer_sum": True,
                                                "do_stable_layer_norm": True, "feat_extract_norm": "layer"}),
    ("wavlm", "audio-xvector", {**WAVLM_BUCKETS, **XVECTOR, "num_labels": 4}),
]


def fields_for(model_type, task):
    fields = OUTPUT_FIELDS.get(task, DEFAULT_FIELDS)
    if model_type == "hubert" and task == "base":
        fields = tuple(f for f in fields if f != "extract_features")
    return fields


def run_reference(reference, inputs, labels=None, **flags):
    with torch.no_grad():
        return reference(**parity.to_torch({**inputs, **(labels or {})}), **flags)


@pytest.mark.parametrize("model_type,task,overrides", CASES, ids=[f"{m}-{t}-{i}" for i, (m, t, _) in enumerate(CASES)])
def test_parity_with_transformers(model_type, task, overrides, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == model_type
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    expected = run_reference(reference, inputs, labels, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    parity.assert_close(parity.compare_outputs(got, expected, fields_for(model_type, task)), record=record_property,
                        label=f"{model_type} vs transformers")


def test_wavlm_buckets_match_transformers():
    """The shared T5 bucketing (core.layers.positions) gives WavLM's buckets: the test config's and
    the default (320 buckets up to 800), offsets up to ±1000."""
    from core.layers import positions
    relative = torch.arange(-1000, 1001)[None, :]
    for buckets, distance in ((12, 20), (320, 800)):
        attention = transformers.models.wavlm.modeling_wavlm.WavLMAttention(16, 2, num_buckets=buckets,
                                                                              max_distance=distance)
        got = positions.relative_position_bucket(jnp.asarray(relative.numpy()), True, buckets, distance)
        np.testing.assert_array_equal(np.asarray(got), attention._relative_positions_bucket(relative).numpy())


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    for model_type, task, overrides in (("wav2vec2", "ctc", {}),
                                        ("hubert", "sequence-classification", {"conv_pos_batch_norm": True}),
                                        ("wavlm", "ctc", WAVLM_BUCKETS),
                                        ("wav2vec2", "audio-xvector", {**XVECTOR, "num_labels": 3,
                                                                       "use_weighted_layer_sum": True}),
                                        ("wavlm", "audio-frame-classification", {**WAVLM_BUCKETS, "num_labels": 5})):
        reference, folder = build_reference(model_type, task, tmp_path, **overrides)
        ours = PretrainedModel.from_pretrained(folder, task=task)
        out = tmp_path / f"rosetta-{model_type}"
        ours.save_pretrained(out)
        from safetensors import safe_open
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            expected_keys = sorted(k for k in original.keys() if not k.endswith("num_batches_tracked"))
            assert sorted(saved.keys()) == expected_keys
            for key in expected_keys:
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = hf_class(model_type, task).from_pretrained(out).eval()
        state = reference.state_dict()
        assert sorted(reloaded.state_dict()) == sorted(state)
        for key, value in reloaded.state_dict().items():
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(value, state[key]), key
        saved = json.loads((out / "config.json").read_text())
        assert saved["architectures"] == [hf_class(model_type, task).__name__]


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_config_json_round_trips(model_type, tmp_path):
    _, folder = build_reference(model_type, "base", tmp_path, num_labels=3)
    data = json.loads((folder / "config.json").read_text())
    config = OURS[model_type].from_dict(data)
    assert config.to_dict() == data
    assert config.feat_extract_output_length(SAMPLES) == 32


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="num_attention_heads"):
        Wav2Vec2Config(hidden_size=16, num_attention_heads=5)
    with pytest.raises(ConfigError, match="conv_dim"):
        Wav2Vec2Config(conv_dim=(8, 8), conv_kernel=(5,), conv_stride=(3, 2))
    with pytest.raises(ConfigError, match="feat_extract_norm"):
        HubertConfig(feat_extract_norm="batch")
    with pytest.raises(ConfigError, match="add_adapter"):
        Wav2Vec2Config(add_adapter=True)
    with pytest.raises(ConfigError, match="num_conv_pos_embedding_groups"):
        Wav2Vec2Config(hidden_size=16, num_attention_heads=2, num_conv_pos_embedding_groups=3)
    with pytest.raises(ConfigError, match="max_bucket_distance"):
        WavLMConfig(num_buckets=12, max_bucket_distance=3)
    with pytest.raises(ConfigError, match="add_adapter"):
        WavLMConfig(add_adapter=True)
    with pytest.raises(ConfigError, match="tdnn_dim"):
        Wav2Vec2Config(tdnn_dim=(5, 7), tdnn_kernel=(3, 2, 1), tdnn_dilation=(1, 2, 3))
    with pytest.raises(ConfigError, match="tdnn_dilation"):
        WavLMConfig(tdnn_dim=(5,), tdnn_kernel=(3,), tdnn_dilation=(0,))


def test_xvector_and_frame_heads_only_for_wav2vec2_and_wavlm():
    """transformers has no HuBERT frame-classification or x-vector head: neither has Rosetta."""
    for model_type in ("wav2vec2", "wavlm"):
        for task in ("audio-frame-classification", "audio-xvector"):
            assert hf_class(model_type, task).__name__.endswith(("ForAudioFrameClassification", "ForXVector"))
    for task in ("audio-frame-classification", "audio-xvector"):
        with pytest.raises(ValueError, match=task):
            registry.family("hubert").check_task(task)
    assert not hasattr(transformers, "HubertForXVector")
    assert not hasattr(transformers, "HubertForAudioFrameClassification")
