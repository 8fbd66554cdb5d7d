"""ALBERT: every head against `transformers` on tiny random configs (cross-layer sharing with
1-3 groups of 1-2 inner layers), plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForPreTraining
from core.checkpoint.keymap import KeyMapError
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.albert.config import AlbertConfig
from tests import parity

# Non-default everywhere: factorized embedding width, odd head count and FFN width, epsilon,
# type vocab, positions. hidden_act stays ALBERT's default, gelu_new (tanh approximation).
TINY = dict(vocab_size=101, embedding_size=10, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
            intermediate_size=37, max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7,
            classifier_dropout_prob=0.0)

HF_CLASSES = {
    "base": transformers.AlbertModel,
    "masked-lm": transformers.AlbertForMaskedLM,
    "pretraining": transformers.AlbertForPreTraining,
    "sequence-classification": transformers.AlbertForSequenceClassification,
    "token-classification": transformers.AlbertForTokenClassification,
    "question-answering": transformers.AlbertForQuestionAnswering,
    "multiple-choice": transformers.AlbertForMultipleChoice,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
    "pretraining": ("loss", "prediction_logits", "sop_logits", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.AlbertConfig(**{**TINY, **overrides})
    model = parity.build_eager(HF_CLASSES[task], config, seed)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0):
    batch = parity.padded_batch(config_kwargs["vocab_size"], batch=3, length=9, seed=seed)
    rng = np.random.default_rng(seed + 1)
    batch["token_type_ids"] = (rng.integers(0, config_kwargs["type_vocab_size"], size=batch["input_ids"].shape)
                               * batch["attention_mask"])
    labels = {}
    n_labels = config_kwargs.get("num_labels", 2)
    if task in ("masked-lm", "pretraining"):
        labels["labels"] = np.where(rng.random(batch["input_ids"].shape) < 0.5, batch["input_ids"], -100)
        if task == "pretraining":
            labels["sentence_order_label"] = rng.integers(0, n_labels, size=(3,))
    elif task == "sequence-classification":
        problem = config_kwargs.get("problem_type")
        if n_labels == 1 or problem == "regression":
            labels["labels"] = rng.normal(size=(3, n_labels) if n_labels > 1 else (3,)).astype(np.float32)
        elif problem == "multi_label_classification":
            labels["labels"] = (rng.random((3, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    elif task == "token-classification":
        labels["labels"] = np.where(batch["attention_mask"] == 1, rng.integers(0, n_labels, size=(3, 9)), -100)
    elif task == "question-answering":
        labels["start_positions"] = np.array([1, 4, 20])    # 20 > length: ignored, as in transformers
        labels["end_positions"] = np.array([3, 5, 2])
    elif task == "multiple-choice":
        batch = {k: np.stack([np.roll(v, i, axis=1) for i in range(4)], axis=1) for k, v in batch.items()}
        labels["labels"] = rng.integers(0, 4, size=(3,))
    return batch, labels


# ALBERT's defaults (one group, one inner layer, gelu_new) run in every case that does not override them.
CASES = [
    ("base", {"num_hidden_groups": 2, "hidden_act": "gelu"}),            # layers → groups 0, 0, 1
    ("base", {"num_hidden_groups": 2, "inner_group_num": 2, "hidden_act": "silu"}),
    ("masked-lm", {}),
    ("masked-lm", {"tie_word_embeddings": False, "num_hidden_groups": 2, "hidden_act": "gelu_pytorch_tanh"}),
    ("pretraining", {}),
    ("pretraining", {"tie_word_embeddings": False, "inner_group_num": 2, "hidden_act": "gelu"}),
    ("sequence-classification", {"num_labels": 3}),
    ("sequence-classification", {"num_labels": 1, "classifier_dropout_prob": 0.3}),     # regression
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                                 "hidden_act": "quick_gelu"}),
    ("token-classification", {"num_labels": 5, "hidden_act": "relu"}),
    ("question-answering", {"num_hidden_groups": 3, "hidden_act": "gelu_fast"}),   # one group per layer
    ("multiple-choice", {}),
]


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    # Shared params: as many as the reference holds (one copy per group, tied weights once).
    assert ours.num_params() == sum(p.numel() for p in reference.parameters())
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    applied = TINY["num_hidden_layers"] * overrides.get("inner_group_num", 1)
    assert len(got.hidden_states) == applied + 1 and len(got.attentions) == applied
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label="albert vs transformers")


def test_groups_hold_shared_params_once(tmp_path):
    _, folder = build_reference("base", tmp_path, num_hidden_groups=2, inner_group_num=2)
    ours = AutoModel.from_pretrained(folder)
    encoder = ours.params["encoder"]
    assert sorted(encoder) == ["albert_layer_groups_0", "albert_layer_groups_1", "embedding_hidden_mapping_in"]
    assert sorted(encoder["albert_layer_groups_0"]) == ["albert_layers_0", "albert_layers_1"]
    assert [AlbertConfig(num_hidden_layers=5, num_hidden_groups=2).group_of_layer(i) for i in range(5)] == \
        [0, 0, 0, 1, 1]   # int(i / 2.5), as transformers computes it


@pytest.mark.parametrize("tie", [True, False])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path, tie):
    reference, folder = build_reference("pretraining", tmp_path, tie_word_embeddings=tie, num_hidden_groups=2,
                                        inner_group_num=2)
    ours = AutoModelForPreTraining.from_pretrained(folder)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out, max_shard_size="20KB")
    assert (out / "model.safetensors.index.json").exists()

    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(original.keys())
    # Tied: the decoder is the embedding table plus predictions.bias; untied: both biases are stored.
    assert ("predictions.decoder.weight" in index["weight_map"]) == (not tie)
    assert ("predictions.decoder.bias" in index["weight_map"]) == (not tie)
    assert "predictions.bias" in index["weight_map"]
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = transformers.AlbertForPreTraining.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["AlbertForPreTraining"]


def test_base_model_loads_from_a_task_checkpoint(tmp_path):
    reference, mlm_folder = build_reference("masked-lm", tmp_path, num_hidden_groups=2)
    # AlbertForMaskedLM has no pooler, so the base model must be asked not to have one either.
    with pytest.raises(KeyMapError, match="pooler/kernel"):
        AutoModel.from_pretrained(mlm_folder)
    base = AutoModel.from_pretrained(mlm_folder, module_kwargs={"add_pooling_layer": False})
    assert "predictions.bias" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.albert(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(base(**inputs).last_hidden_state, expected) <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, num_hidden_groups=2, inner_group_num=2)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert isinstance(config, AlbertConfig)
    assert config.to_dict() == original
    assert list(config.to_dict()) == list(original)
    with pytest.raises(ConfigError, match="'embedding_size'.*'10'.*expected int"):
        AlbertConfig.from_dict({**original, "embedding_size": "10"})
    with pytest.raises(ConfigError, match="hidden_act.*'gelu_fancy'"):
        AlbertConfig.from_dict({**original, "hidden_act": "gelu_fancy"})
    with pytest.raises(ConfigError, match="multiple of num_attention_heads"):
        AlbertConfig.from_dict({**original, "hidden_size": 25})
    with pytest.raises(ConfigError, match="'num_hidden_groups'.*at most num_hidden_layers=3"):
        AlbertConfig.from_dict({**original, "num_hidden_groups": 4})
    with pytest.raises(ValueError, match="remat"):
        AutoModel.from_pretrained(folder, remat=True)


def test_training_mode_dropout_is_driven_by_the_rng(tmp_path):
    import jax
    _, folder = build_reference("base", tmp_path, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    model = AutoModel.from_pretrained(folder)
    inputs, _ = task_inputs("base", TINY)
    a = model(**inputs, deterministic=False, dropout_rng=jax.random.key(1)).last_hidden_state
    b = model(**inputs, deterministic=False, dropout_rng=jax.random.key(1)).last_hidden_state
    c = model(**inputs, deterministic=False, dropout_rng=jax.random.key(2)).last_hidden_state
    d = model(**inputs).last_hidden_state
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3
    assert np.abs(np.asarray(a) - np.asarray(d)).max() > 1e-3
