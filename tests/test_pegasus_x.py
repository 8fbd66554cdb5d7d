"""PEGASUS-X (`model_type: pegasus_x`): both heads against `transformers` on tiny random configs
where the blocks matter (10 tokens in blocks of 4: a padded last block, padded rows; staggered
and plain blocks; odd global token counts), the decoder cache, greedy and beam `generate`
token-identical to transformers, saving and config round trips, bad configs; the port adapter."""
import json

import jax
import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity

TINY = dict(vocab_size=53, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=4, encoder_ffn_dim=27, decoder_ffn_dim=23, num_global_tokens=3, block_size=4,
            max_position_embeddings=64, dropout=0.0, activation_function="gelu", pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0, forced_eos_token_id=None)
LENGTH = 10

HEADS = {"base": "PegasusXModel", "seq2seq-lm": "PegasusXForConditionalGeneration"}
# Encoder attentions: transformers returns per-layer dicts (local and global weights), not reported
# here; its last encoder hidden state is a (tokens, global tokens) pair (compared on its own).
SEQ2SEQ = ("decoder_hidden_states", "decoder_attentions", "cross_attentions", "encoder_last_hidden_state")
OUTPUT_FIELDS = {"base": ("last_hidden_state",) + SEQ2SEQ, "seq2seq-lm": ("loss", "logits") + SEQ2SEQ}

CASES = [
    ("seq2seq-lm", {}),
    ("base", {"stagger_local_blocks": False, "num_global_tokens": 1, "activation_function": "relu"}),
    ("seq2seq-lm", {"block_size": 2, "encoder_layers": 3, "scale_embedding": False}),
]


def build_reference(task, tmp_path, seed=0, std=0.3, **overrides):
    config = transformers.PegasusXConfig(**{**TINY, **overrides})
    model = parity.build_eager(getattr(transformers, HEADS[task]), config, seed) if std == 0.3 else None
    if model is None:
        torch.manual_seed(seed)
        model = getattr(transformers, HEADS[task])._from_config(config, attn_implementation="eager").eval()
        parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-pegasus_x-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0, length=LENGTH, decoder_length=7):
    vocab, eos = config_kwargs["vocab_size"], config_kwargs["eos_token_id"]
    batch = parity.padded_batch(vocab, batch=3, length=length, seed=seed, min_length=3)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ids = np.where(ids == eos, eos + 1, ids)
    ids[np.arange(3), mask.sum(1) - 1] = eos
    inputs = {"input_ids": ids, "attention_mask": mask}
    target = parity.padded_batch(vocab, batch=3, length=decoder_length, seed=seed + 2, min_length=3)
    labels = {}
    if task == "base":
        inputs["decoder_input_ids"] = target["input_ids"]
        inputs["decoder_attention_mask"] = target["attention_mask"]
    else:
        labels["labels"] = np.where(target["attention_mask"] == 1, target["input_ids"], -100)
    return inputs, labels


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "pegasus_x"
    inputs, labels = task_inputs(task, {**TINY, **overrides})
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    comparison = parity.compare_outputs(got, expected, OUTPUT_FIELDS[task])
    theirs = expected.encoder_hidden_states
    assert len(got.encoder_hidden_states) == len(theirs)
    for i, (a, b) in enumerate(zip(got.encoder_hidden_states, theirs)):
        comparison.diffs[f"encoder_hidden_states[{i}]"] = parity.max_abs(a, b[0] if isinstance(b, tuple) else b)
    parity.assert_close(comparison, record=record_property, label="pegasus_x vs transformers")


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    reference, folder = build_reference("seq2seq-lm", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    inputs, _ = task_inputs("seq2seq-lm", TINY)
    target = parity.padded_batch(TINY["vocab_size"], batch=3, length=7, seed=2, min_length=3)
    dec_ids, dec_mask = target["input_ids"], target["attention_mask"]
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, "decoder_input_ids": dec_ids,
                                                "decoder_attention_mask": dec_mask})).logits.numpy()
    module, variables = ours.module, {"params": ours.params}
    apply = jax.jit(module.apply, static_argnames=("method", "fill_cross_cache"))
    encoded = apply(variables, inputs["input_ids"], inputs["attention_mask"], method="encode")
    cache = module.init_cache(3, 7, inputs["input_ids"].shape[1])
    out = apply(variables, dec_ids[:, :3], encoded.last_hidden_state, inputs["attention_mask"], dec_mask,
                cache, 0, fill_cross_cache=True, method="decode")
    steps = [np.asarray(out.logits)]
    for t in range(3, 7):
        out = apply(variables, dec_ids[:, t:t + 1], None, inputs["attention_mask"], dec_mask, out.cache, t,
                    fill_cross_cache=False, method="decode")
        steps.append(np.asarray(out.logits))
    cached = np.concatenate(steps, axis=1)
    real = dec_mask == 1
    diff = float(np.abs(cached[real] - expected[real]).max())
    record_property("parity:pegasus_x vs transformers", diff)
    assert diff <= parity.TOL


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """Weights ~ N(0, 0.5): logits far from ties (at 1.0 the tied head locks onto one token)."""
    from core import AutoModelForSeq2SeqLM
    reference, folder = build_reference("seq2seq-lm", tmp_path_factory.mktemp("pegasus_x-gen"), seed=1, std=0.5)
    return reference, AutoModelForSeq2SeqLM.from_pretrained(folder)


GENERATE_CASES = {
    "greedy": dict(max_new_tokens=12, min_new_tokens=12, repetition_penalty=2.5),
    "beam": dict(max_new_tokens=10, min_new_tokens=10, num_beams=3, length_penalty=1.3, early_stopping=True,
                 num_return_sequences=2, repetition_penalty=2.5),
}


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_is_token_identical_to_transformers(generation_pair, name):
    reference, ours = generation_pair
    inputs, _ = task_inputs("seq2seq-lm", TINY, seed=5)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        expected = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                      **GENERATE_CASES[name]).numpy()
    got = ours.generate(ids, attention_mask=mask, do_sample=False, **GENERATE_CASES[name])
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    assert len(set(got.ravel().tolist())) > 3, got


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    from safetensors import safe_open
    reference, folder = build_reference("seq2seq-lm", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = transformers.PegasusXForConditionalGeneration.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, encoder_layers=1)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.model_type == "pegasus_x"
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    cls = type(config)
    with pytest.raises(ConfigError, match="block_size"):
        cls.from_dict({**original, "block_size": 3})
    with pytest.raises(ConfigError, match="encoder_attention_heads"):
        cls.from_dict({**original, "encoder_attention_heads": 3})
    with pytest.raises(ConfigError, match="tie_word_embeddings"):
        cls.from_dict({**original, "tie_word_embeddings": False})
