"""Whisper: every head against `transformers` on a tiny non-default config (random log-mel
features, padded decoder batch, labels), cached decoding (prefill + single-token steps reading
the cross-attention cache), the log-mel feature extractor against `transformers`'
WhisperFeatureExtractor, `generate` (greedy and beam, language/task prompt, suppress tokens)
token-identical to `transformers`, loading/saving and config checks. Also the adapter the port
tests use (TINY, CASES, build_reference, task_inputs, OUTPUT_FIELDS).
"""
import functools
import json

import jax
import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from core.models.whisper.config import WhisperConfig
from tests import parity

# Non-default: 7 mel bins, 6 encoder positions (12 frames), 5 encoder but 4 decoder heads, odd
# and unequal FFN widths, a 61-token vocabulary whose special tokens sit at its end (<|notimestamps|> last:
# no timestamp tokens).
EOS, SOT, EN, FR, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS = 50, 51, 52, 53, 55, 56, 60
TINY = dict(vocab_size=61, num_mel_bins=7, d_model=20, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=5, decoder_attention_heads=4, encoder_ffn_dim=27, decoder_ffn_dim=31,
            max_source_positions=6, max_target_positions=24, pad_token_id=EOS, bos_token_id=EOS,
            eos_token_id=EOS, decoder_start_token_id=SOT, begin_suppress_tokens=[3, EOS], classifier_proj_size=9)
TARGET_LENGTH = 7
_ENCODER_DECODER = ("decoder_hidden_states", "decoder_attentions", "cross_attentions", "encoder_last_hidden_state",
                    "encoder_hidden_states", "encoder_attentions")
OUTPUT_FIELDS = {
    "base": ("last_hidden_state",) + _ENCODER_DECODER,
    "seq2seq-lm": ("loss", "logits") + _ENCODER_DECODER,
    "sequence-classification": ("loss", "logits", "hidden_states", "attentions"),
}
HF = {"base": "WhisperModel", "seq2seq-lm": "WhisperForConditionalGeneration",
      "sequence-classification": "WhisperForAudioClassification"}


def build_reference(task, tmp_path, seed=0, **overrides):
    config = transformers.WhisperConfig(**{**TINY, **overrides})
    model = parity.build_eager(getattr(transformers, HF[task]), config, seed)
    folder = tmp_path / f"hf-whisper-{task}"
    model.save_pretrained(folder)
    return model, folder


def features(config_kwargs, seed=0, batch=3):
    rng = np.random.default_rng(seed)
    frames = 2 * config_kwargs["max_source_positions"]
    return rng.normal(size=(batch, config_kwargs["num_mel_bins"], frames)).astype(np.float32)


def target_batch(config_kwargs, seed=0, batch=3, length=TARGET_LENGTH):
    """Decoder inputs starting with the start token; rows 1 and 2 right-padded."""
    rng = np.random.default_rng(seed + 7)
    ids = rng.integers(0, EOS, size=(batch, length))
    ids[:, 0] = config_kwargs["decoder_start_token_id"]
    mask = np.ones((batch, length), np.int64)
    mask[1, 5:] = 0
    mask[2, 4:] = 0
    ids = np.where(mask == 1, ids, config_kwargs["pad_token_id"])
    return {"decoder_input_ids": ids.astype(np.int64), "decoder_attention_mask": mask}


def task_inputs(task, config_kwargs, mode="explicit", seed=0):
    """mode (seq2seq-lm): "explicit" decoder inputs with labels, or "shift" (labels only: the
    model shifts them into decoder inputs)."""
    inputs = {"input_features": features(config_kwargs, seed)}
    labels = {}
    if task == "sequence-classification":
        labels["labels"] = np.random.default_rng(seed + 1).integers(0, config_kwargs.get("num_labels", 2), size=(3,))
        return inputs, labels
    target = target_batch(config_kwargs, seed)
    if task == "seq2seq-lm":
        shifted = np.concatenate([target["decoder_input_ids"][:, 1:], np.full((3, 1), EOS)], axis=1)
        # The next token of each decoder input (EOS after a full row); -100 past the padding.
        keep = np.roll(target["decoder_attention_mask"], -1, axis=1) * target["decoder_attention_mask"]
        labels["labels"] = np.where(keep == 1, shifted, -100)
        if mode == "shift":
            return inputs, labels
    inputs.update(target)
    return inputs, labels


