"""MPNet: every head against `transformers` on tiny random configs, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForMaskedLM
from core.checkpoint.keymap import KeyMapError
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity

# Non-default everywhere: odd head count, intermediate size, epsilon, positions, bucket table.
TINY = dict(vocab_size=101, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
            intermediate_size=37, max_position_embeddings=40, layer_norm_eps=1e-7,
            relative_attention_num_buckets=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
PAD = 1   # transformers' MPNet treats token id 1 as padding (for position ids), whatever pad_token_id says

HF_CLASSES = {
    "base": transformers.MPNetModel,
    "masked-lm": transformers.MPNetForMaskedLM,
    "sequence-classification": transformers.MPNetForSequenceClassification,
    "token-classification": transformers.MPNetForTokenClassification,
    "question-answering": transformers.MPNetForQuestionAnswering,
    "multiple-choice": transformers.MPNetForMultipleChoice,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.MPNetConfig(**{**TINY, **overrides})
    model = parity.build_eager(HF_CLASSES[task], config, seed)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0, length=9):
    pad = config_kwargs.get("pad_token_id", PAD)
    batch = parity.padded_batch(config_kwargs["vocab_size"], batch=3, length=length, seed=seed, pad_id=pad)
    batch["input_ids"][0, 3] = PAD   # a padding id inside a sequence: it gets the padding position
    rng = np.random.default_rng(seed + 1)
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
        labels["labels"] = np.where(batch["attention_mask"] == 1, rng.integers(0, n_labels, size=(3, length)), -100)
    elif task == "question-answering":
        labels["start_positions"] = np.array([1, 4, 20])    # 20 > length: ignored, as in transformers
        labels["end_positions"] = np.array([3, 5, 2])
    elif task == "multiple-choice":
        batch = {k: np.stack([np.roll(v, i, axis=1) for i in range(4)], axis=1) for k, v in batch.items()}
        labels["labels"] = rng.integers(0, 4, size=(3,))
    return batch, labels


CASES = [
    ("base", {}),
    ("base", {"hidden_act": "gelu_new", "pad_token_id": 0}),   # pads are id 0: positions count them
    ("masked-lm", {"hidden_act": "relu"}),
    ("masked-lm", {"tie_word_embeddings": False, "hidden_act": "silu"}),
    ("sequence-classification", {"num_labels": 3, "hidden_act": "quick_gelu"}),
    ("sequence-classification", {"num_labels": 1}),
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification"}),
    ("token-classification", {"num_labels": 5, "hidden_act": "gelu_pytorch_tanh"}),
    ("question-answering", {}),
    ("multiple-choice", {}),
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
    assert len(got.hidden_states) == TINY["num_hidden_layers"] + 1
    parity.assert_close(comparison, record=record_property, label="mpnet vs transformers")


def test_longest_input_reaches_the_logarithmic_buckets(tmp_path, record_property):
    reference, folder = build_reference("base", tmp_path)
    model = AutoModel.from_pretrained(folder)
    assert model.config.max_input_length == 38 == model.max_length
    inputs, _ = task_inputs("base", TINY, length=38)   # offsets up to 37: buckets past the exact range
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs), output_attentions=True)
    got = model(**inputs, output_attentions=True)
    comparison = parity.compare_outputs(got, expected, ("last_hidden_state", "pooler_output", "attentions"))
    parity.assert_close(comparison, record=record_property, label="mpnet vs transformers")
    with pytest.raises(ValueError, match="exceeds the model's maximum of 38"):
        model(input_ids=np.full((1, 39), 5))


@pytest.mark.parametrize("tie", [True, False])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path, tie):
    reference, folder = build_reference("masked-lm", tmp_path, tie_word_embeddings=tie)
    ours = AutoModelForMaskedLM.from_pretrained(folder)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)

    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    saved = safe_open(str(out / "model.safetensors"), "np")
    assert sorted(saved.keys()) == sorted(original.keys())
    assert ("lm_head.decoder.weight" in saved.keys()) == (not tie)
    for key in original.keys():
        np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = transformers.MPNetForMaskedLM.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MPNetForMaskedLM"]


def test_base_model_loads_from_a_task_checkpoint(tmp_path):
    reference, folder = build_reference("masked-lm", tmp_path)
    with pytest.raises(KeyMapError, match="pooler/dense/kernel"):
        AutoModel.from_pretrained(folder)
    base = AutoModel.from_pretrained(folder, module_kwargs={"add_pooling_layer": False})
    assert "lm_head.bias" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.mpnet(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(base(**inputs).last_hidden_state, expected) <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original
    assert list(config.to_dict()) == list(original)
    assert config.relative_attention_num_buckets == 40
    with pytest.raises(ConfigError, match="'hidden_size'.*'24'.*expected int"):
        type(config).from_dict({**original, "hidden_size": "24"})
    with pytest.raises(ConfigError, match="relative_attention_num_buckets.*16.*always buckets"):
        type(config).from_dict({**original, "relative_attention_num_buckets": 16})
    with pytest.raises(ConfigError, match="max_position_embeddings.*padding index"):
        type(config).from_dict({**original, "max_position_embeddings": 2})
    with pytest.raises(ConfigError, match="multiple of num_attention_heads"):
        type(config).from_dict({**original, "hidden_size": 25})
