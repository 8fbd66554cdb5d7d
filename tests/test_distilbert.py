"""DistilBERT: every head against `transformers` on tiny random configs, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForMaskedLM
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.distilbert.config import DistilBertConfig
from tests import parity

# Non-default everywhere: odd head count, odd FFN width, positions; DistilBERT spells them its way.
TINY = dict(vocab_size=101, dim=24, n_layers=3, n_heads=3, hidden_dim=37, max_position_embeddings=40,
            dropout=0.0, attention_dropout=0.0, qa_dropout=0.0, seq_classif_dropout=0.0)

HF_CLASSES = {
    "base": transformers.DistilBertModel,
    "masked-lm": transformers.DistilBertForMaskedLM,
    "sequence-classification": transformers.DistilBertForSequenceClassification,
    "token-classification": transformers.DistilBertForTokenClassification,
    "question-answering": transformers.DistilBertForQuestionAnswering,
    "multiple-choice": transformers.DistilBertForMultipleChoice,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.DistilBertConfig(**{**TINY, **overrides})
    model = parity.build_eager(HF_CLASSES[task], config, seed)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0):
    batch = parity.padded_batch(config_kwargs["vocab_size"], batch=3, length=9, seed=seed)
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
    ("base", {"activation": "gelu_new", "sinusoidal_pos_embds": True}),
    ("masked-lm", {}),
    ("masked-lm", {"tie_word_embeddings": False, "activation": "relu"}),
    ("masked-lm", {"sinusoidal_pos_embds": True, "activation": "gelu_pytorch_tanh"}),
    ("sequence-classification", {"num_labels": 3}),
    ("sequence-classification", {"num_labels": 1}),
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                                 "activation": "silu"}),
    ("sequence-classification", {"num_labels": 2, "problem_type": "regression", "seq_classif_dropout": 0.3}),
    ("token-classification", {"num_labels": 5, "activation": "quick_gelu"}),
    ("question-answering", {"qa_dropout": 0.4}),
    ("multiple-choice", {"activation": "gelu_pytorch_tanh"}),
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
    assert len(got.hidden_states) == TINY["n_layers"] + 1 and len(got.attentions) == TINY["n_layers"]
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label="distilbert vs transformers")


def test_sinusoidal_position_table_is_the_checkpoint_weight(tmp_path):
    """With sinusoidal_pos_embds, transformers initialises the table to sin/cos and saves it as
    `embeddings.position_embeddings.weight`; we read it from there (no randomizing here)."""
    config = transformers.DistilBertConfig(**{**TINY, "sinusoidal_pos_embds": True})
    torch.manual_seed(0)
    reference = transformers.DistilBertModel._from_config(config, attn_implementation="eager").eval()
    reference.save_pretrained(tmp_path)
    ours = AutoModel.from_pretrained(tmp_path)
    table = np.asarray(ours.params["embeddings"]["position_embeddings"]["embedding"])
    pos = np.arange(TINY["max_position_embeddings"])[:, None]
    j = np.arange(TINY["dim"])[None, :]
    angles = pos / np.power(10000, 2 * (j // 2) / TINY["dim"])
    expected = np.where(j % 2 == 0, np.sin(angles), np.cos(angles))
    np.testing.assert_allclose(table, expected, atol=1e-6)
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        want = reference(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(ours(**inputs).last_hidden_state, want) <= parity.TOL


@pytest.mark.parametrize("tie", [True, False])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path, tie):
    reference, folder = build_reference("masked-lm", tmp_path, tie_word_embeddings=tie)
    ours = AutoModelForMaskedLM.from_pretrained(folder)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out, max_shard_size="20KB")
    assert (out / "model.safetensors.index.json").exists()

    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(original.keys())
    assert ("vocab_projector.weight" in index["weight_map"]) == (not tie)
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = transformers.DistilBertForMaskedLM.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["DistilBertForMaskedLM"]
    assert saved["dim"] == 24 and "hidden_size" not in saved


def test_base_model_loads_from_a_task_checkpoint(tmp_path):
    reference, mlm_folder = build_reference("masked-lm", tmp_path)
    base = AutoModel.from_pretrained(mlm_folder)
    assert "vocab_projector.bias" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.distilbert(**parity.to_torch(inputs)).last_hidden_state
    assert parity.max_abs(base(**inputs).last_hidden_state, expected) <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, sinusoidal_pos_embds=True, activation="gelu_new")
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert isinstance(config, DistilBertConfig)
    assert config.to_dict() == original
    assert list(config.to_dict()) == list(original)
    assert (config.dim, config.hidden_size, config.n_layers, config.num_hidden_layers) == (24, 24, 3, 3)
    # transformers' BERT-style aliases are accepted on input; code-built configs write DistilBERT's spelling.
    assert DistilBertConfig.from_dict({"hidden_size": 32, "n_heads": 4}).dim == 32
    written = DistilBertConfig(dim=32, n_heads=4).to_dict()
    assert written["dim"] == 32 and "hidden_size" not in written
    with pytest.raises(ConfigError, match="'dim'.*'24'.*expected int"):
        DistilBertConfig.from_dict({**original, "dim": "24"})
    with pytest.raises(ConfigError, match="'activation'.*'gelu_fancy'"):
        DistilBertConfig.from_dict({**original, "activation": "gelu_fancy"})
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        DistilBertConfig.from_dict({**original, "dim": 25})
    with pytest.raises(ConfigError, match="'seq_classif_dropout'.*probability"):
        DistilBertConfig.from_dict({**original, "seq_classif_dropout": 1.5})