CASES = [
    ("seq2seq-lm", {}, "explicit"),
    ("seq2seq-lm", {"tie_word_embeddings": False, "activation_function": "gelu_new"}, "shift"),
    ("base", {"activation_function": "relu"}, "explicit"),
    ("sequence-classification", {"use_weighted_layer_sum": True, "activation_function": "silu", "num_labels": 3}),
]


@functools.cache
def _reference(task, items):
    """One reference per (task, overrides) for the whole module (building and saving is slow)."""
    import tempfile, pathlib
    return build_reference(task, pathlib.Path(tempfile.mkdtemp(prefix="whisper-")), **dict(items))


@functools.cache
def _ours(task, items):
    return PretrainedModel.from_pretrained(_reference(task, items)[1], task=task)


@pytest.mark.parametrize("task,overrides,extra", [(c[0], c[1], c[2:]) for c in CASES],
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, extra, record_property):
    items = tuple(sorted(overrides.items()))
    reference, _ = _reference(task, items)
    ours = _ours(task, items)
    assert ours.config.model_type == "whisper"
    inputs, labels = task_inputs(task, {**TINY, **overrides}, *extra)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label="whisper vs transformers")
    if task == "seq2seq-lm" and extra == ("explicit",):
        # The encoder's output given back: the encoder is skipped, the decoder output is the same.
        again = ours(**inputs, **labels, encoder_hidden_states=got.encoder_last_hidden_state)
        assert again.encoder_hidden_states is None
        assert parity.max_abs(again.logits, got.logits) <= parity.TOL


def test_cached_decoding_equals_transformers(record_property):
    """encode once; prefill 3 decoder positions (projecting the cross keys/values into the cache),
    then single-token steps reading them back: every real position's logits equal transformers'
    full forward."""
    reference, _ = _reference("seq2seq-lm", ())
    ours = _ours("seq2seq-lm", ())
    inputs, _ = task_inputs("seq2seq-lm", TINY)
    module, variables = ours.module, {"params": ours.params}
    apply = jax.jit(module.apply, static_argnames=("method", "fill_cross_cache"))
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    batch, length = ids.shape
    encoded = apply(variables, inputs["input_features"], method="encode")
    cache = module.apply(variables, batch, length, TINY["max_source_positions"], method="init_cache")
    out = apply(variables, ids[:, :3], encoded.last_hidden_state, None, mask, cache, 0, fill_cross_cache=True,
                method="decode")
    steps = [np.asarray(out.logits)]
    for t in range(3, length):
        out = apply(variables, ids[:, t:t + 1], None, None, mask, out.cache, t, fill_cross_cache=False,
                    method="decode")
        steps.append(np.asarray(out.logits))
    cached = np.concatenate(steps, axis=1)
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diff = float(np.abs(cached[real] - expected[real]).max())
    record_property("parity:whisper vs transformers", diff)
    assert diff <= parity.TOL, diff


@pytest.mark.parametrize("tie", [True, False])
def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tie, tmp_path):
    from safetensors import safe_open
    overrides = () if tie else (("activation_function", "gelu_new"), ("tie_word_embeddings", False))
    reference, folder = _reference("seq2seq-lm", overrides)
    ours = _ours("seq2seq-lm", overrides)
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        assert ("proj_out.weight" in saved.keys()) == (not tie)
        assert "model.encoder.embed_positions.weight" in saved.keys()
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = transformers.WhisperForConditionalGeneration.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["WhisperForConditionalGeneration"]


def test_config_round_trip():
    _, folder = _reference("seq2seq-lm", ())
    saved = json.loads((folder / "config.json").read_text())
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, WhisperConfig)
    assert WhisperConfig.from_dict(saved).to_dict() == saved
    assert config.begin_suppress_tokens == (3, EOS) and config.encoder_layers == 2
    default = transformers.WhisperConfig().to_dict()
    assert WhisperConfig.from_dict(default).to_dict() == default


