"""automatic-speech-recognition with Whisper against `transformers.pipeline` (v5).

A tiny random Whisper (the real 30 s window: 1500 encoder positions, 8 mel bins, 20 wide; weights
std 0.3, which makes the argmax vary with the audio and even emit a timestamp token) with a tiny
byte-level tokenizer (50 text tokens, Whisper's 11 special tokens, 3 timestamp tokens) and a
multilingual generation_config.json. Texts must be identical to transformers' pipeline: default
generation (the pipeline's num_beams=5), generate_kwargs (language, task, max_new_tokens, num_beams),
batching, and long audio in 30 s chunks merged as transformers merges them. The same on the real
converted Whisper base and the espeak clips: tests/test_whisper_real.py (slow).
"""
import functools
import json
import pathlib

import numpy as np
import pytest
import torch
import transformers

from core import pipeline
from core.pipelines import PipelineError
from core.pipelines.whisper_asr import longest_common_sequence
from tests import parity

RATE = 16000
EOS, SOT, EN, FR, DE, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS = 50, 51, 52, 53, 54, 55, 56, 60
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|fr|>", "<|de|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
TIMESTAMPS = ["<|0.00|>", "<|0.02|>", "<|0.04|>"]


def _tokenizer_files(folder: pathlib.Path):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    vocab = {t: i for i, t in enumerate([chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "!", ".", ","])}
    merges = []
    for c in "abcdefghijklmnopqrst":
        merges.append(("Ġ", c))
        vocab["Ġ" + c] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TIMESTAMPS])
    assert tok.token_to_id("<|notimestamps|>") == NO_TIMESTAMPS and tok.get_vocab_size() == 64
    tok.save(str(folder / "tokenizer.json"))
    special_map = {"bos_token": SPECIALS[0], "eos_token": SPECIALS[0], "unk_token": SPECIALS[0],
                   "pad_token": SPECIALS[0], "additional_special_tokens": SPECIALS[1:]}
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "WhisperTokenizer", "add_prefix_space": False, "add_bos_token": False,
         "errors": "replace", "model_max_length": 1024, "clean_up_tokenization_spaces": False, **special_map}))
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map))


@functools.cache
def _folder(root: str) -> pathlib.Path:
    folder = pathlib.Path(root) / "tiny-whisper"
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer_files(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 8, "sampling_rate": RATE,
         "hop_length": 160, "chunk_length": 30, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000,
         "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False}))
    config = transformers.WhisperConfig(
        vocab_size=64, num_mel_bins=8, d_model=20, encoder_layers=2, decoder_layers=2, encoder_attention_heads=5,
        decoder_attention_heads=4, encoder_ffn_dim=27, decoder_ffn_dim=31, max_source_positions=1500,
        max_target_positions=40, pad_token_id=EOS, bos_token_id=EOS, eos_token_id=EOS, decoder_start_token_id=SOT,
        begin_suppress_tokens=[26, EOS])
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, 1, std=0.3)
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=SOT, eos_token_id=EOS, pad_token_id=EOS, bos_token_id=EOS,
        lang_to_id={"<|en|>": EN, "<|fr|>": FR, "<|de|>": DE}, task_to_id={"translate": TRANSLATE, "transcribe": TRANSCRIBE},
        no_timestamps_token_id=NO_TIMESTAMPS, is_multilingual=True, suppress_tokens=[1, 5, 7],
        begin_suppress_tokens=[26, EOS], max_length=12)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _folder(str(tmp_path_factory.mktemp("whisper-asr")))


@pytest.fixture(scope="module")
def ours(folder):
    return pipeline("automatic-speech-recognition", model=folder)


@pytest.fixture(scope="module")
def reference(folder):
    return transformers.pipeline("automatic-speech-recognition", model=str(folder))


def tone(freq, seconds, amplitude=0.5):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


CLIPS = [tone(220, 2.0), tone(1000, 1.3, 0.1), tone(3000, 0.7, 0.8)]


def test_merge_matches_transformers():
    from transformers.models.whisper.tokenization_whisper import _find_longest_common_sequence
    rng = np.random.default_rng(0)
    for _ in range(200):
        base = rng.integers(0, 6, size=rng.integers(2, 30)).tolist()
        pieces, start = [], 0
        while start < len(base):
            end = start + int(rng.integers(1, 12))
            piece = base[max(0, start - int(rng.integers(0, 5))):end]
            if rng.random() < 0.3 and piece:
                piece[int(rng.integers(len(piece)))] = int(rng.integers(0, 6))
            pieces.append(piece or [1])
            start = end
        assert longest_common_sequence(pieces) == list(_find_longest_common_sequence(pieces)), pieces


