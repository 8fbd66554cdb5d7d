"""BERT: every head against `transformers` on tiny random configs, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification
from core.checkpoint.keymap import KeyMapError
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity

# Non-default everywhere: odd head count, intermediate size, epsilon, type vocab, positions.
TINY = dict(vocab_size=101, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
            intermediate_size=37, max_position_embeddings=40, type_vocab_size=3,
            layer_norm_eps=1e-7, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

HF_CLASSES = {
    "base": transformers.BertModel,
    "masked-lm": transformers.BertForMaskedLM,
    "sequence-classification": transformers.BertForSequenceClassification,
    "token-classification": transformers.BertForTokenClassification,
    "question-answering": transformers.BertForQuestionAnswering,
    "multiple-choice": transformers.BertForMultipleChoice,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.BertConfig(**{**TINY, **overrides})
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
    if task == "masked-lm":
        labels["labels"] = np.where(rng.random(batch["input_ids"].shape) < 0.5, batch["input_ids"], -100)
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


CASES = [
    ("base", {}),
    ("base", {"hidden_act": "gelu_new"}),
    ("masked-lm", {}),
    ("masked-lm", {"tie_word_embeddings": False, "hidden_act": "relu"}),
    ("sequence-classification", {"num_labels": 3}),
    ("sequence-classification", {"num_labels": 1}),
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                                 "hidden_act": "silu"}),
    ("sequence-classification", {"num_labels": 2, "problem_type": "regression", "classifier_dropout": 0.3}),
    ("token-classification", {"num_labels": 5, "hidden_act": "quick_gelu"}),
    ("question-answering", {}),
    ("multiple-choice", {"hidden_act": "gelu_pytorch_tanh"}),
]


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label="bert vs transformers")


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    reference, folder = build_reference("masked-lm", tmp_path)
    ours = AutoModelForMaskedLM.from_pretrained(folder)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out, max_shard_size="20KB")
    assert (out / "model.safetensors.index.json").exists()

    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(original.keys())
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = transformers.BertForMaskedLM.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]


def test_base_model_loads_from_a_task_checkpoint(tmp_path):
    reference, mlm_folder = build_reference("masked-lm", tmp_path)
    # BertForMaskedLM has no pooler, so the base model must be asked not to have one either.
    with pytest.raises(KeyMapError, match="pooler/dense/kernel"):
        AutoModel.from_pretrained(mlm_folder)
    base = AutoModel.from_pretrained(mlm_folder, module_kwargs={"add_pooling_layer": False})
    assert "cls.predictions.bias" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.bert(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(base(**inputs).last_hidden_state, expected) <= parity.TOL


def test_missing_head_error_names_the_fix_and_init_new_head_initialises(tmp_path):
    _, base_folder = build_reference("base", tmp_path)
    with pytest.raises(KeyMapError) as err:
        AutoModelForSequenceClassification.from_pretrained(base_folder)
    assert "classifier/kernel" in str(err.value) and "init_new_head=True" in str(err.value)
    model = AutoModelForSequenceClassification.from_pretrained(base_folder, init_new_head=True)
    assert sorted(model.load_report["initialised"]) == ["classifier/bias", "classifier/kernel"]
    inputs, _ = task_inputs("base", TINY)
    assert model(**inputs).logits.shape == (3, 2)


def test_classifier_from_a_masked_lm_checkpoint_initialises_pooler_and_head(tmp_path):
    # BertForMaskedLM checkpoints have no pooler; transformers initialises it for a classifier.
    reference, mlm_folder = build_reference("masked-lm", tmp_path)
    with pytest.raises(KeyMapError, match="(?s)pooler/dense/kernel.*init_new_head=True"):
        AutoModelForSequenceClassification.from_pretrained(mlm_folder)
    model = AutoModelForSequenceClassification.from_pretrained(mlm_folder, init_new_head=True)
    assert model.load_report["initialised"] == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel",
                                                "classifier/bias", "classifier/kernel"]
    assert "cls.predictions.bias" in model.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.bert(**parity.to_torch(inputs)).last_hidden_state
    hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
    assert parity.max_abs(hidden, expected) <= parity.TOL


def test_mismatched_config_reports_every_bad_key_and_loads_nothing(tmp_path):
    _, folder = build_reference("base", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 40
    config["num_hidden_layers"] = 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KeyMapError) as err:
        AutoModel.from_pretrained(folder)
    message = str(err.value)
    assert "nothing was loaded" in message
    assert "intermediate.dense.weight" in message and "(37, 24)" in message   # mis-shaped
    assert "layers [3]" in message                                           # missing 4th layer


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original
    assert list(config.to_dict()) == list(original)
    with pytest.raises(ConfigError, match="'hidden_size'.*'24'.*expected int"):
        type(config).from_dict({**original, "hidden_size": "24"})
    with pytest.raises(ConfigError, match="hidden_act.*'gelu_fancy'"):
        type(config).from_dict({**original, "hidden_act": "gelu_fancy"})
    with pytest.raises(ConfigError, match="multiple of num_attention_heads"):
        type(config).from_dict({**original, "hidden_size": 25})
    (folder / "config.json").write_text(json.dumps({**original, "model_type": "nonexistent"}))
    with pytest.raises(ValueError, match="supported: .*bert"):
        AutoModel.from_pretrained(folder)


def test_bad_inputs_get_clear_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    model = AutoModel.from_pretrained(folder)
    with pytest.raises(ValueError, match=r"input_ids: values must lie in \[0, 101\)"):
        model(input_ids=np.array([[1, 2, 101]]))
    with pytest.raises(ValueError, match="exceeds the model's maximum of 40"):
        model(input_ids=np.ones((1, 41), np.int64))
    with pytest.raises(ValueError, match="empty sequence"):
        model(input_ids=np.zeros((1, 0), np.int64))
    with pytest.raises(TypeError, match="expected integer ids"):
        model(input_ids=np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="dropout_rng"):
        model(input_ids=np.ones((1, 3), np.int64), deterministic=False)


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
