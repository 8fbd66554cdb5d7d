"""Audio pipelines: automatic-speech-recognition (CTC) and audio-classification against
`transformers.pipeline` on the same folders and inputs: identical texts and labels, scores within
1e-5. Also the Wav2Vec2CTCTokenizer backend against transformers', .wav files, chunked ASR, the
compile count of a varied-length run, and the errors for bad inputs.

The models are tiny random Wav2Vec2s with O(1) weights (parity.build_eager), so the frame-wise argmax
varies; the vocabulary is letters plus the CTC specials and the `|` word delimiter. The CTC model has a
LayerNorm feature encoder (padding is exact: bucketed lengths); the classifier a GroupNorm one (run at
exact lengths, as transformers).
"""
import functools
import json

import numpy as np
import pytest
import transformers

from core import pipeline
from core.pipelines import PipelineError
from core.tokenization import AutoTokenizer
from tests import parity

RATE = 16000
LETTERS = "ABCDEFGH"
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(LETTERS)}}
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=19, conv_dim=[8, 8],
            conv_kernel=[5, 3], conv_stride=[3, 2], num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
            conv_bias=True, classifier_proj_size=7, mask_time_prob=0.0)
LABELS = ["yes", "no", "up", "down"]


def waves(seed=0, lengths=(400, 333, 250, 117)):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=n) * 0.3).astype(np.float32) for n in lengths]


def tones():
    """Classifier inputs: three 400-sample tones (one length: one compilation of the exact-length
    GroupNorm model), on which the tiny classifier's best label varies."""
    t = np.arange(400) / RATE
    return [np.sin(2 * np.pi * f * t).astype(np.float32) for f in (100, 2000, 5000)]


@functools.cache
def _folders(tmp_root):
    import pathlib
    root = pathlib.Path(tmp_root)
    ctc = root / "ctc"
    config = transformers.Wav2Vec2Config(**TINY, vocab_size=len(VOCAB), feat_extract_norm="layer",
                                         do_stable_layer_norm=True, pad_token_id=0)
    parity.build_eager(transformers.Wav2Vec2ForCTC, config, 0).save_pretrained(ctc)
    (root / "vocab.json").write_text(json.dumps(VOCAB))
    transformers.Wav2Vec2CTCTokenizer(str(root / "vocab.json")).save_pretrained(ctc)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=True).save_pretrained(ctc)
    cls = root / "cls"
    config = transformers.Wav2Vec2Config(**TINY, id2label=dict(enumerate(LABELS)),
                                         label2id={n: i for i, n in enumerate(LABELS)})
    parity.build_eager(transformers.Wav2Vec2ForSequenceClassification, config, 2).save_pretrained(cls)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=False).save_pretrained(cls)
    return ctc, cls


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return _folders(str(tmp_path_factory.mktemp("audio")))


@pytest.fixture(scope="module")
def asr(folders):
    return pipeline("automatic-speech-recognition", model=folders[0], batch_size=4)


@pytest.fixture(scope="module")
def reference_asr(folders):
    return transformers.pipeline("automatic-speech-recognition", model=str(folders[0]))


def test_ctc_tokenizer_decodes_like_transformers(folders):
    ours = AutoTokenizer.from_pretrained(folders[0])
    ref = transformers.AutoTokenizer.from_pretrained(folders[0])
    assert type(ours).__name__ == "Wav2Vec2CTCTokenizer"
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = rng.integers(0, len(VOCAB), size=rng.integers(0, 16)).tolist()
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), ids
    for text in ("ABC DEF", " A  B ", "AB<unk> C", "A<s>B </s> C", "xyz"):
        assert ours(text)["input_ids"] == ref(text)["input_ids"], text
    assert ours.get_vocab() == ref.get_vocab() and ours.pad_token_id == 0 and ours.word_delimiter_token_id == 4


def test_asr_matches_transformers(folders, asr, reference_asr):
    inputs = waves()
    want = [reference_asr(w)["text"] for w in inputs]
    assert len({t for t in want}) > 1 and any(len(set(t)) > 2 for t in want)    # the argmax varies
    assert asr(inputs) == [{"text": t} for t in want]
    assert asr(inputs[0]) == {"text": want[0]}
    assert asr({"raw": inputs[1], "sampling_rate": RATE}) == {"text": want[1]}
    assert asr({"array": inputs[2].astype(np.float64), "sampling_rate": RATE}, batch_size=1) == {"text": want[2]}
    stereo = np.stack([inputs[0], inputs[0][::-1]])
    assert asr(stereo) == reference_asr(stereo.copy())