def test_texts_match_transformers(ours, reference):
    expected = reference(CLIPS)
    got = ours(CLIPS)
    assert got == expected
    assert len({r["text"] for r in got}) > 1, got            # the tiny model does not say the same for all
    one = {"raw": CLIPS[0].astype(np.float64), "sampling_rate": RATE}
    assert ours(dict(one)) == reference(dict(one)) == expected[0]
    stereo = np.stack([CLIPS[1], CLIPS[1] * 0.5])
    assert ours(stereo) == ours(CLIPS[1] * 0.75)


def test_generate_kwargs_match_transformers(ours, reference):
    for kwargs in ({"generate_kwargs": {"language": "fr", "task": "translate"}, "max_new_tokens": 6, "num_beams": 1},
                   {"generate_kwargs": {"task": "transcribe", "num_beams": 2, "max_new_tokens": 8}}):
        assert ours(CLIPS[:2], **kwargs) == reference(CLIPS[:2], **kwargs), kwargs


def test_batching_matches_transformers_and_compiles_once(folder, reference):
    asr = pipeline("automatic-speech-recognition", model=folder, batch_size=2)
    expected = reference(CLIPS[:3], batch_size=2, num_beams=1)
    assert asr(CLIPS[:3], num_beams=1) == expected
    assert asr.compile_count == 2                  # one 30 s shape; batches of 2 rows and of 1 row


def test_long_audio_in_chunks_matches_transformers(ours, reference):
    long = np.concatenate([tone(f, 7.0, a) for f, a in ((220, .5), (3000, .8), (1000, .1), (500, .3), (220, .5),
                                                        (3000, .8), (1000, .1), (500, .02), (4000, .5), (300, .2))])
    assert long.shape[0] == 70 * RATE
    for kwargs in ({"chunk_length_s": 30}, {"chunk_length_s": 20, "stride_length_s": [2, 5]}):
        kwargs = {**kwargs, "num_beams": 1, "max_new_tokens": 10}
        assert ours(long, **kwargs) == reference(long, **kwargs), kwargs



def test_timestamps_and_long_form_match_transformers(ours, reference):
    """return_timestamps=True (segment chunks) on clips and on 40 s in chunks; 40 s without
    chunk_length_s: Whisper's long-form generate (sequential 30 s windows), with and without timestamps."""
    long = np.concatenate([tone(f, 7.0, a) for f, a in ((220, .5), (3000, .8), (1000, .1), (500, .3), (220, .5),
                                                        (3000, .8))])[:40 * RATE]
    kwargs = {"num_beams": 1, "max_new_tokens": 10}
    starts = []
    for inputs, extra in ((CLIPS, {}), (long, {"chunk_length_s": 30}), (long, {}),
                          (long, {"return_timestamps": False})):
        call = {"return_timestamps": True, **kwargs, **extra}
        expected = reference(inputs, **call)
        assert ours(inputs, **call) == expected, call
        for answer in expected if isinstance(expected, list) else [expected]:
            starts += [c["timestamp"][0] for c in answer.get("chunks", [])]
    assert any(start is not None for start in starts), starts


def test_bad_inputs_get_clear_errors(ours, folder, tmp_path):
    with pytest.raises(PipelineError, match="8000 Hz.*16000 Hz"):
        ours({"raw": CLIPS[0], "sampling_rate": 8000})
    with pytest.raises(PipelineError, match="empty"):
        ours(np.zeros(0, np.float32))
    with pytest.raises(PipelineError, match="no audio file"):
        ours(str(tmp_path / "missing.wav"))
    with pytest.raises(TypeError, match="numpy array"):
        ours(3.5)
    with pytest.raises(PipelineError, match="return_timestamps='word'"):
        ours(CLIPS[0], return_timestamps="word")
    with pytest.raises(PipelineError, match="longer than Whisper's 30 s window"):
        ours(CLIPS[0], chunk_length_s=40)
    with pytest.raises(PipelineError, match="Unsupported language"):
        ours(CLIPS[0], generate_kwargs={"language": "xx"})
    from ports.torch import pipeline as torch_pipeline
    with pytest.raises(PipelineError, match="return_timestamps='word'"):      # the same checks in the torch port
        torch_pipeline("automatic-speech-recognition", model=folder)(CLIPS[0], return_timestamps="word")


def test_wav_file(ours, reference, tmp_path):
    from scipy.io import wavfile
    path = tmp_path / "clip.wav"
    wavfile.write(path, RATE, (CLIPS[0] * 32767).astype(np.int16))
    kwargs = {"num_beams": 1, "max_new_tokens": 10}
    assert ours(str(path), **kwargs) == ours(np.asarray(wavfile.read(path)[1], np.float32) / 32768.0, **kwargs)
