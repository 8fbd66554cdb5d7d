"""ELECTRA: every head against `transformers` on tiny random configs, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity

# Non-default everywhere: embeddings narrower than the encoder (projected), odd head count,
# intermediate size, epsilon, type vocab, positions.
TINY = dict(vocab_size=101, embedding_size=10, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
            intermediate_size=37, max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, summary_last_dropout=0.0)

HF_CLASSES = {
    "base": transformers.ElectraModel,
    "pretraining": transformers.ElectraForPreTraining,
    "masked-lm": transformers.ElectraForMaskedLM,
    "sequence-classification": transformers.ElectraForSequenceClassification,
    "token-classification": transformers.ElectraForTokenClassification,
    "question-answering": transformers.ElectraForQuestionAnswering,
    "multiple-choice": transformers.ElectraForMultipleChoice,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.ElectraConfig(**{**TINY, **overrides})
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
    if task == "pretraining":
        labels["labels"] = rng.integers(0, 2, size=batch["input_ids"].shape)
    elif task == "masked-lm":
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


SAME_WIDTH = {"embedding_size": 24}     # no embeddings_project
CASES = [
    ("base", {}),
    ("pretraining", {}),
    ("pretraining", {**SAME_WIDTH, "hidden_act": "relu"}),
    ("masked-lm", {"hidden_act": "gelu_new"}),
    ("masked-lm", {**SAME_WIDTH, "tie_word_embeddings": False, "hidden_act": "silu"}),
    ("sequence-classification", {"num_labels": 3, "hidden_act": "quick_gelu", "classifier_dropout": 0.3}),
    ("sequence-classification", {**SAME_WIDTH, "num_labels": 1}),
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification"}),
    ("token-classification", {"num_labels": 5, "hidden_act": "gelu_pytorch_tanh"}),
    ("question-answering", {}),
    ("multiple-choice", {}),
    # cls_index without an index means the last token in transformers.
    ("multiple-choice", {**SAME_WIDTH, "summary_type": "cls_index", "summary_activation": "tanh",
                         "summary_first_dropout": 0.2}),
    ("multiple-choice", {"summary_type": "mean", "summary_use_proj": False, "summary_activation": ""}),
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
    parity.assert_close(comparison, record=record_property, label="electra vs transformers")


def test_pretraining_loss_without_attention_mask_covers_every_token(tmp_path):
    reference, folder = build_reference("pretraining", tmp_path)
    ours = AutoModelForPreTraining.from_pretrained(folder)
    inputs, labels = task_inputs("pretraining", TINY)
    inputs = {"input_ids": inputs["input_ids"], **labels}
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs))
    assert parity.max_abs(ours(**inputs).loss, expected.loss) <= parity.TOL


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
    assert ("generator_lm_head.weight" in saved.keys()) == (not tie)
    for key in original.keys():
        np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = transformers.ElectraForMaskedLM.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["ElectraForMaskedLM"]


def test_discriminator_backbone_loads_as_base_model(tmp_path):
    reference, folder = build_reference("pretraining", tmp_path)
    base = AutoModel.from_pretrained(folder)
    assert "discriminator_predictions.dense.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.electra(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(base(**inputs).last_hidden_state, expected) <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("multiple-choice", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original
    assert list(config.to_dict()) == list(original)
    assert config.embedding_size == 10 and config.summary_type == "first"
    with pytest.raises(ConfigError, match="'embedding_size'.*'10'.*expected int"):
        type(config).from_dict({**original, "embedding_size": "10"})
    with pytest.raises(ConfigError, match="summary_type.*'attn'"):
        type(config).from_dict({**original, "summary_type": "attn"})
    with pytest.raises(ConfigError, match="summary_activation.*'gelu_fancy'"):
        type(config).from_dict({**original, "summary_activation": "gelu_fancy"})
    with pytest.raises(ConfigError, match="multiple of num_attention_heads"):
        type(config).from_dict({**original, "hidden_size": 25})
    with pytest.raises(ConfigError, match="is_decoder.*encoder-only"):
        type(config).from_dict({**original, "is_decoder": True})
