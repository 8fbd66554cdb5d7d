"""GPT-NeoX: every head against `transformers` on tiny random configs (partial rotary, parallel
and sequential residual, biases on/off, tied and untied, rope scaling), the KV cache, greedy and
beam-search generation token for token, plus loading/saving."""
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

# Non-default everywhere: 3 heads of 8 channels, half of them rotated (rotary_dim 4), odd MLP
# width, tanh gelu, epsilon, rope base, token ids.
TINY = dict(vocab_size=61, hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=37,
            hidden_act="gelu_new", layer_norm_eps=1e-6, max_position_embeddings=40, bos_token_id=1,
            eos_token_id=2, pad_token_id=0,
            rope_parameters={"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5})

HF_CLASSES = {
    "base": transformers.GPTNeoXModel,
    "causal-lm": transformers.GPTNeoXForCausalLM,
    "sequence-classification": transformers.GPTNeoXForSequenceClassification,
    "token-classification": transformers.GPTNeoXForTokenClassification,
    "question-answering": transformers.GPTNeoXForQuestionAnswering,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2: see test_llama; pre-norm residual
    streams grow past where float32 itself is 1e-5 off at 0.3)."""
    config = transformers.GPTNeoXConfig(**{**TINY, **overrides})
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
        # The last row's end lies beyond the sequence: clamped and ignored, as in transformers.
        labels["start_positions"] = np.array([1, 0, 3])
        labels["end_positions"] = np.array([4, 2, length + 3])
    return batch, labels


CASES = [
    ("base", {}, "right"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"use_parallel_residual": False, "tie_word_embeddings": True, "attention_bias": False,
                   "hidden_act": "relu",
                   "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}},
     "left"),
    ("causal-lm", {"rope_parameters": {"rope_type": "linear", "factor": 2.5, "rope_theta": 300.0,
                                       "partial_rotary_factor": 0.25}}, "left"),
    # max_position_embeddings 6 < length 9: the dynamic (NTK) base grows with the sequence.
    ("causal-lm", {"max_position_embeddings": 6,
                   "rope_parameters": {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 10000.0,
                                       "partial_rotary_factor": 0.75}}, "right"),
    ("causal-lm", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 10,
                                       "beta_fast": 8.0, "rope_theta": 500.0, "partial_rotary_factor": 0.5}}, "right"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, "use_parallel_residual": False}, "left"),
    ("token-classification", {"num_labels": 5}, "right"),
    ("question-answering", {"attention_bias": False}, "right"),
]


def compare(task, reference, ours, inputs, labels, record_property):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="gpt_neox vs transformers")


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property)


@pytest.mark.parametrize("parallel", [True, False])
def test_cached_decoding_matches_transformers(parallel, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps (left padded): every real token's
    logits equal transformers' own cached decode and its full forward."""
    reference, folder = build_reference("causal-lm", tmp_path, use_parallel_residual=parallel)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, "left")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property("parity:gpt_neox vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A model whose logits are far from ties (weights ~ N(0, 0.8)), so argmax is meaningful (and,
    with this seed, not stuck repeating a token or two)."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=3, std=0.8)
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
        reference, folder = build_reference("causal-lm", tmp_path / str(tie), tie_word_embeddings=tie,
                                            num_hidden_layers=2)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("embed_out.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.GPTNeoXForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["GPTNeoXForCausalLM"]


def test_legacy_buffers_and_lm_head_spelling_load(tmp_path, record_property):
    """Pythia-era files carry mask/rotary buffers; a writer may spell the head `lm_head`."""
    from safetensors.numpy import load_file, save_file
    reference, folder = build_reference("causal-lm", tmp_path, num_hidden_layers=2)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["lm_head.weight"] = tensors.pop("embed_out.weight")
    tensors["gpt_neox.layers.0.attention.bias"] = np.tril(np.ones((1, 1, 40, 40), np.float32))
    tensors["gpt_neox.layers.0.attention.masked_bias"] = np.array(-1e9, np.float32)
    tensors["gpt_neox.layers.1.attention.rotary_emb.inv_freq"] = np.ones(2, np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, labels = task_inputs("causal-lm", TINY)
    compare("causal-lm", reference, ours, inputs, labels, record_property)
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.weight" in base.load_report["dropped"]
    with torch.no_grad():
        expected = reference.gpt_neox(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:gpt_neox vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_legacy_keys_and_errors(tmp_path, record_property):
    _, folder = build_reference("base", tmp_path, num_hidden_layers=1)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.head_dim, config.rotary_dim) == (8, 4)
    cls = type(config)
    # config.json as older transformers wrote it (Pythia): rotary_pct / rotary_emb_base.
    legacy = {k: v for k, v in original.items() if k not in ("rope_parameters", "some_future_key")}
    legacy.update(rotary_pct=0.75, rotary_emb_base=700)
    reference = transformers.GPTNeoXConfig(**legacy)
    ours = cls.from_dict(legacy)
    assert ours.to_dict() == legacy
    assert {k: ours.rope[k] for k in reference.rope_parameters} == reference.rope_parameters
    assert ours.rotary_dim == 6
    with pytest.raises(ConfigError, match="hidden_size.*multiple"):
        cls.from_dict({**original, "hidden_size": 25})
    with pytest.raises(ConfigError, match="even rotary dimension"):
        cls.from_dict({**original, "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.375}})
    with pytest.raises(ConfigError, match="longrope"):
        cls.from_dict({**original, "rope_parameters": {"rope_type": "longrope", "factor": 2.0}})
    with pytest.raises(ConfigError, match="hidden_act"):
        cls.from_dict({**original, "hidden_act": "swiglu"})
