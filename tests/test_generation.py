"""The generation engine: logits processors against `transformers`' own, EOS / length / beam
options token for token against `transformers.generate`, left padding, reproducible sampling,
generation configs, and the one-jit structure (no recompiles for new values, params as
arguments)."""
import json

import jax
import numpy as np
import pytest
import torch
import transformers
from transformers.generation import logits_process as hf

from core import AutoModelForCausalLM
from core.generation import GenerationConfig, processors, search
from tests import parity

TINY = dict(vocab_size=61, n_embd=24, n_layer=3, n_head=3, n_inner=37, n_positions=64, layer_norm_epsilon=1e-6,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """GPT-2 with weights ~ N(0, 1): logits far from ties, outputs not degenerate; with eos
    ids 13 / 51 its greedy and beam runs finish rows at different steps."""
    config = transformers.GPT2Config(**TINY)
    torch.manual_seed(5)
    reference = parity.randomize_(
        transformers.GPT2LMHeadModel._from_config(config, attn_implementation="eager").eval(), 5, std=1.0)
    folder = tmp_path_factory.mktemp("gen") / "gpt2"
    reference.save_pretrained(folder)
    return reference, AutoModelForCausalLM.from_pretrained(folder), folder


def prompts():
    rng = np.random.default_rng(0)
    ids = rng.integers(3, TINY["vocab_size"], size=(3, 6))
    mask = np.ones_like(ids)
    mask[1, :2] = 0
    mask[2, :4] = 0
    return np.where(mask == 1, ids, TINY["pad_token_id"]), mask


def reference_generate(reference, ids, mask, **kwargs):
    with torch.no_grad():
        return reference.generate(torch.tensor(ids), attention_mask=None if mask is None else torch.tensor(mask),
                                  do_sample=False, **kwargs).numpy()


# -- processors, one by one against transformers' -------------------------------------------------

def random_scores(rows=4, vocab=23, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, vocab)).astype(np.float32) * 3


def test_processors_match_transformers():
    scores = random_scores()
    t_scores = torch.tensor(scores)
    seqs = np.random.default_rng(1).integers(0, 23, size=(4, 7))
    ignore = np.array([0, 2, 0, 5])
    cur_len = 7
    expected = hf.RepetitionPenaltyLogitsProcessor(1.7, prompt_ignore_length=torch.tensor(ignore))(
        torch.tensor(seqs), t_scores.clone()).numpy()
    padded = np.concatenate([seqs, np.full((4, 3), 9)], axis=1)   # the static buffer's unused tail
    got = processors.repetition_penalty(scores, padded, cur_len, ignore, 1.7)
    np.testing.assert_array_equal(np.asarray(got), expected)

    for length, min_len in ((7, 9), (9, 9)):
        expected = hf.MinLengthLogitsProcessor(min_len, [3, 5])(torch.zeros((4, length), dtype=torch.long),
                                                               t_scores.clone()).numpy()
        np.testing.assert_array_equal(np.asarray(processors.min_length(scores, length, min_len, (3, 5))), expected)

    np.testing.assert_array_equal(np.asarray(processors.temperature(scores, 0.7)),
                                  hf.TemperatureLogitsWarper(0.7)(None, t_scores.clone()).numpy())
    for keep in (1, 3):
        for k in (1, 4, 30):
            np.testing.assert_array_equal(
                np.asarray(processors.top_k(scores, k, keep)),
                hf.TopKLogitsWarper(k, min_tokens_to_keep=keep)(None, t_scores.clone()).numpy())
        for p in (0.05, 0.5, 0.9):
            np.testing.assert_array_equal(
                np.asarray(processors.top_p(scores, p, keep)),
                hf.TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, t_scores.clone()).numpy())
        for p in (0.01, 0.2, 1.0):
            np.testing.assert_array_equal(
                np.asarray(processors.min_p(scores, p, keep)),
                hf.MinPLogitsWarper(p, min_tokens_to_keep=keep)(None, t_scores.clone()).numpy())


# -- EOS, lengths and beams against transformers.generate -----------------------------------------

