"""GPT-2: every head against `transformers` on tiny random configs (with and without the KV
cache), greedy and beam-search generation token for token, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForCausalLM
from core.checkpoint.keymap import KeyMapError
from core.configuration import ConfigError
from core.generation.model import CausalLMModel
from core.modeling import PretrainedModel
from tests import parity

# Non-default everywhere: odd head count and MLP width, epsilon, positions, token ids.
TINY = dict(vocab_size=61, n_embd=24, n_layer=3, n_head=3, n_inner=37, n_positions=40, layer_norm_epsilon=1e-6,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.GPT2Model,
    "causal-lm": transformers.GPT2LMHeadModel,
    "sequence-classification": transformers.GPT2ForSequenceClassification,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std). 0.2, not parity.py's 0.3: pre-norm decoders
    add every block to an unnormalised residual stream, which at 0.3 grows to ~13 by the second
    block, where float32 itself is 1e-5 off (torch float32 vs torch float64: 1.3e-5)."""
    config = transformers.GPT2Config(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HF_CLASSES[task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{task}"
    model.save_pretrained(folder)
    return model, folder


def left_pad(batch):
    """Move each row's padding to the left (what generation uses)."""
    ids, mask = batch["input_ids"].copy(), batch["attention_mask"].copy()
    for row in range(len(ids)):
        shift = int(len(mask[row]) - mask[row].sum())
        ids[row], mask[row] = np.roll(ids[row], shift), np.roll(mask[row], shift)
    return {"input_ids": ids, "attention_mask": mask}


def task_inputs(task, config_kwargs, padding="right", seed=0):
    batch = parity.padded_batch(config_kwargs["vocab_size"], batch=3, length=9, seed=seed)
    if padding == "left":
        batch = left_pad(batch)
    rng = np.random.default_rng(seed + 1)
    labels = {}
    n_labels = config_kwargs.get("num_labels", 2)
    if task == "causal-lm":
        labels["labels"] = np.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
    elif task == "sequence-classification":
        problem = config_kwargs.get("problem_type")
        if n_labels == 1 or problem == "regression":
            labels["labels"] = rng.normal(size=(3, n_labels) if n_labels > 1 else (3,)).astype(np.float32)
        elif problem == "multi_label_classification":
            labels["labels"] = (rng.random((3, n_labels)) < 0.5).astype(np.float32)
        else:
            labels["labels"] = rng.integers(0, n_labels, size=(3,))
    return batch, labels


CASES = [
    ("base", {}, "right"),
    ("base", {"activation_function": "gelu", "scale_attn_weights": False}, "left"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"tie_word_embeddings": False, "scale_attn_by_inverse_layer_idx": True,
                   "reorder_and_upcast_attn": True, "activation_function": "relu"}, "left"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, "activation_function": "gelu_pytorch_tanh"}, "left"),
    ("sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification"}, "right"),
]


@pytest.mark.parametrize("task,overrides,padding", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label="gpt2 vs transformers")


def test_token_type_ids_are_embedded_with_the_word_table(tmp_path, record_property):
    reference, folder = build_reference("base", tmp_path)
    ours = AutoModel.from_pretrained(folder)
    inputs, _ = task_inputs("base", TINY)
    inputs["token_type_ids"] = (np.arange(9)[None, :] % 3) * inputs["attention_mask"]
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs))
    comparison = parity.compare_outputs(ours(**inputs), expected, ("last_hidden_state",))
    parity.assert_close(comparison, record=record_property, label="gpt2 vs transformers")


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    """Prefill 5 positions into the static cache, then 4 single-token steps: the logits of every
    real token equal transformers' full forward. (Fully masked rows — left padding attending
    to nothing — average over whatever keys exist, which differ by construction: not compared.)"""
    reference, folder = build_reference("causal-lm", tmp_path, scale_attn_by_inverse_layer_idx=True)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    assert isinstance(ours, CausalLMModel)
    for padding in ("right", "left"):
        inputs, _ = task_inputs("causal-lm", TINY, padding)
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        with torch.no_grad():
            expected = reference(**parity.to_torch(inputs)).logits.numpy()
        prefill = 5
        cache = ours.init_cache(3, 9)
        out = ours(input_ids=ids[:, :prefill], attention_mask=mask, cache=cache, cache_index=0)
        steps = [np.asarray(out.logits)]
        for t in range(prefill, 9):
            out = ours(input_ids=ids[:, t:t + 1], attention_mask=mask, cache=out.cache, cache_index=t)
            steps.append(np.asarray(out.logits))
        cached = np.concatenate(steps, axis=1)
        real = mask == 1
        diff = float(np.abs(cached[real] - expected[real]).max())
        record_property("parity:gpt2 vs transformers", diff)
        assert diff <= parity.TOL, f"{padding} padding: cached logits differ by {diff:.3g}"


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A model whose logits are far from ties (weights ~ N(0, 1)), so argmax is meaningful."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=5, std=1.0,
                                        n_positions=64)
    return reference, AutoModelForCausalLM.from_pretrained(folder)


