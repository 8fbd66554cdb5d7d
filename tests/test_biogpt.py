"""BioGPT: every head against `transformers` on tiny random configs (learned positions with
offset 2, scaled or unscaled embeddings, tied and untied, the token classifier's masked loss),
the KV cache, greedy and beam-search generation token for token, plus loading/saving."""
import json

import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig, AutoModel, AutoModelForCausalLM
from core.configuration import ConfigError
from core.generation.model import CausalLMModel
from core.modeling import PretrainedModel
from tests import parity

# Non-default everywhere: odd head count and FFN width, positions, token ids, an epsilon that
# transformers ignores (BioGPT's LayerNorms use torch's default 1e-5).
TINY = dict(vocab_size=61, hidden_size=24, intermediate_size=37, num_hidden_layers=3, num_attention_heads=3,
            max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            activation_dropout=0.0, layer_norm_eps=1e-7, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.BioGptModel,
    "causal-lm": transformers.BioGptForCausalLM,
    "sequence-classification": transformers.BioGptForSequenceClassification,
    "token-classification": transformers.BioGptForTokenClassification,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
}


def build_reference(task, tmp_path, seed=0, std=0.2, **overrides):
    """The reference with every weight ~ N(0, std). 0.2, not parity.py's 0.3: pre-norm decoders
    add every block to an unnormalised residual stream (see test_gpt2)."""
    config = transformers.BioGptConfig(**{**TINY, **overrides})
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
    elif task == "token-classification":
        labels["labels"] = rng.integers(0, n_labels, size=batch["input_ids"].shape)
    return batch, labels


CASES = [
    ("base", {}, "right"),
    ("base", {"hidden_act": "relu", "num_attention_heads": 6, "scale_embedding": False}, "left"),
    ("causal-lm", {}, "right"),
    ("causal-lm", {"tie_word_embeddings": False, "hidden_act": "gelu_new", "num_attention_heads": 4}, "left"),
    ("sequence-classification", {"num_labels": 3}, "right"),
    ("sequence-classification", {"num_labels": 1, "hidden_act": "silu"}, "left"),
    ("token-classification", {"num_labels": 5}, "right"),
    ("token-classification", {"num_labels": 2, "classifier_dropout": 0.3}, "left"),
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
    parity.assert_close(comparison, record=record_property, label="biogpt vs transformers")


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    """Prefill 5 positions into the static cache, then 4 single-token steps: the logits of every
    real token equal transformers' full forward. (Fully masked rows — left padding attending
    to nothing — average over whatever keys exist, which differ by construction: not compared.)"""
    reference, folder = build_reference("causal-lm", tmp_path)
    ours = AutoModelForCausalLM.from_pretrained(folder)
    assert isinstance(ours, CausalLMModel)
    for padding in ("right", "left"):
        inputs, _ = task_inputs("causal-lm", TINY, padding)
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        with torch.no_grad():
            expected = reference(**parity.to_torch(inputs)).logits.numpy()
        prefill = 5
        out = ours(input_ids=ids[:, :prefill], attention_mask=mask, cache=ours.init_cache(3, 9), cache_index=0)
        steps = [np.asarray(out.logits)]
        for t in range(prefill, 9):
            out = ours(input_ids=ids[:, t:t + 1], attention_mask=mask, cache=out.cache, cache_index=t)
            steps.append(np.asarray(out.logits))
        cached = np.concatenate(steps, axis=1)
        real = mask == 1
        diff = float(np.abs(cached[real] - expected[real]).max())
        record_property("parity:biogpt vs transformers", diff)
        assert diff <= parity.TOL, f"{padding} padding: cached logits differ by {diff:.3g}"


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A model whose greedy continuations are far from ties and not degenerate: a random tiny
    decoder falls into 1-2 token loops at any weight std (the next token is mostly a function of
    the current one); zero biases and an untied head scaled x10 (logit gaps far above float
    error) give varied text."""
    reference, folder = build_reference("causal-lm", tmp_path_factory.mktemp("gen"), seed=2, std=0.3,
                                        max_position_embeddings=64, tie_word_embeddings=False,
                                        hidden_act="relu")
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if name.endswith("bias"):
                param.zero_()
        reference.output_projection.weight.mul_(10.0)
    reference.save_pretrained(folder)
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
def test_generate_is_token_identical_to_transformers(generation_pair, kwargs):
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
        reference, folder = build_reference("causal-lm", tmp_path / str(tie),
                                            tie_word_embeddings=tie)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("output_projection.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.BioGptForCausalLM.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["BioGptForCausalLM"]


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("causal-lm", tmp_path, tie_word_embeddings=False)
    base = AutoModel.from_pretrained(folder)
    assert "output_projection.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.biogpt(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:biogpt vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = [1, 2]
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.head_dim, config.classifier_dropout) == (8, 0.0)
    cls = type(config)
    with pytest.raises(ConfigError, match="'hidden_size'.*multiple of num_attention_heads"):
        cls.from_dict({**original, "hidden_size": 25})
    with pytest.raises(ConfigError, match="'layerdrop'.*LayerDrop"):
        cls.from_dict({**original, "layerdrop": 0.1})
    with pytest.raises(ConfigError, match="hidden_act"):
        cls.from_dict({**original, "hidden_act": "swiglu"})
