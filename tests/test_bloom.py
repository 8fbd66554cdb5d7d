"""BLOOM: every head against `transformers` on tiny random configs (ALiBi with power-of-2 and
other head counts, residuals from the normed inputs or not, tied and untied), the KV cache,
greedy and beam-search generation token for token, plus loading/saving."""
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

# Non-default everywhere: 6 heads (not a power of 2: BLOOM's interleaved extra slopes), head_dim 4,
# epsilon, token ids.
TINY = dict(vocab_size=61, hidden_size=24, n_layer=3, n_head=6, layer_norm_epsilon=1e-6, bos_token_id=1,
            eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.BloomModel,
    "causal-lm": transformers.BloomForCausalLM,
    "sequence-classification": transformers.BloomForSequenceClassification,
    "token-classification": transformers.BloomForTokenClassification,
    "question-answering": transformers.BloomForQuestionAnswering,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2: see test_llama)."""
    config = transformers.BloomConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HF_CLASSES[task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


CASES = [
    ("base", {}, "right"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"apply_residual_connection_post_layernorm": True, "tie_word_embeddings": False}, "left"),
    ("causal-lm", {"n_head": 8, "layer_norm_epsilon": 1e-5}, "left"),
    ("causal-lm", {"n_head": 3, "n_layer": 2}, "right"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, "apply_residual_connection_post_layernorm": True}, "left"),
    ("token-classification", {"num_labels": 5, "classifier_dropout": 0.2}, "right"),
    ("question-answering", {}, "left"),
]


def compare(task, reference, ours, inputs, labels, record_property):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label="bloom vs transformers")


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property)


@pytest.mark.parametrize("post_ln", [False, True])
def test_cached_decoding_matches_transformers(post_ln, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps (left padded): every real token's
    logits equal transformers' own cached decode and its full forward (ALiBi positions counted
    over the cache's slots)."""
    reference, folder = build_reference("causal-lm", tmp_path, apply_residual_connection_post_layernorm=post_ln)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, "left")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property("parity:bloom vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


def test_without_attention_mask_positions_are_plain(tmp_path, record_property):
    """No mask: transformers' ALiBi uses arange(kv_length); so do we (and the cached path)."""
    reference, folder = build_reference("causal-lm", tmp_path, n_layer=2)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    ids = task_inputs("causal-lm", TINY)[0]["input_ids"]
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids)).logits.numpy()
    diff = parity.max_abs(ours(input_ids=ids).logits, expected)
    record_property("parity:bloom vs transformers", diff)
    assert diff <= parity.TOL


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """An untied model whose greedy and beam continuations are not stuck in a loop of a token or
    two (weights ~ N(0, 0.3); larger weights make ALiBi's recency and the residual stream
    dominate, and every row repeats itself). Logits stay far from ties for 1e-6 agreement."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=3, std=0.3,
                                        tie_word_embeddings=False)
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
        reloaded = transformers.BloomForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["BloomForCausalLM"]


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("causal-lm", tmp_path, n_layer=2, tie_word_embeddings=False)
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:bloom vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_legacy_keys_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, n_layer=1)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.num_hidden_layers, config.num_attention_heads, config.head_dim) == (1, 6, 4)
    cls = type(config)
    # bigscience/bloom-560m's spelling: n_embed, num_attention_heads, and keys transformers ignores.
    legacy = {k: v for k, v in original.items() if k not in ("hidden_size", "n_head", "some_future_key")}
    legacy.update(n_embed=24, num_attention_heads=6, offset_alibi=100, skip_bias_add=True, n_inner=None)
    ours = cls.from_dict(legacy)
    assert ours.to_dict() == legacy and (ours.hidden_size, ours.n_head) == (24, 6)
    reference = transformers.BloomConfig(**legacy)
    assert (reference.hidden_size, reference.n_head) == (24, 6)
    built = AutoConfig.for_model("bloom", hidden_size=16, n_head=2)
    assert {"hidden_size", "n_head"} <= set(built.to_dict()) and "n_embed" not in built.to_dict()
    with pytest.raises(ConfigError, match="hidden_size.*multiple of n_head"):
        cls.from_dict({**original, "hidden_size": 25})
    with pytest.raises(ConfigError, match="slow_but_exact.*drops their biases"):
        cls.from_dict({**original, "slow_but_exact": True, "pretraining_tp": 2})
    with pytest.raises(ConfigError, match="classifier_dropout"):
        cls.from_dict({**original, "classifier_dropout": 1.5})
