"""GPT-J and CodeGen (GPT-J's modules with a fused, group-permuted `qkv_proj`): every head against
`transformers` on tiny random configs (partial interleaved rotary, parallel attention + MLP,
tied and untied biased LM heads), the KV cache, greedy and beam-search generation token for
token, plus loading/saving."""
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

# Non-default everywhere: 4 of each head's 8 channels rotated, odd head count and MLP width,
# epsilon, positions, token ids. CodeGen: 24 channels in 4 groups of 6, so heads straddle groups.
TINY = dict(vocab_size=61, n_embd=24, n_layer=3, n_head=3, rotary_dim=4, n_inner=37, n_positions=40,
            layer_norm_epsilon=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "gptj": {
        "base": transformers.GPTJModel,
        "causal-lm": transformers.GPTJForCausalLM,
        "sequence-classification": transformers.GPTJForSequenceClassification,
        "question-answering": transformers.GPTJForQuestionAnswering,
    },
    "codegen": {
        "base": transformers.CodeGenModel,
        "causal-lm": transformers.CodeGenForCausalLM,
    },
}
HF_CONFIGS = {"gptj": transformers.GPTJConfig, "codegen": transformers.CodeGenConfig}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
    "question-answering": ("loss", "start_logits", "end_logits", "hidden_states", "attentions"),
}


def build_reference(model_type, task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std) (0.2 as for LLaMA/GPT-2: residual streams at
    0.3 grow to where float32 itself is 1e-5 off)."""
    config = HF_CONFIGS[model_type](**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HF_CLASSES[model_type][task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{model_type}-{task}"
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
    elif task == "question-answering":
        labels["start_positions"] = rng.integers(0, length, size=(3,))
        labels["end_positions"] = rng.integers(0, length, size=(3,))
    return batch, labels


CASES = [
    ("gptj", "base", {}, "right"),
    ("gptj", "causal-lm", {}, "right"),
    ("gptj", "causal-lm", {"tie_word_embeddings": True, "rotary_dim": 8, "activation_function": "gelu"}, "left"),
    ("gptj", "sequence-classification", {"num_labels": 3}, "right"),
    ("gptj", "sequence-classification", {"num_labels": 1, "rotary_dim": 2}, "left"),
    ("gptj", "question-answering", {}, "left"),
    ("codegen", "base", {"n_head": 4, "rotary_dim": 6}, "left"),
    ("codegen", "causal-lm", {}, "right"),
    ("codegen", "causal-lm", {"tie_word_embeddings": True, "n_embd": 32, "n_head": 2, "activation_function": "relu"},
     "left"),
]


def compare(task, reference, ours, inputs, labels, record_property, label):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label=f"{label} vs transformers")


@pytest.mark.parametrize("model_type,task,overrides,padding", CASES,
                         ids=[f"{m}-{t}-{i}" for i, (m, t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(model_type, task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == model_type
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    compare(task, reference, ours, inputs, labels, record_property, model_type)


@pytest.mark.parametrize("model_type", ["gptj", "codegen"])
def test_cached_decoding_matches_transformers(model_type, tmp_path, record_property):
    """Prefill 5 positions, then 4 cached single-token steps, left padded: equal to transformers'
    own cached decode and to its full forward on every real token (fully masked rows average
    over whatever keys exist: not compared)."""
    reference, folder = build_reference(model_type, "causal-lm", tmp_path)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    inputs, _ = task_inputs("causal-lm", TINY, "left")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cached = our_cached_logits(ours, ids, mask, prefill=5)
    expected = hf_cached_logits(reference, ids, mask, prefill=5)
    with torch.no_grad():
        full = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diffs = [float(np.abs(cached[real] - expected[real]).max()), float(np.abs(cached[real] - full[real]).max())]
    record_property(f"parity:{model_type} vs transformers", max(diffs))
    assert max(diffs) <= parity.TOL, diffs


# Seeds whose greedy and beam continuations are not degenerate (> 4 distinct tokens per row).
GENERATION_SEEDS = {"gptj": 2, "codegen": 4}


@pytest.fixture(scope="module", params=list(GENERATION_SEEDS))
def generation_pair(request, tmp_path_factory):
    """A model whose logits are far from ties (weights ~ N(0, 0.5)), so argmax is meaningful."""
    reference, folder = build_reference(request.param, "causal-lm", tmp_path_factory.mktemp("gen"),
                                        seed=GENERATION_SEEDS[request.param], std=0.5, n_positions=64)
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


@pytest.mark.parametrize("model_type", ["gptj", "codegen"])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(model_type, tmp_path):
    from safetensors import safe_open
    for tie in (True, False):
        reference, folder = build_reference(model_type, "causal-lm", tmp_path / str(tie), tie_word_embeddings=tie,
                                            n_layer=2)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == (not tie) and "lm_head.bias" in saved.keys()
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = type(reference).from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == [type(reference).__name__]


def test_codegen_qkv_layout_is_unpermuted_to_plain_q_k_v(tmp_path):
    """The fused kernel holds [q | k | v] columns in GPT-J's head-major order: q is group-major
    rows 0..5 of each group's first third in transformers' weight."""
    reference, folder = build_reference("codegen", "base", tmp_path, n_layer=1)
    ours = AutoModel.from_pretrained(folder)
    kernel = np.asarray(ours.params["h"]["block"]["attn"]["qkv_proj"]["kernel"][0])
    weight = reference.h[0].attn.qkv_proj.weight.detach().numpy()         # (72, 24): 4 groups of (q, v, k) x 6
    groups = weight.reshape(4, 3, 6, 24)
    for column, slot in ((0, 0), (24, 2), (48, 1)):                          # q, k, v
        np.testing.assert_array_equal(kernel[:, column:column + 24].T, groups[:, slot].reshape(24, 24))


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("gptj", "causal-lm", tmp_path, n_layer=2)
    base = AutoModel.from_pretrained(folder)
    assert {"lm_head.weight", "lm_head.bias"} <= set(base.load_report["dropped"])
    inputs, _ = task_inputs("base", TINY, "left")
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:gptj vs transformers", diff)
    assert diff <= parity.TOL


@pytest.mark.parametrize("model_type", ["gptj", "codegen"])
def test_config_round_trip_and_errors(model_type, tmp_path):
    _, folder = build_reference(model_type, "base", tmp_path, n_layer=1)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.model_type == model_type and config.fused_qkv == (model_type == "codegen")
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.hidden_size, config.num_attention_heads, config.head_dim) == (24, 3, 8)
    cls = type(config)
    with pytest.raises(ConfigError, match="rotary_dim"):
        cls.from_dict({**original, "rotary_dim": 10})
    with pytest.raises(ConfigError, match="rotary_dim"):
        cls.from_dict({**original, "rotary_dim": None})
    with pytest.raises(ConfigError, match="n_embd.*multiple of n_head"):
        cls.from_dict({**original, "n_head": 5})
    if model_type == "codegen":
        with pytest.raises(ConfigError, match="n_embd.*multiple of 4"):
            cls.from_dict({**original, "n_embd": 18, "n_head": 1, "rotary_dim": 4})
