"""LongT5 (`model_type: longt5`, core/models/t5): every head against `transformers` on tiny random
configs where the blocking matters (sequences of several local blocks and global blocks, padded
rows, a trailing incomplete block), both encoder attention types, tied + rescaled and untied LM
heads; the decoder cache; greedy and beam `generate` token-identical to transformers; saving and
config round trips, bad configs. The port tests reach LongT5 through tests/test_t5.py (the
package's adapter)."""
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

# 10 tokens: local blocks of 3 (4 blocks, the last padded), global blocks of 3 (3 of them, the
# 10th token an orphan joining the third).
TINY = dict(vocab_size=53, d_model=20, d_kv=6, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=3,
            local_radius=2, global_block_size=3, relative_attention_num_buckets=12,
            relative_attention_max_distance=20, layer_norm_epsilon=1e-5, dropout_rate=0.0, pad_token_id=0,
            eos_token_id=1, decoder_start_token_id=0)
LENGTH = 10

HEADS = {"base": "LongT5Model", "seq2seq-lm": "LongT5ForConditionalGeneration", "encoder": "LongT5EncoderModel"}
ENCODER_FIELDS = ("last_hidden_state", "hidden_states", "attentions")
SEQ2SEQ = ("decoder_hidden_states", "decoder_attentions", "cross_attentions", "encoder_last_hidden_state",
           "encoder_hidden_states", "encoder_attentions")
OUTPUT_FIELDS = {
    "base": ("last_hidden_state",) + SEQ2SEQ,
    "seq2seq-lm": ("loss", "logits") + SEQ2SEQ,
    "encoder": ENCODER_FIELDS,
}
TG = {"encoder_attention_type": "transient-global"}

# (The tied, rescaled LM head of a local encoder: the cached-decoding test.)
CASES = [
    ("base", {}),
    ("seq2seq-lm", {**TG, "feed_forward_proj": "gated-gelu", "untie": True}),
    ("base", {**TG, "local_radius": 1, "global_block_size": 2, "num_heads": 1}),
    ("encoder", {"local_radius": 4, "feed_forward_proj": "gated-silu"}),
]


def build_reference(task, tmp_path, seed=0, std=0.2, untie=False, **overrides):
    """The reference with every weight ~ N(0, std) (0.2 as T5: unscaled attention). `untie`: a
    separate `lm_head` (v5 writes scale_decoder_outputs=false for it)."""
    if untie:
        overrides["tie_word_embeddings"] = False
    config = transformers.LongT5Config(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, HEADS[task])._from_config(config, attn_implementation="eager").eval()
    if untie:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-longt5-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, seed=0, length=LENGTH, decoder_length=7):
    """Right-padded encoder inputs ending in EOS (rows of 10, 6-9 real tokens), padded decoder
    inputs (base) or labels with -100 (seq2seq-lm)."""
    vocab, eos = config_kwargs["vocab_size"], config_kwargs["eos_token_id"]
    batch = parity.padded_batch(vocab, batch=3, length=length, seed=seed, min_length=6)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ids = np.where(ids == eos, eos + 1, ids)
    ids[np.arange(3), mask.sum(1) - 1] = eos
    inputs = {"input_ids": ids, "attention_mask": mask}
    labels = {}
    if task == "encoder":
        return inputs, labels
    target = parity.padded_batch(vocab, batch=3, length=decoder_length, seed=seed + 2, min_length=3)
    if task == "base":
        inputs["decoder_input_ids"] = target["input_ids"]
        inputs["decoder_attention_mask"] = target["attention_mask"]
    else:
        labels["labels"] = np.where(target["attention_mask"] == 1, target["input_ids"], -100)
    return inputs, labels


def config_of(overrides):
    return {k: v for k, v in {**TINY, **overrides}.items() if k != "untie"}


@pytest.mark.parametrize("task,overrides", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "longt5"
    inputs, labels = task_inputs(task, config_of(overrides))
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="longt5 vs transformers")


def test_unpadded_batch_without_mask(tmp_path, record_property):
    """No attention_mask: transformers assumes every token real; so do we. Global blocks of 16 over
    8 tokens: no global token at all."""
    reference, folder = build_reference("encoder", tmp_path, **TG, global_block_size=16)
    ours = PretrainedModel.from_pretrained(folder, task="encoder")
    ids = np.random.default_rng(4).integers(2, TINY["vocab_size"], size=(2, 8))
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids)).last_hidden_state
    diff = parity.max_abs(ours(input_ids=ids).last_hidden_state, expected)
    record_property("parity:longt5 vs transformers", diff)
    assert diff <= parity.TOL


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    """Encoder once; decoder prefill of 3 positions (filling the cross cache), then single-token
    steps reading it: every real position's logits equal transformers' full forward."""
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
    record_property("parity:longt5 vs transformers", diff)
    assert diff <= parity.TOL


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """Weights ~ N(0, 1), untied head: logits far from ties, so argmax is meaningful."""
    from core import AutoModelForSeq2SeqLM
    reference, folder = build_reference("seq2seq-lm", tmp_path_factory.mktemp("longt5-gen"), seed=1, std=1.0,
                                        untie=True, **TG)
    return reference, AutoModelForSeq2SeqLM.from_pretrained(folder)


GENERATE_CASES = {
    "greedy": dict(max_new_tokens=12, min_new_tokens=12, repetition_penalty=2.5),
    "beam": dict(max_new_tokens=10, min_new_tokens=10, num_beams=3, length_penalty=1.3, early_stopping=True,
                 num_return_sequences=2, repetition_penalty=2.5),
}


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_is_token_identical_to_transformers(generation_pair, name):
    reference, ours = generation_pair
    inputs, _ = task_inputs("encoder", TINY, seed=5)
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
    reference, folder = build_reference("seq2seq-lm", tmp_path, untie=True, **TG)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        assert "lm_head.weight" in saved.keys()
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = transformers.LongT5ForConditionalGeneration.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LongT5ForConditionalGeneration"]


def test_config_round_trip_and_errors(tmp_path):
    _, folder = build_reference("base", tmp_path, num_layers=1, **TG)
    original = json.loads((folder / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    config = AutoConfig.from_pretrained(folder).from_dict(original)
    assert config.model_type == "longt5" and config.encoder_attention_type == "transient-global"
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    cls = type(config)
    with pytest.raises(ConfigError, match="encoder_attention_type"):
        cls.from_dict({**original, "encoder_attention_type": "global"})
    with pytest.raises(ConfigError, match="global_block_size"):
        cls.from_dict({**original, "global_block_size": 0})
    with pytest.raises(ConfigError, match="local_radius"):
        cls.from_dict({**original, "local_radius": -1})
    with pytest.raises(ConfigError, match="feed_forward_proj"):
        cls.from_dict({**original, "feed_forward_proj": "swiglu"})
