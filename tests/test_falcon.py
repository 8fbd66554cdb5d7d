"""Falcon: every head against `transformers` on tiny random configs — each variant of the fused
projection and block (multi-query, per-head qkv, the new architecture's grouped heads with one or
two LayerNorms, sequential blocks), rotary (with scaling) and ALiBi, biases, tied and untied —
the KV cache, greedy and beam-search generation token for token, plus loading/saving.

ALiBi: transformers' eager attention adds the ALiBi bias twice (once in the scores, once more
through the mask it builds from the bias), and so does any call with output_attentions=True;
its SDPA path adds it once, as the original Falcon code did. Rosetta follows the SDPA path, so
ALiBi references are built with attn_implementation="sdpa" and compared without attentions."""
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

# Non-default everywhere: 6 heads of 4 channels (multi-query by default), odd MLP width,
# epsilon, rope base, positions, token ids.
TINY = dict(vocab_size=61, hidden_size=24, num_hidden_layers=3, num_attention_heads=6, ffn_hidden_size=37,
            layer_norm_epsilon=1e-6, max_position_embeddings=40, bos_token_id=1, eos_token_id=2, pad_token_id=0,
            rope_parameters={"rope_type": "default", "rope_theta": 500.0})

HF_CLASSES = {
    "base": transformers.FalconModel,
    "causal-lm": transformers.FalconForCausalLM,
    "sequence-classification": transformers.FalconForSequenceClassification,
    "token-classification": transformers.FalconForTokenClassification,
    "question-answering": transformers.FalconForQuestionAnswering,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2: see test_llama). ALiBi variants use the
    SDPA attention (see the module docstring)."""
    config = transformers.FalconConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    attention = "sdpa" if config.alibi else "eager"
    model = HF_CLASSES[task]._from_config(config, attn_implementation=attention).eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


NEW_GQA = {"new_decoder_architecture": True, "num_kv_heads": 2, "bias": True}
ALIBI = {"alibi": True, "multi_query": False, "bias": True}

CASES = [
    ("base", {}, "right"),
    ("causal-lm", NEW_GQA, "right"),
    ("causal-lm", {"multi_query": False, "parallel_attn": False, "tie_word_embeddings": False,
                   "activation": "relu"}, "left"),
    ("causal-lm", {"new_decoder_architecture": True, "num_kv_heads": 3, "num_ln_in_parallel_attn": 1}, "left"),
    ("causal-lm", {"new_decoder_architecture": True, "num_kv_heads": 1, "tie_word_embeddings": False}, "right"),
    ("causal-lm", {"parallel_attn": False, "bias": True,
                   "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 300.0}}, "right"),
    ("causal-lm", {"max_position_embeddings": 6,
                   "rope_parameters": {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 10000.0}}, "left"),
    ("causal-lm", ALIBI, "left"),
    # 16 heads: slopes 2^(-i/2), which bfloat16 rounds (and slope * position with them).
    ("causal-lm", {"alibi": True, "hidden_size": 32, "num_attention_heads": 16, "parallel_attn": False}, "right"),
    ("causal-lm", {"alibi": True, "new_decoder_architecture": True, "num_kv_heads": 2}, "left"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, **NEW_GQA}, "left"),
    ("token-classification", {"num_labels": 5, "classifier_dropout": 0.2, "multi_query": False}, "right"),
    ("question-answering", {"parallel_attn": False}, "left"),
]


def compare(task, reference, ours, inputs, labels, record_property):
    alibi = reference.config.alibi
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=not alibi)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=not alibi)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    fields = tuple(f for f in fields if not (alibi and f == "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="falcon vs transformers")


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property)


def test_alibi_attentions_follow_the_single_bias_of_the_sdpa_path(tmp_path):
    """Our attention weights are the softmax that produced our (matching) outputs: recompute
    layer 0's from transformers' own q and k with the bias added once."""
    reference, folder = build_reference("causal-lm", tmp_path, **ALIBI, num_hidden_layers=1)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY)
    got = np.asarray(ours(**inputs, output_attentions=True).attentions[0])
    attention = reference.transformer.h[0].self_attention
    ids, mask = parity.to_torch(inputs)["input_ids"], parity.to_torch(inputs)["attention_mask"]
    with torch.no_grad():
        hidden = reference.transformer.h[0].input_layernorm(reference.transformer.word_embeddings(ids))
        q, k, _ = attention._split_heads(attention.query_key_value(hidden))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
        from transformers.models.falcon.modeling_falcon import build_alibi_tensor
        alibi = build_alibi_tensor(mask, 6, torch.float32).view(3, 6, 1, -1)
        logits = (scores + alibi) / 2.0
        allowed = torch.tril(torch.ones(9, 9, dtype=torch.bool))[None, None] & mask.bool()[:, None, None, :]
        logits = logits.masked_fill(~allowed, torch.finfo(torch.float32).min)
        expected = torch.softmax(logits, dim=-1).numpy()
    assert parity.max_abs(got, expected) <= parity.TOL


@pytest.mark.parametrize("variant", ["multi-query", "new-gqa", "alibi"])
def test_cached_decoding_matches_transformers(variant, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps (left padded): every real token's
    logits equal transformers' own cached decode and its full forward."""
    overrides = {"multi-query": {}, "new-gqa": NEW_GQA, "alibi": ALIBI}[variant]
    reference, folder = build_reference("causal-lm", tmp_path, **overrides)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, "left")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property("parity:falcon vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """An untied model whose greedy and beam continuations are not stuck in a loop of a token or
    two (weights ~ N(0, 0.3); larger weights make the residual stream dominate, and every row repeats itself). Logits stay far from ties for 1e-6 agreement."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=3, std=0.3,
                                        tie_word_embeddings=False, **NEW_GQA)
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
                                            num_hidden_layers=2, **NEW_GQA)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.FalconForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["FalconForCausalLM"]


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("causal-lm", tmp_path, num_hidden_layers=2, tie_word_embeddings=False)
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:falcon vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_legacy_keys_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, num_hidden_layers=1, **NEW_GQA)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.kv_heads, config.head_dim, config.ffn_size, config.two_layernorms) == (2, 4, 37, True)
    cls = type(config)
    # Older files: n_embed, top-level rope_theta, no num_kv_heads / ffn_hidden_size (derived).
    legacy = {k: v for k, v in original.items()
              if k not in ("hidden_size", "rope_parameters", "num_kv_heads", "ffn_hidden_size",
                           "num_ln_in_parallel_attn", "some_future_key")}
    legacy.update(n_embed=24, rope_theta=700.0, new_decoder_architecture=False, multi_query=True)
    ours = cls.from_dict(legacy)
    assert ours.to_dict() == legacy
    reference = transformers.FalconConfig(**legacy)
    assert (ours.hidden_size, ours.kv_heads, ours.ffn_size) == (reference.hidden_size, 1, reference.ffn_hidden_size)
    assert ours.rope == reference.rope_parameters
    with pytest.raises(ConfigError, match="num_kv_heads.*divisor"):
        cls.from_dict({**original, "num_kv_heads": 4})
    with pytest.raises(ConfigError, match="parallel_attn"):
        cls.from_dict({**original, "parallel_attn": False})
    with pytest.raises(ConfigError, match="num_ln_in_parallel_attn"):
        cls.from_dict({**original, "new_decoder_architecture": False, "num_ln_in_parallel_attn": 2})
    with pytest.raises(ConfigError, match="partial_rotary_factor"):
        cls.from_dict({**original, "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}})
    with pytest.raises(ConfigError, match="activation"):
        cls.from_dict({**original, "activation": "swiglu"})
