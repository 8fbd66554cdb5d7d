"""RoBERTa, XLM-RoBERTa, CamemBERT: every head against `transformers` on tiny random configs,
plus position ids from the padding token, loading/saving and config checks."""
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

# Non-default everywhere: odd head count and intermediate size, epsilon, one token type (as the
# published RoBERTa checkpoints), and max_position_embeddings 12, so that with pad_token_id 1 the
# longest input is 10 = LENGTH: a full row uses the last position row.
TINY = dict(vocab_size=97, hidden_size=20, num_hidden_layers=2, num_attention_heads=5,
            intermediate_size=33, max_position_embeddings=12, type_vocab_size=1, layer_norm_eps=1e-6,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
LENGTH = 10

HF = {
    "roberta": ("RobertaConfig", "Roberta"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRoberta"),
    "camembert": ("CamembertConfig", "Camembert"),
}
HEAD_SUFFIX = {
    "base": "Model",
    "masked-lm": "ForMaskedLM",
    "sequence-classification": "ForSequenceClassification",
    "token-classification": "ForTokenClassification",
    "question-answering": "ForQuestionAnswering",
    "multiple-choice": "ForMultipleChoice",
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def hf_class(model_type, task):
    return getattr(transformers, HF[model_type][1] + HEAD_SUFFIX[task])


def build_reference(model_type, task, tmp_path, seed=0, **overrides):
    config = getattr(transformers, HF[model_type][0])(**{**TINY, **overrides})
    model = parity.build_eager(hf_class(model_type, task), config, seed)
    folder = tmp_path / f"hf-{model_type}-{task}"
    model.save_pretrained(folder)
    return model, folder


def roberta_batch(vocab_size, pad_id, seed=0, batch=3, length=LENGTH):
    """<s> (id 0) first, no pad id among the real tokens, right padding with `pad_id`."""
    batch_ = parity.padded_batch(vocab_size, batch=batch, length=length, seed=seed, pad_id=pad_id)
    ids, mask = batch_["input_ids"], batch_["attention_mask"]
    ids = np.where((ids == pad_id) & (mask == 1), pad_id + 1, ids)
    ids[:, 0] = 0 if pad_id != 0 else 2
    return {"input_ids": ids, "attention_mask": mask}


def task_inputs(task, config_kwargs, seed=0):
    pad_id = config_kwargs.get("pad_token_id", 1)
    batch = roberta_batch(config_kwargs["vocab_size"], pad_id, seed)
    rng = np.random.default_rng(seed + 1)
    if config_kwargs["type_vocab_size"] > 1:
        batch["token_type_ids"] = (rng.integers(0, config_kwargs["type_vocab_size"], size=batch["input_ids"].shape)
                                   * batch["attention_mask"])
    # type_vocab_size 1: token_type_ids left out, so both sides use their default (zeros).
    labels = {}
    n_labels = config_kwargs.get("num_labels", 2)
    shape = batch["input_ids"].shape
    if task == "masked-lm":
        labels["labels"] = np.where(rng.random(shape) < 0.5, batch["input_ids"], -100)
    elif task == "sequence-classification":
        problem = config_kwargs.get("problem_type")
        if n_labels == 1 or problem == "regression":
            labels["labels"] = rng.normal(size=(3, n_labels) if n_labels > 1 else (3,)).astype(np.float32)
        elif problem == "multi_label_classification":
            labels["labels"] = (rng.random((3, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    elif task == "token-classification":
        labels["labels"] = np.where(batch["attention_mask"] == 1, rng.integers(0, n_labels, size=shape), -100)
    elif task == "question-answering":
        labels["start_positions"] = np.array([1, 4, 20])    # 20 > length: ignored, as in transformers
        labels["end_positions"] = np.array([3, 5, 2])
    elif task == "multiple-choice":
        # Each choice shifts the padding so every choice has its own position ids.
        choices = [roberta_batch(config_kwargs["vocab_size"], pad_id, seed + i) for i in range(4)]
        batch = {k: np.stack([c[k] for c in choices], axis=1) for k in ("input_ids", "attention_mask")}
        if config_kwargs["type_vocab_size"] > 1:
            batch["token_type_ids"] = rng.integers(0, config_kwargs["type_vocab_size"], size=(3, 4, LENGTH))
        labels["labels"] = rng.integers(0, 4, size=(3,))
    return batch, labels


CASES = [
    ("roberta", "base", {}),
    # Another padding index shifts every position id (and the longest input stays 14 - 3 - 1).
    ("roberta", "base", {"pad_token_id": 3, "max_position_embeddings": 14, "type_vocab_size": 2,
                         "hidden_act": "gelu_new"}),
    ("roberta", "masked-lm", {}),
    # The LM head's activation is always exact gelu, whatever hidden_act says.
    ("roberta", "masked-lm", {"tie_word_embeddings": False, "hidden_act": "relu", "type_vocab_size": 2}),
    ("roberta", "sequence-classification", {"num_labels": 3}),
    ("roberta", "sequence-classification", {"num_labels": 1}),
    ("roberta", "sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification",
                                            "hidden_act": "silu"}),
    ("roberta", "sequence-classification", {"num_labels": 2, "problem_type": "regression",
                                            "classifier_dropout": 0.3, "type_vocab_size": 2}),
    ("roberta", "token-classification", {"num_labels": 5, "hidden_act": "quick_gelu", "type_vocab_size": 2}),
    ("roberta", "question-answering", {}),
    ("roberta", "multiple-choice", {"hidden_act": "gelu_pytorch_tanh", "type_vocab_size": 2}),
    ("xlm-roberta", "masked-lm", {"pad_token_id": 0, "max_position_embeddings": 11}),
    ("xlm-roberta", "sequence-classification", {"num_labels": 3, "type_vocab_size": 2}),
    ("camembert", "token-classification", {"num_labels": 2, "hidden_act": "gelu_new"}),
    ("camembert", "multiple-choice", {}),
]


@pytest.mark.parametrize("model_type,task,overrides", CASES,
                         ids=[f"{m}-{t}-{i}" for i, (m, t, _) in enumerate(CASES)])
def test_parity_with_transformers(model_type, task, overrides, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == model_type
    assert ours.max_length == LENGTH
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label=f"{model_type} vs transformers")


def test_position_ids_count_from_the_padding_token():
    from core.layers.positions import create_position_ids_from_input_ids
    ids = np.array([[0, 5, 6, 2, 1, 1], [0, 1, 7, 2, 1, 1]])   # a pad inside the second row too
    reference = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids
    for pad in (1, 0, 3):
        np.testing.assert_array_equal(np.asarray(create_position_ids_from_input_ids(ids, pad)),
                                      reference(torch.as_tensor(ids), pad).numpy())
    np.testing.assert_array_equal(np.asarray(create_position_ids_from_input_ids(ids, 1)),
                                  [[2, 3, 4, 5, 1, 1], [2, 1, 3, 4, 1, 1]])


def test_explicit_position_ids_are_used_as_given(tmp_path, record_property):
    reference, folder = build_reference("roberta", "base", tmp_path)
    ours = AutoModel.from_pretrained(folder)
    inputs, _ = task_inputs("base", TINY)
    inputs["position_ids"] = np.broadcast_to(np.arange(LENGTH)[::-1] + 2, (3, LENGTH)).copy()
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(ours(**inputs).last_hidden_state, expected)
    record_property("parity:roberta vs transformers", diff)
    assert diff <= parity.TOL


@pytest.mark.parametrize("model_type,tie", [("roberta", True), ("xlm-roberta", False)])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(model_type, tie, tmp_path):
    reference, folder = build_reference(model_type, "masked-lm", tmp_path, tie_word_embeddings=tie)
    ours = AutoModelForMaskedLM.from_pretrained(folder)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out, max_shard_size="20KB")
    assert (out / "model.safetensors.index.json").exists()

    from safetensors import safe_open
    original = safe_open(str(folder / "model.safetensors"), "np")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(original.keys())
    assert ("lm_head.decoder.weight" in index["weight_map"]) == (not tie)
    for key, shard in index["weight_map"].items():
        with safe_open(str(out / shard), "np") as f:
            np.testing.assert_array_equal(f.get_tensor(key), original.get_tensor(key), err_msg=key)

    reloaded = hf_class(model_type, "masked-lm").from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == [hf_class(model_type, "masked-lm").__name__]
    assert saved["model_type"] == model_type


def test_legacy_checkpoint_extras_are_dropped_and_reported(tmp_path, record_property):
    """Published checkpoints (roberta-base) carry the bare model's pooler, the tied decoder
    copies and the position_ids buffer; heads without them load and list them as dropped."""
    from safetensors.numpy import load_file, save_file
    reference, folder = build_reference("roberta", "masked-lm", tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    rng = np.random.default_rng(0)
    tensors["roberta.pooler.dense.weight"] = rng.normal(size=(20, 20)).astype(np.float32)
    tensors["roberta.pooler.dense.bias"] = rng.normal(size=(20,)).astype(np.float32)
    tensors["lm_head.decoder.weight"] = tensors["roberta.embeddings.word_embeddings.weight"]
    tensors["lm_head.decoder.bias"] = tensors["lm_head.bias"]
    tensors["roberta.embeddings.position_ids"] = np.arange(12, dtype=np.int64)[None]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model = AutoModelForMaskedLM.from_pretrained(folder)
    assert set(model.load_report["dropped"]) == {
        "roberta.pooler.dense.weight", "roberta.pooler.dense.bias", "lm_head.decoder.weight",
        "lm_head.decoder.bias", "roberta.embeddings.position_ids"}
    inputs, _ = task_inputs("masked-lm", TINY)
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs)).logits
    diff = parity.max_abs(model(**inputs).logits, expected)
    record_property("parity:roberta vs transformers", diff)
    assert diff <= parity.TOL
    # The base model (with its pooler) loads the same file, dropping the head.
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.bias" in base.load_report["dropped"]


def test_missing_head_error_and_init_new_head(tmp_path):
    _, base_folder = build_reference("camembert", "base", tmp_path)
    with pytest.raises(KeyMapError, match="(?s)classifier/out_proj/kernel.*init_new_head=True"):
        AutoModelForSequenceClassification.from_pretrained(base_folder)
    model = AutoModelForSequenceClassification.from_pretrained(base_folder, init_new_head=True)
    assert sorted(model.load_report["initialised"]) == [
        "classifier/dense/bias", "classifier/dense/kernel", "classifier/out_proj/bias", "classifier/out_proj/kernel"]
    inputs, _ = task_inputs("base", TINY)
    assert model(**inputs).logits.shape == (3, 2)


def test_inputs_longer_than_the_position_table_allows_are_refused(tmp_path):
    _, folder = build_reference("roberta", "base", tmp_path, pad_token_id=3, max_position_embeddings=14)
    model = AutoModel.from_pretrained(folder)
    assert model.config.max_input_length == 10
    model(input_ids=np.full((1, 10), 5))
    with pytest.raises(ValueError, match="exceeds the model's maximum of 10"):
        model(input_ids=np.full((1, 11), 5))


@pytest.mark.parametrize("model_type", list(HF))
def test_config_round_trip(model_type, tmp_path):
    config = getattr(transformers, HF[model_type][0])(**TINY)
    config.save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    ours = AutoConfig.from_pretrained(tmp_path).from_dict(original)
    assert type(ours).__name__ == HF[model_type][0] and ours.model_type == model_type
    assert ours.to_dict() == original
    assert list(ours.to_dict()) == list(original)
    # Defaults as transformers has them (vocab_size differs between the three).
    reference_defaults = getattr(transformers, HF[model_type][0])()
    fresh = type(ours)()
    for key in ("vocab_size", "type_vocab_size", "pad_token_id", "bos_token_id", "eos_token_id",
                "layer_norm_eps", "max_position_embeddings", "hidden_act", "tie_word_embeddings"):
        assert getattr(fresh, key) == getattr(reference_defaults, key), key
    assert fresh.max_input_length == 510


def test_bad_configs_get_clear_errors(tmp_path):
    config = transformers.RobertaConfig(**TINY)
    config.save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    cls = type(AutoConfig.from_pretrained(tmp_path))
    with pytest.raises(ConfigError, match="'pad_token_id'.*None.*derives position ids"):
        cls.from_dict({**original, "pad_token_id": None})
    with pytest.raises(ConfigError, match="'max_position_embeddings'.*2; expected at least pad_token_id \\+ 2 = 3"):
        cls.from_dict({**original, "max_position_embeddings": 2})
    with pytest.raises(ConfigError, match="multiple of num_attention_heads"):
        cls.from_dict({**original, "hidden_size": 21})
    with pytest.raises(ConfigError, match="'is_decoder'.*encoder-only"):
        cls.from_dict({**original, "is_decoder": True})
    with pytest.raises(ConfigError, match="'model_type' has value 'camembert'"):
        cls.from_dict({**original, "model_type": "camembert"})