EOS_CASES = {
    "greedy-eos-list": dict(max_new_tokens=40, eos_token_id=[13, 51]),
    "greedy-min-new-tokens": dict(max_new_tokens=40, eos_token_id=[13, 51], min_new_tokens=8),
    "beam-eos-list": dict(max_new_tokens=30, eos_token_id=[13, 51], num_beams=3),
    "beam-never-length-penalty": dict(max_new_tokens=30, eos_token_id=[13, 51], num_beams=3,
                                      early_stopping="never", length_penalty=2.0),
    "beam-early-stopping-return-3": dict(max_new_tokens=30, eos_token_id=51, num_beams=4, early_stopping=True,
                                         num_return_sequences=3, length_penalty=-0.5),
}


@pytest.mark.parametrize("name", list(EOS_CASES))
def test_eos_lengths_and_beams_are_token_identical_to_transformers(pair, name):
    reference, ours, _ = pair
    ids, mask = prompts()
    kwargs = EOS_CASES[name]
    expected = reference_generate(reference, ids, mask, **kwargs)
    got = ours.generate(ids, attention_mask=mask, do_sample=False, **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    if name.startswith("greedy"):
        # Rows stop at different steps; finished rows are padded with pad_token_id.
        new = got[:, 6:]
        eos_at = [int(np.flatnonzero(np.isin(row, [13, 51]))[0]) if np.isin(row, [13, 51]).any() else None
                  for row in new]
        assert len(set(eos_at)) > 1
        for row, at in zip(new, eos_at):
            if at is not None:
                assert (row[at + 1:] == TINY["pad_token_id"]).all()


def test_default_max_length_counts_new_tokens_like_transformers(pair):
    reference, ours, _ = pair
    ids, mask = prompts()
    expected = reference_generate(reference, ids, mask)          # max_length default: 20 new tokens
    got = ours.generate(ids, attention_mask=mask)
    assert got.shape == expected.shape == (3, 26)
    np.testing.assert_array_equal(got, expected)


def test_missing_mask_is_inferred_from_pad_tokens_and_pad_defaults_to_eos(pair):
    reference, ours, folder = pair
    ids, mask = prompts()
    with_mask = ours.generate(ids, attention_mask=mask, max_new_tokens=40, eos_token_id=[13, 51])
    np.testing.assert_array_equal(ours.generate(ids, max_new_tokens=40, eos_token_id=[13, 51]), with_mask)
    # No pad id anywhere: pad falls back to the first eos id (transformers does the same).
    ours_no_pad = AutoModelForCausalLM.from_pretrained(folder)
    ours_no_pad.generation_config.pad_token_id = None
    got = ours_no_pad.generate(ids, attention_mask=mask, max_new_tokens=40, eos_token_id=[51, 13])
    expected = reference_generate(reference, ids, mask, max_new_tokens=40, eos_token_id=[51, 13], pad_token_id=51)
    np.testing.assert_array_equal(got, expected)


# -- left padding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(max_new_tokens=40), dict(max_new_tokens=32, num_beams=3,
                                                                   num_return_sequences=2)],
                         ids=["greedy", "beam"])
def test_left_padded_batch_gives_each_prompt_its_own_tokens(pair, kwargs):
    _, ours, _ = pair
    ids, mask = prompts()
    batch = ours.generate(ids, attention_mask=mask, **kwargs)
    per_row = kwargs.get("num_return_sequences", 1)
    row = 2                                         # 2 real tokens after 4 pads
    alone = ours.generate(ids[row:row + 1, mask[row] == 1], **kwargs)
    got = batch[row * per_row:(row + 1) * per_row, 4:]
    np.testing.assert_array_equal(got[:, :alone.shape[1]], alone)
    # Anything after the row's own end is padding (the batch ran longer for another row).
    assert (got[:, alone.shape[1]:] == TINY["pad_token_id"]).all()


# -- sampling ---------------------------------------------------------------------------------------

SAMPLING = dict(do_sample=True, max_new_tokens=40, top_k=20, num_return_sequences=2)