@pytest.mark.parametrize("key,value,match", [
    ("d_model", 21, "multiple of encoder_attention_heads"),
    ("activation_function", "nope", "activation_function"),
    ("encoder_layerdrop", 0.1, "LayerDrop"),
    ("apply_spec_augment", True, "SpecAugment"),
    ("max_source_positions", 0, "positive int"),
])
def test_bad_configs_get_clear_errors(key, value, match):
    with pytest.raises(ConfigError, match=match):
        WhisperConfig(**{**TINY, key: value})


# -- feature extractor ------------------------------------------------------------------------------

def waves(lengths, seed=0):
    """Sine mixes plus noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        t = np.arange(n) / 16000
        f1, f2 = rng.uniform(100, 3000, size=2)
        out.append((0.4 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t + 1.0)
                    + 0.05 * rng.normal(size=n)).astype(np.float32))
    return out


@pytest.mark.parametrize("settings,call", [
    ({}, {}),
    ({}, {"return_attention_mask": True, "do_normalize": True}),
    ({"feature_size": 13, "chunk_length": 1}, {"padding": "longest", "return_attention_mask": True}),
    ({"feature_size": 11, "hop_length": 120, "n_fft": 300, "chunk_length": 1}, {"do_normalize": True}),
])
def test_feature_extractor_matches_transformers(settings, call, tmp_path, record_property):
    from core.processing.audio import AutoFeatureExtractor, WhisperFeatureExtractor
    reference = transformers.WhisperFeatureExtractor(**settings)
    reference.save_pretrained(tmp_path)
    ours = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(ours, WhisperFeatureExtractor)
    batch = waves([4000, 9001, 2345, 20000])       # the last is truncated at chunk_length 1
    expected = reference(batch, sampling_rate=16000, return_tensors="np", **call)
    got = ours(batch, sampling_rate=16000, **call)
    assert sorted(got) == sorted(expected)
    diff = float(np.abs(got["input_features"] - expected["input_features"]).max())
    record_property("parity:whisper feature extractor vs transformers", diff)
    assert got["input_features"].shape == expected["input_features"].shape and diff <= parity.TOL
    if "attention_mask" in expected:
        np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])
    single = ours(batch[0], sampling_rate=16000, **call)["input_features"]
    np.testing.assert_array_equal(single, ours(batch[:1], sampling_rate=16000, **call)["input_features"])


# -- generation -------------------------------------------------------------------------------------

GENERATION_CONFIG = dict(decoder_start_token_id=SOT, eos_token_id=EOS, pad_token_id=EOS, bos_token_id=EOS,
                         lang_to_id={"<|en|>": EN, "<|fr|>": FR, "<|de|>": 54},
                         task_to_id={"translate": TRANSLATE, "transcribe": TRANSCRIBE},
                         no_timestamps_token_id=NO_TIMESTAMPS, is_multilingual=True, suppress_tokens=[1, 5, 7],
                         begin_suppress_tokens=[3, EOS], max_length=24)


def _random_generation_pair(folder, config_kwargs: dict, seed: int):
    """(transformers reference, our AutoModelForSpeechSeq2Seq) of a random Whisper with weights
    of std 1 (argmax not degenerate) and the multilingual generation_config.json, saved in `folder`."""
    from core import AutoModelForSpeechSeq2Seq
    config = transformers.WhisperConfig(**config_kwargs)
    torch.manual_seed(0)
    reference = transformers.WhisperForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(reference, seed, std=1.0)
    reference.generation_config = transformers.GenerationConfig(**GENERATION_CONFIG)
    reference.save_pretrained(folder)
    return reference, AutoModelForSpeechSeq2Seq.from_pretrained(folder)


@pytest.fixture(scope="module")
def generation_pair(tmp_path_factory):
    """A tiny random Whisper (weights std 1, so argmax is not degenerate) with a multilingual
    generation_config.json, loaded by AutoModelForSpeechSeq2Seq."""
    return _random_generation_pair(tmp_path_factory.mktemp("whisper-generate"), TINY, seed=0)


# Every case has a 4-token prompt, the greedy ones one length: one compiled loop per search.
GENERATE_CASES = {
    "greedy": dict(language="en", task="transcribe", max_new_tokens=9),
    "greedy-eos": dict(language="<|fr|>", max_new_tokens=9, eos_token_id=11),   # rows end early (11 is common)
    "greedy-detect-language": dict(task="transcribe", max_new_tokens=9),
    "beam": dict(language=["english", "fr", "<|de|>"], task="translate", num_beams=2),   # max_length from the file
}


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_is_token_identical_to_transformers(generation_pair, name):
    reference, ours = generation_pair
    features = task_inputs("base", TINY)[0]["input_features"]
    kwargs = GENERATE_CASES[name]
    with torch.no_grad():
        expected = reference.generate(input_features=torch.tensor(features), **kwargs).numpy()
    got = ours.generate(input_features=features, **kwargs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_generate_rejects_what_it_does_not_implement(generation_pair):
    _, ours = generation_pair
    features = task_inputs("base", TINY)[0]["input_features"]
    with pytest.raises(NotImplementedError, match="prompt_ids"):
        ours.generate(input_features=features, prompt_ids=np.array([3, 4]))
    with pytest.raises(NotImplementedError, match="temperature fallback"):
        ours.generate(input_features=features, temperature=(0.0, 0.2))
    with pytest.raises(NotImplementedError, match="condition_on_prev_tokens"):
        ours.generate(input_features=features, condition_on_prev_tokens=True)
    long = np.concatenate([features, features], axis=-1)
    with pytest.raises(ValueError, match="attention_mask"):
        ours.generate(input_features=long)
    with pytest.raises(ValueError, match="return_timestamps=True"):
        ours.generate(input_features=long[:1], return_timestamps=False)
    with pytest.raises(ValueError, match="Unsupported language"):
        ours.generate(input_features=features, language="xx")


# -- timestamps ---------------------------------------------------------------------------------------

def _timestamp_cases(seed=0):
    """Decoder buffers (rows, 10) with a 3-token prompt: hand-built rows (pairs, a single timestamp,
    decreasing and repeated timestamps, text only) and random mixes of text and timestamp tokens
    (vocab 80: text < 50 = eos, <|notimestamps|> 60, timestamps from 61)."""
    rng = np.random.default_rng(seed)
    hand = [[61, 5, 7, 63, 63, 9, 12], [62, 3, 64, 8, 65, 66, 4], [5, 6, 7, 8, 9, 10, 11],
            [61, 61, 70, 2, 66, 4, 75], [64, 1, 62, 2, 79, 79, 3]]
    rand = np.where(rng.random((11, 7)) < 0.5, rng.integers(61, 80, (11, 7)), rng.integers(0, 50, (11, 7)))
    generated = np.concatenate([np.asarray(hand), rand])
    prompt = np.tile([SOT, EN, TRANSCRIBE], (len(generated), 1))
    sequences = np.concatenate([prompt, generated], axis=1)
    scores = rng.normal(size=(len(generated), 80)).astype(np.float32) * 2
    scores[::2, 61:] += 2.5                        # timestamps likely: the logprob rule fires on these rows
    scores[1::4, 61:] -= 4.0                       # text likely
    return sequences, scores


@pytest.mark.parametrize("max_initial", [None, 3])
def test_timestamp_processor_matches_transformers(max_initial):
    """The JAX processor and its numpy twin vs WhisperTimeStampLogitsProcessor at every length."""
    import jax.numpy as jnp
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor
    from core.generation import host, processors
    sequences, scores = _timestamp_cases()
    config = transformers.GenerationConfig(no_timestamps_token_id=NO_TIMESTAMPS, eos_token_id=EOS,
                                           max_initial_timestamp_index=max_initial)
    reference = WhisperTimeStampLogitsProcessor(config, begin_index=3)
    jitted = jax.jit(processors.whisper_timestamps)
    banned_text = banned_timestamps = 0
    for cur_len in range(3, sequences.shape[1] + 1):
        step_scores = scores + cur_len
        expected = reference(torch.tensor(sequences[:, :cur_len]), torch.tensor(step_scores)).numpy()
        got = np.asarray(jitted(jnp.asarray(step_scores), jnp.asarray(sequences), cur_len, 3, NO_TIMESTAMPS + 1,
                                NO_TIMESTAMPS, EOS, 2 ** 30 if max_initial is None else max_initial))
        np.testing.assert_array_equal(got, expected, err_msg=f"jax, cur_len {cur_len}")
        twin = host.whisper_timestamps(step_scores, sequences, cur_len, 3, NO_TIMESTAMPS + 1, NO_TIMESTAMPS, EOS,
                                       max_initial)
        np.testing.assert_array_equal(twin, expected, err_msg=f"numpy, cur_len {cur_len}")
        banned_text += int(np.isinf(expected[:, :EOS]).all(axis=1).sum())
        banned_timestamps += int(np.isinf(expected[:, 61:]).any(axis=1).sum())
    assert banned_text > 20 and banned_timestamps > 20, (banned_text, banned_timestamps)


TIMESTAMP_TINY = {**TINY, "vocab_size": 80}          # timestamps 61..79 after <|notimestamps|> 60
TIMESTAMP_CASES = {
    "short": dict(features=(12, 12, 12), language="en", max_new_tokens=12),
    "short-initial-max": dict(features=(12, 12, 12), language="fr", max_new_tokens=12, max_initial_timestamp_index=2),
    "long": dict(features=(70, 45, 30), language="en", max_new_tokens=12),
    "long-detect-language": dict(features=(70, 45, 30), task="transcribe", max_new_tokens=12),
}


@pytest.fixture(scope="module")
def timestamp_pair(tmp_path_factory):
    """A tiny random Whisper with 19 timestamp tokens (std 1 weights: they get predicted)."""
    return _random_generation_pair(tmp_path_factory.mktemp("whisper-timestamps"), TIMESTAMP_TINY, seed=1)


def _timestamp_inputs(lengths, seed=3):
    """Random log-mel rows of `lengths` frames, right-padded (with -0.6) to the longest, and their mask."""
    rng = np.random.default_rng(seed)
    frames = max(lengths)
    features = rng.normal(size=(len(lengths), TIMESTAMP_TINY["num_mel_bins"], frames)).astype(np.float32)
    mask = (np.arange(frames)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    return np.where(mask[:, None, :] == 1, features, np.float32(-0.6)), mask


@pytest.mark.parametrize("name", list(TIMESTAMP_CASES))
def test_generate_timestamps_is_token_identical_to_transformers(timestamp_pair, name):
    """return_timestamps=True, short-form (the seek loop goes on after an unfinished window) and
    long-form (70 / 45 / 30 frames in 12-frame windows, one seek pointer per row): the sequences
    and the segments (start, end, tokens) equal transformers'; timestamp tokens are predicted."""
    reference, ours = timestamp_pair
    kwargs = dict(TIMESTAMP_CASES[name])
    features, mask = _timestamp_inputs(kwargs.pop("features"))
    theirs_config = ours_config = None
    if "max_initial_timestamp_index" in kwargs:       # a generation_config key, not a generate argument
        from core.generation.config import GenerationConfig
        settings = {"max_initial_timestamp_index": kwargs.pop("max_initial_timestamp_index")}
        theirs_config = transformers.GenerationConfig(**GENERATION_CONFIG, **settings)
        ours_config = GenerationConfig.from_dict(settings)
    with torch.no_grad():
        expected = reference.generate(input_features=torch.tensor(features), attention_mask=torch.tensor(mask),
                                      return_timestamps=True, return_segments=True, generation_config=theirs_config,
                                      **kwargs)
    got = ours.generate(input_features=features, attention_mask=mask, return_timestamps=True, return_segments=True,
                        generation_config=ours_config, **kwargs)
    np.testing.assert_array_equal(got["sequences"], expected["sequences"].numpy())
    assert (got["sequences"] > NO_TIMESTAMPS).sum() >= 5
    print(name, "timestamp tokens:", int((got["sequences"] > NO_TIMESTAMPS).sum()), "segments:",
          [len(r) for r in got["segments"]])
    for row, reference_row in zip(got["segments"], expected["segments"]):
        assert len(row) == len(reference_row)
        for segment, reference_segment in zip(row, reference_row):
            assert segment["start"] == pytest.approx(float(reference_segment["start"]))
            assert segment["end"] == pytest.approx(float(reference_segment["end"]))
            np.testing.assert_array_equal(segment["tokens"], reference_segment["tokens"].numpy())