def test_asr_chunked_matches_transformers(asr, reference_asr):
    long = waves(3, (1700,))[0]
    for chunk, stride in ((0.05, None), (0.04, (0.01, 0.005))):
        want = reference_asr(long.copy(), chunk_length_s=chunk, stride_length_s=stride)
        assert asr(long, chunk_length_s=chunk, stride_length_s=stride) == want


def test_wav_files(folders, asr, reference_asr, tmp_path):
    from scipy.io import wavfile
    wave = waves(4, (380,))[0]
    path = tmp_path / "speech.wav"
    wavfile.write(path, RATE, np.round(wave * 20000).astype(np.int16))
    as_float = np.round(wave * 20000).astype(np.int16).astype(np.float32) / 32768.0
    assert asr(str(path)) == reference_asr(as_float)
    assert asr(path.read_bytes()) == asr(as_float)


def test_asr_bucketed_lengths_compile_once_per_bucket(asr):
    lengths = [130, 200, 257, 310, 333, 400, 511, 600, 777, 900, 1023, 1024]
    texts = asr(waves(5, lengths))
    single = [asr(w) for w in waves(5, lengths)]
    assert single == texts and len(texts) == len(lengths)
    # Every length here pads to the minimum bucket of 1024 samples; batches of 4 rows and single
    # rows: two shapes in this pipeline's lifetime, whatever ran before.
    assert asr.compile_count == 2


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 2}, {"function_to_apply": "sigmoid"},
                                    {"function_to_apply": "none", "top_k": 3}])
def test_audio_classification_matches_transformers(folders, kwargs, record_property):
    ours = _classifier(folders[1])
    ref = _reference_classifier(folders[1])
    inputs = tones()
    got = ours(inputs, **kwargs)
    want = [ref(w, **kwargs) for w in inputs]
    assert len({r[0]["label"] for r in want}) > 1                    # the argmax varies
    worst = 0.0
    for g, w in zip(got, want):
        assert [x["label"] for x in g] == [x["label"] for x in w]
        worst = max(worst, max(abs(a["score"] - b["score"]) for a, b in zip(g, w)))
    record_property("max_abs_diff", worst)
    assert worst <= 1e-5
    assert ours({"array": inputs[0], "sampling_rate": RATE}, **kwargs) == got[0]


@functools.cache
def _classifier(folder):
    return pipeline("audio-classification", model=folder, batch_size=2)


@functools.cache
def _reference_classifier(folder):
    return transformers.pipeline("audio-classification", model=str(folder))


def test_bad_inputs_are_rejected(folders, asr, tmp_path):
    with pytest.raises(PipelineError, match="empty"):
        asr(np.zeros(0, np.float32))
    with pytest.raises(PipelineError, match="empty list"):
        asr([])
    with pytest.raises(PipelineError, match="8000 Hz.*16000 Hz"):
        asr({"raw": waves()[0], "sampling_rate": 8000})
    from scipy.io import wavfile
    wrong_rate = tmp_path / "8k.wav"
    wavfile.write(wrong_rate, 8000, np.zeros(400, np.int16))
    with pytest.raises(PipelineError, match="8000 Hz.*16000 Hz"):
        asr(str(wrong_rate))
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"not a wave file at all")
    with pytest.raises(PipelineError, match="cannot read"):
        asr(str(garbage))
    with pytest.raises(PipelineError, match="no audio file"):
        asr(str(tmp_path / "missing.wav"))
    with pytest.raises(PipelineError, match="fewer than"):
        asr(np.ones(8, np.float32))
    with pytest.raises(PipelineError, match="raw"):
        asr({"sampling_rate": RATE})
    with pytest.raises(TypeError, match="numpy array"):
        asr(12)
    with pytest.raises(PipelineError, match="Wav2Vec2ForCTC head"):
        pipeline("automatic-speech-recognition", model=folders[1])
    with pytest.raises(PipelineError, match="Wav2Vec2ForSequenceClassification head"):
        pipeline("audio-classification", model=folders[0])
    with pytest.raises(PipelineError, match="mono"):
        _classifier(folders[1])(np.zeros((2, 300), np.float32))