def test_sampling_is_reproducible_with_a_seed_and_differs_with_another(pair):
    _, ours, _ = pair
    ids, mask = prompts()
    knobs = dict(temperature=1.5, top_p=0.95, min_p=0.01)
    a = ours.generate(ids, attention_mask=mask, seed=0, **SAMPLING, **knobs)
    b = ours.generate(ids, attention_mask=mask, seed=0, **SAMPLING, **knobs)
    c = ours.generate(ids, attention_mask=mask, seed=1, **SAMPLING, **knobs)
    d = ours.generate(ids, attention_mask=mask, prng_key=jax.random.key(0), **SAMPLING, **knobs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, d)
    assert (a != c).any()
    assert a.shape[0] == 6 and (a[0::2] != a[1::2]).any()       # two different samples per prompt
    greedy = ours.generate(ids, attention_mask=mask, max_new_tokens=40)
    assert (a[0::2, :greedy.shape[1]] != greedy).any()
    # top_p so small that only the most likely token survives: sampling is greedy decoding.
    only_top = ours.generate(ids, attention_mask=mask, seed=3, **SAMPLING, **{**knobs, "top_p": 1e-6})
    np.testing.assert_array_equal(only_top[0::2], greedy)
    np.testing.assert_array_equal(only_top[1::2], greedy)


def test_beam_sampling_is_reproducible(pair):
    """do_sample with num_beams: candidates drawn without replacement ∝ softmax (Gumbel top-k),
    as transformers' torch.multinomial draws them; same seed, same beams."""
    _, ours, _ = pair
    ids, mask = prompts()
    options = dict(do_sample=True, num_beams=2, max_new_tokens=12, top_k=10, temperature=1.3)
    a = ours.generate(ids, attention_mask=mask, seed=0, **options)
    np.testing.assert_array_equal(a, ours.generate(ids, attention_mask=mask, seed=0, **options))
    assert any((ours.generate(ids, attention_mask=mask, seed=s, **options) != a).any() for s in (1, 2))


def test_one_compilation_serves_new_values_and_params_are_arguments(pair):
    _, ours, _ = pair
    ids, mask = prompts()
    ours.generate(ids, attention_mask=mask, seed=0, temperature=1.5, top_p=0.95, min_p=0.01, **SAMPLING)
    before = search.decode._cache_size()
    for seed, temperature, top_p, eos, pad in ((5, 0.7, 0.5, 13, 0), (6, 1.1, 0.99, 51, 7)):
        ours.generate(ids, attention_mask=mask, seed=seed, temperature=temperature, top_p=top_p, min_p=0.2,
                      eos_token_id=eos, pad_token_id=pad, repetition_penalty=1.0, **SAMPLING)
    assert search.decode._cache_size() == before
    # Params enter the compiled loop as arguments (one per leaf), not as baked-in constants.
    plan = search.Plan(max_length=30, n_eos=1, do_sample=False, top_k=0, use_temperature=False, use_top_p=False,
                       use_min_p=False, use_repetition_penalty=False, use_min_length=False)
    knobs = search.Knobs(*(np.float32(1.0),) * 4, *(np.int32(0),) * 3, np.array([2], np.int32))
    positions = np.where(mask == 0, 0, np.cumsum(mask, 1) - 1).astype(np.int32)
    lowered = search.decode.lower(ours.module, plan, ours.params, ids.astype(np.int32), mask.astype(np.int32),
                                  positions, np.zeros(3, np.int32), jax.random.key(0), knobs)
    assert len(jax.tree.leaves(lowered.args_info[0][0])) == len(jax.tree.leaves(ours.params))
    assert "stablehlo.while" in lowered.as_text()


