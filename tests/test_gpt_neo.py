"""GPT-Neo: every head against `transformers` on tiny random configs (global and local layers with
a window shorter than the sequence, unscaled attention), the KV cache, greedy and beam-search
generation token for token, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForCausalLM
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity
from tests.test_llama import hf_cached_logits, left_pad, our_cached_logits

# Non-default everywhere: global, local, local layers with a 3-slot window (length is 9), odd
# head count and MLP width, epsilon, positions, token ids.
TINY = dict(vocab_size=61, hidden_size=24, num_layers=3, num_heads=3, intermediate_size=37,
            attention_types=[[["global", "local"], 1], [["local"], 1]], window_size=3, max_position_embeddings=40,
            layer_norm_epsilon=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.GPTNeoModel,
    "causal-lm": transformers.GPTNeoForCausalLM,
    "sequence-classification": transformers.GPTNeoForSequenceClassification,
    "token-classification": transformers.GPTNeoForTokenClassification,
    "question-answering": transformers.GPTNeoForQuestionAnswering,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2 as for LLaMA/GPT-2: pre-norm residual
    streams at 0.3 grow to where float32 itself is 1e-5 off)."""
    config = transformers.GPTNeoConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HF_CLASSES[task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, padding="right", seed=0, length=9):
    batch = parity.padded_batch(config_kwargs["vocab_size"], batch=3, length=length, seed=seed)
    if padding == "left":
        batch = left_pad(batch)
    rng = np.random.default_rng(seed + 1)
    labels = {}
    n_labels = config_kwargs.get("num_labels", 2)
    if task == "causal-lm":
        labels["labels"] = np.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
    elif task == "sequence-classification":
        if n_labels == 1:
            labels["labels"] = rng.normal(size=(3,)).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    elif task == "token-classification":
        labels["labels"] = np.where(batch["attention_mask"] == 1, rng.integers(0, n_labels, size=(3, length)), -100)
    elif task == "question-answering":
        labels["start_positions"] = rng.integers(0, length, size=(3,))
        labels["end_positions"] = rng.integers(0, length, size=(3,))
    return batch, labels


CASES = [
    ("base", {}, "right"),
    ("base", {"attention_types": [[["local"], 3]], "window_size": 1, "activation_function": "gelu"}, "left"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"tie_word_embeddings": False, "window_size": 5, "activation_function": "relu",
                   "attention_types": [[["local", "global", "global"], 1]]}, "left"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1}, "left"),
    ("token-classification", {"num_labels": 4, "classifier_dropout": 0.3}, "right"),
    ("question-answering", {}, "left"),
]


def compare(task, reference, ours, inputs, labels, record_property):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="gpt_neo vs transformers")


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property)


@pytest.mark.parametrize("padding", ["right", "left"])
def test_cached_decoding_matches_transformers(padding, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps (the local window slides over the
    cache): equal to transformers' own cached decode and to its full forward on every real token
    (fully masked rows average over whatever keys exist: not compared)."""
    reference, folder = build_reference("causal-lm", tmp_path)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, padding)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property("parity:gpt_neo vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A model whose logits are far from ties (weights ~ N(0, 0.5)), so argmax is meaningful;
    its 3-slot local window keeps sliding for all 40 positions."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=1, std=0.5,
                                        max_position_embeddings=64)
    return reference, AutoModelForCausalLM.from_pretrained(folder)


def generation_prompts(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, TINY["vocab_size"], size=(3, 6))
    mask = np.ones_like(ids)
    mask[0, :3] = 0
    mask[2, :1] = 0
    return np.where(mask == 1, ids, TINY["pad_token_id"]), mask


GENERATE_CASES = [
    dict(max_new_tokens=34, repetition_penalty=1.2),
    dict(max_new_tokens=33, num_beams=4, length_penalty=1.3, early_stopping=True),
]


@pytest.mark.parametrize("kwargs", GENERATE_CASES, ids=["greedy", "beam"])
def test_generate_is_token_identical_to_transformers(generation_pair, kwargs):
    reference, ours = generation_pair
    ids, mask = generation_prompts()
    with torch.no_grad():
        expected = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                      **kwargs).numpy()
    got = ours.generate(ids, attention_mask=mask, do_sample=False, **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert got.shape[1] - ids.shape[1] >= 32
    assert all(len(set(row[6:].tolist())) > 4 for row in got)


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    from safetensors import safe_open
    for tie in (True, False):
        reference, folder = build_reference("causal-lm", tmp_path / str(tie), tie_word_embeddings=tie)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.GPTNeoForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["GPTNeoForCausalLM"]


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("causal-lm", tmp_path, tie_word_embeddings=False)
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY, "left")
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:gpt_neo vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert config.attention_layers == ("global", "local", "local") == tuple(original["attention_layers"])
    assert (config.num_hidden_layers, config.num_attention_heads, config.head_dim) == (3, 3, 8)
    cls = type(config)
    with pytest.raises(ConfigError, match="attention_types.*3 layer types"):
        cls.from_dict({**original, "attention_types": [[["global", "local"], 2]]})
    with pytest.raises(ConfigError, match="attention_types"):
        cls.from_dict({**original, "attention_types": [[["sparse"], 3]]})
    with pytest.raises(ConfigError, match="hidden_size.*multiple of num_heads"):
        cls.from_dict({**original, "num_heads": 5})
    # Generic spellings are accepted on the way in and written back in GPT-Neo's own.
    generic = cls.from_dict({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 8,
                             "attention_types": [[["global", "local"], 1]]})
    assert (generic.num_layers, generic.num_heads) == (2, 4)
    assert list(generic.to_dict())[:2] == ["num_hidden_layers", "num_attention_heads"]   # as the source
    built = cls(num_layers=2, num_heads=4, hidden_size=8, attention_types=[[["global", "local"], 1]])
    assert {"num_layers", "num_heads"} <= set(built.to_dict()) and "num_hidden_layers" not in built.to_dict()
