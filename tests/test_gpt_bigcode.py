"""GPTBigCode (SantaCoder/StarCoder): every head against `transformers` on tiny random configs
(multi-query and per-head attention, tied and untied, unscaled attention), the KV cache, greedy
and beam-search generation token for token, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForCausalLM
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity
from tests.test_gpt_neox import task_inputs  # noqa: F401  (the same inputs and labels per task)
from tests.test_llama import hf_cached_logits, left_pad, our_cached_logits  # noqa: F401

# Non-default everywhere: 3 heads sharing one key/value head, odd MLP width, epsilon, positions,
# no dropout, token ids.
TINY = dict(vocab_size=61, n_embd=24, n_layer=3, n_head=3, n_inner=37, n_positions=40, layer_norm_epsilon=1e-6,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.GPTBigCodeModel,
    "causal-lm": transformers.GPTBigCodeForCausalLM,
    "sequence-classification": transformers.GPTBigCodeForSequenceClassification,
    "token-classification": transformers.GPTBigCodeForTokenClassification,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2: see test_gpt2)."""
    config = transformers.GPTBigCodeConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HF_CLASSES[task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


CASES = [
    ("base", {}, "right"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"multi_query": False, "tie_word_embeddings": False, "scale_attn_weights": False,
                   "activation_function": "gelu", "attention_softmax_in_fp32": False,
                   "scale_attention_softmax_in_fp32": False}, "left"),
    ("causal-lm", {"n_head": 6, "activation_function": "relu", "n_inner": None}, "left"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, "multi_query": False}, "left"),
    ("token-classification", {"num_labels": 5, "classifier_dropout": 0.2}, "right"),
]


def compare(task, reference, ours, inputs, labels, record_property):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="gpt_bigcode vs transformers")


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property)


def test_token_type_ids_are_embedded_with_the_word_table(tmp_path, record_property):
    reference, folder = build_reference("base", tmp_path, n_layer=2)
    ours = AutoModel.from_pretrained(folder)
    inputs, _ = task_inputs("base", TINY)
    inputs["token_type_ids"] = (np.arange(9)[None, :] % 3) * inputs["attention_mask"]
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs))
    parity.assert_close(parity.compare_outputs(ours(**inputs), expected, ("last_hidden_state",)),
                        record=record_property, label="gpt_bigcode vs transformers")


@pytest.mark.parametrize("multi_query", [True, False])
def test_cached_decoding_matches_transformers(multi_query, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps (left padded): every real token's
    logits equal transformers' own cached decode and its full forward."""
    reference, folder = build_reference("causal-lm", tmp_path, multi_query=multi_query)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, "left")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property("parity:gpt_bigcode vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


GEN_SEED, GEN_STD, GEN_OVERRIDES = 1, 1.0, {}


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """GEN_STD / GEN_SEED: weights large enough that logits are far from ties (1e-6 agreement
    decides no argmax), with continuations that are not stuck repeating a token or two."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=GEN_SEED, std=GEN_STD,
                                        **GEN_OVERRIDES)
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
        reference, folder = build_reference("causal-lm", tmp_path / str(tie), tie_word_embeddings=tie, n_layer=2)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.GPTBigCodeForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["GPTBigCodeForCausalLM"]


def test_legacy_mask_buffers_are_dropped_and_base_loads_from_the_lm(tmp_path, record_property):
    from safetensors.numpy import load_file, save_file
    reference, folder = build_reference("causal-lm", tmp_path, n_layer=2)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["transformer.bias"] = np.tril(np.ones((40, 40), np.float32))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    base = AutoModel.from_pretrained(folder)
    assert "bias" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:gpt_bigcode vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, n_layer=1)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = [1, 2]
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert original["scale_attention_softmax_in_fp32"] is True and original["num_key_value_heads"] == 1
    assert (config.hidden_size, config.kv_heads, config.head_dim, config.max_position_embeddings) == (24, 1, 8, 40)
    flipped = {**original, "scale_attention_softmax_in_fp32": False, "attention_softmax_in_fp32": False}
    assert type(config).from_dict(flipped).to_dict() == flipped
    built = AutoConfig.for_model("gpt_bigcode", n_embd=16, n_head=2)
    assert "n_embd" in built.to_dict() and "hidden_size" not in built.to_dict()
    with pytest.raises(ConfigError, match="'n_embd'.*multiple of n_head"):
        type(config).from_dict({**original, "n_embd": 25})
    with pytest.raises(ConfigError, match="add_cross_attention"):
        type(config).from_dict({**original, "add_cross_attention": True})
    with pytest.raises(ConfigError, match="activation_function"):
        type(config).from_dict({**original, "activation_function": "gelu_fancy"})
    model = AutoModel.from_pretrained(folder)
    with pytest.raises(ValueError, match="exceeds the model's maximum of 40"):
        model(input_ids=np.ones((1, 41), np.int64))
