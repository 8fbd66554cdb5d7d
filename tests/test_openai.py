"""OpenAI GPT: every head against `transformers` on tiny random configs (post-norm blocks, its
own activation table, its -1e4 causal mask), our KV cache (which `transformers` lacks) against
the full forward, greedy and beam-search generation token for token, plus loading/saving."""
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

# Non-default everywhere: odd head count, epsilon, positions, token ids.
TINY = dict(vocab_size=61, n_embd=24, n_layer=3, n_head=3, n_positions=40, layer_norm_epsilon=1e-6,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)

HF_CLASSES = {
    "base": transformers.OpenAIGPTModel,
    "causal-lm": transformers.OpenAIGPTLMHeadModel,
    "sequence-classification": transformers.OpenAIGPTForSequenceClassification,
}
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "hidden_states", "attentions"),
}


def build_reference(model_type, task, tmp_path, seed=0, std=0.3, **overrides):
    """`model_type` is "openai-gpt" (the port tests pass it: the package is `openai`). The reference with every weight ~ N(0, std) (parity.py's 0.3: blocks are post-norm, so
    the residual stream is renormalised after every block and stays O(1))."""
    config = transformers.OpenAIGPTConfig(**{**TINY, **overrides})
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
    ("openai-gpt", "base", {}, "right"),
    # Left padding: queries that see only padding attend to later real tokens (the -1e4 mask).
    ("openai-gpt", "base", {"afn": "relu", "n_head": 4, "n_embd": 20}, "left"),
    ("openai-gpt", "causal-lm", {}, "right"),
    ("openai-gpt", "causal-lm", {"tie_word_embeddings": False, "afn": "silu", "layer_norm_epsilon": 1e-3}, "left"),
    ("openai-gpt", "sequence-classification", {"num_labels": 3}, "right"),
    ("openai-gpt", "sequence-classification", {"num_labels": 1, "afn": "swish"}, "left"),
    ("openai-gpt", "sequence-classification", {"num_labels": 4, "problem_type": "multi_label_classification"},
     "right"),
]


@pytest.mark.parametrize("model_type,task,overrides,padding", CASES,
                         ids=[f"{t}-{i}" for i, (_, t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(model_type, task, overrides, padding, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    inputs, labels = task_inputs(task, {**TINY, **overrides}, padding)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    fields = OUTPUT_FIELDS.get(task, ("loss", "logits", "hidden_states", "attentions"))
    comparison = parity.compare_outputs(got, expected, fields)
    parity.assert_close(comparison, record=record_property, label="openai-gpt vs transformers")


def test_token_type_ids_are_embedded_with_the_token_table(tmp_path, record_property):
    reference, folder = build_reference("openai-gpt", "base", tmp_path)
    ours = AutoModel.from_pretrained(folder)
    inputs, _ = task_inputs("base", TINY)
    inputs["token_type_ids"] = (np.arange(9)[None, :] % 3) * inputs["attention_mask"]
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs))
    comparison = parity.compare_outputs(ours(**inputs), expected, ("last_hidden_state",))
    parity.assert_close(comparison, record=record_property, label="openai-gpt vs transformers")


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    """`transformers` has no cache for OpenAI GPT: prefill 5 positions into ours, then 4
    single-token steps; the logits of every real token equal transformers' full forward.
    (Queries that see only left padding average over the values the cache holds, which differ
    by construction: not compared.)"""
    reference, folder = build_reference("openai-gpt", "causal-lm", tmp_path)
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
        record_property("parity:openai-gpt vs transformers", diff)
        assert diff <= parity.TOL, f"{padding} padding: cached logits differ by {diff:.3g}"


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A model whose greedy continuations are far from ties and not degenerate. A random
    post-norm OpenAI GPT falls into 1-2 token loops at any weight std (each block ends in a
    LayerNorm, so the next token is mostly a function of the current one); zero biases, stronger
    positions and an untied head scaled x10 (logit gaps far above float error) give varied text."""
    folder = tmp_path_factory.mktemp("gen")
    reference, folder = build_reference("openai-gpt", "causal-lm", folder, seed=2, std=0.3, n_positions=64,
                                        tie_word_embeddings=False, afn="relu")
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if name.endswith("bias"):
                param.zero_()
        reference.lm_head.weight.mul_(10.0)
        reference.transformer.positions_embed.weight.mul_(2.0)
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
    """Left-padded prompts; transformers re-runs the whole sequence every step (no cache), we
    decode incrementally with ours."""
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
        reference, folder = build_reference("openai-gpt", "causal-lm", tmp_path / str(tie),
                                            tie_word_embeddings=tie)
        ours = AutoModelForCausalLM.from_pretrained(folder)
        out = tmp_path / f"rosetta-{tie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == (not tie)
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.OpenAIGPTLMHeadModel.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert json.loads((out / "config.json").read_text())["architectures"] == ["OpenAIGPTLMHeadModel"]


def test_base_model_loads_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("openai-gpt", "causal-lm", tmp_path, tie_word_embeddings=False)
    base = AutoModel.from_pretrained(folder)
    assert "lm_head.weight" in base.load_report["dropped"]
    inputs, _ = task_inputs("base", TINY)
    with torch.no_grad():
        expected = reference.transformer(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(base(**inputs).last_hidden_state, expected)
    record_property("parity:openai-gpt vs transformers", diff)
    assert diff <= parity.TOL


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("openai-gpt", "base", tmp_path)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = [1, 2]
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert (config.hidden_size, config.num_hidden_layers, config.max_position_embeddings) == (24, 3, 40)
    assert config.activation == "gelu_new"      # OpenAI GPT's "gelu" is the tanh approximation
    built = AutoConfig.for_model("openai-gpt", n_embd=16, n_head=2)
    assert "n_embd" in built.to_dict() and "hidden_size" not in built.to_dict()
    with pytest.raises(ConfigError, match="'n_embd'.*multiple of n_head"):
        type(config).from_dict({**original, "n_embd": 25})
    with pytest.raises(ConfigError, match="'afn'.*own activation table"):
        type(config).from_dict({**original, "afn": "gelu_new"})