def test_decoding_runs_on_per_layer_params_made_once(pair):
    """generate decodes on one buffer per layer with Dense kernels transposed (see
    core.generation.model.decode_params): the same tokens as the stacked layout, the copy made
    once per params object."""
    reference, ours, folder = pair
    ids, mask = prompts()
    per_layer = ours.generate(ids, attention_mask=mask, max_new_tokens=12, num_beams=2)
    split = ours._decode_params[1]
    assert "block_0" in split["transformer"]["h"] and "block" not in split["transformer"]["h"]
    # Dense kernels are stored (out, in) for decoding; the other params are as loaded.
    assert sorted(split["transformer"]["h"]["block_0"]["mlp"]["down"]) == ["bias", "kernel_t"]
    np.testing.assert_array_equal(split["transformer"]["h"]["block_0"]["mlp"]["down"]["kernel_t"],
                                  np.asarray(ours.params["transformer"]["h"]["block"]["mlp"]["down"]["kernel"][0]).T)
    assert split["transformer"]["wte"]["embedding"] is ours.params["transformer"]["wte"]["embedding"]
    ours.generate(ids, attention_mask=mask, max_new_tokens=3)
    assert ours._decode_params[1] is split                     # cached while params are the same
    ours.decode_layout = "stacked"
    try:
        np.testing.assert_array_equal(ours.generate(ids, attention_mask=mask, max_new_tokens=12, num_beams=2),
                                      per_layer)
    finally:
        ours.decode_layout = "per_layer"
    np.testing.assert_array_equal(per_layer, reference_generate(reference, ids, mask, max_new_tokens=12,
                                                                num_beams=2))


# -- generation configs -----------------------------------------------------------------------------

def test_generation_config_file_and_priorities(pair, tmp_path):
    reference, ours, folder = pair
    # transformers wrote generation_config.json from the model config: the ids are read back.
    assert ours.generation_config.eos_token_id == 2 and ours.generation_config.pad_token_id == 0
    data = json.loads((folder / "generation_config.json").read_text())
    data.update(max_length=12, eos_token_id=[13, 51], repetition_penalty=1.3)
    (folder / "generation_config.json").write_text(json.dumps(data))
    reference = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = prompts()
    # max_length from the file is a total length; the file's eos list and penalty apply.
    expected = reference_generate(reference, ids, mask)
    got = model.generate(ids, attention_mask=mask)
    assert got.shape[1] <= 12
    np.testing.assert_array_equal(got, expected)
    # Arguments beat the file; a GenerationConfig object beats the file too.
    np.testing.assert_array_equal(
        model.generate(ids, attention_mask=mask, max_new_tokens=5, repetition_penalty=1.0),
        reference_generate(reference, ids, mask, max_new_tokens=5, repetition_penalty=1.0))
    np.testing.assert_array_equal(
        model.generate(ids, attention_mask=mask, generation_config=GenerationConfig(max_new_tokens=5,
                                                                                    repetition_penalty=1.0)),
        reference_generate(reference, ids, mask, max_new_tokens=5, repetition_penalty=1.0))
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    assert json.loads((saved / "generation_config.json").read_text())["eos_token_id"] == [13, 51]


def test_unsupported_and_invalid_options_are_refused(pair):
    _, ours, _ = pair
    ids, mask = prompts()
    with pytest.raises(NotImplementedError, match="bad_words_ids"):
        ours.generate(ids, attention_mask=mask, bad_words_ids=[[3]])
    with pytest.raises(ValueError, match="tokenizer"):
        ours.generate(ids, attention_mask=mask, stop_strings=["."])
    with pytest.raises(TypeError, match="unexpected arguments \\['max_tokens'\\]"):
        ours.generate(ids, attention_mask=mask, max_tokens=3)
    with pytest.raises(ValueError, match="Greedy methods without beam search"):
        ours.generate(ids, attention_mask=mask, num_return_sequences=2)
    with pytest.raises(ValueError, match="smaller or equal to `num_beams`"):
        ours.generate(ids, attention_mask=mask, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="`max_length` is set to 5"):
        ours.generate(ids, attention_mask=mask, max_length=5)
    with pytest.raises(ValueError, match="early_stopping"):
        ours.generate(ids, attention_mask=mask, num_beams=2, early_stopping="sometimes")
    with pytest.raises(ValueError, match=r"values must lie in \[0, 61\)"):
        ours.generate(np.array([[1, 61]]))