def generation_prompts(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, TINY["vocab_size"], size=(3, 6))
    mask = np.ones_like(ids)
    mask[1, :2] = 0
    mask[2, :4] = 0
    return np.where(mask == 1, ids, TINY["pad_token_id"]), mask


GENERATE_CASES = [
    dict(max_new_tokens=40),
    dict(max_new_tokens=36, num_beams=3, num_return_sequences=2, length_penalty=0.8),
]


@pytest.mark.parametrize("kwargs", GENERATE_CASES, ids=["greedy", "beam"])
def test_generate_is_token_identical_to_transformers(generation_pair, kwargs, record_property):
    reference, ours = generation_pair
    ids, mask = generation_prompts()
    with torch.no_grad():
        expected = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                      **kwargs).numpy()
    got = ours.generate(ids, attention_mask=mask, do_sample=False, **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # Not a degenerate run: several distinct tokens per row, and at least 32 new ones.
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
        reloaded = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
        assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2


def test_legacy_mask_buffers_are_dropped_and_base_loads_from_the_lm(tmp_path, record_property):
    reference, folder = build_reference("causal-lm", tmp_path)
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 40, 40), np.float32))
    tensors["transformer.h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    base = AutoModel.from_pretrained(folder)
    assert {"h.0.attn.bias", "h.0.attn.masked_bias"} <= set(base.load_report["dropped"])
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:gpt2 vs transformers", diff)
    assert diff <= parity.TOL


def test_sequence_classification_without_pad_token_needs_batch_one(tmp_path):
    _, folder = build_reference("sequence-classification", tmp_path, pad_token_id=None)
    model = PretrainedModel.from_pretrained(folder, task="sequence-classification")
    with pytest.raises(ValueError, match="no padding token is defined"):
        model(input_ids=np.ones((2, 4), np.int64))
    assert model(input_ids=np.ones((1, 4), np.int64)).logits.shape == (1, 2)


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = [1, 2]
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.hidden_size, config.num_hidden_layers, config.max_position_embeddings) == (24, 3, 40)
    built = AutoConfig.for_model("gpt2", n_embd=16, n_head=2)
    assert "n_embd" in built.to_dict() and "hidden_size" not in built.to_dict()
    with pytest.raises(ConfigError, match="'n_embd'.*multiple of n_head"):
        type(config).from_dict({**original, "n_embd": 25})
    with pytest.raises(ConfigError, match="activation_function"):
        type(config).from_dict({**original, "activation_function": "gelu_fancy"})
    with pytest.raises(ConfigError, match="add_cross_attention"):
        type(config).from_dict({**original, "add_cross_attention": True})


def test_prompts_longer_than_the_position_table_are_refused(generation_pair):
    _, ours = generation_pair
    with pytest.raises(ValueError, match="exceeds the model's maximum of 64"):
        ours(input_ids=np.ones((1, 65), np.int64))
    with pytest.raises(ValueError, match="exceeds the model's maximum of 64 positions"):
        ours.generate(np.ones((1, 10), np.int64), max_new_tokens=60)


def test_mismatched_config_is_reported_before_loading(tmp_path):
    _, folder = build_reference("causal-lm", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["n_inner"] = 40
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KeyMapError, match="nothing was loaded"):
        AutoModelForCausalLM.from_pretrained(folder)
