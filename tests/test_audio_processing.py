"""`core.processing.audio.Wav2Vec2FeatureExtractor` against `transformers`' on generated sine
waves of different lengths: padding (longest, max_length, multiple-of, left side), truncation,
normalisation with and without the attention mask, the sampling-rate check, and
`AutoFeatureExtractor.from_pretrained`."""
import numpy as np
import pytest
import transformers

from core.processing.audio import AutoFeatureExtractor, FeatureExtractorError, Wav2Vec2FeatureExtractor


def waves(lengths=(230, 400, 170), rate=16000):
    out = []
    for i, n in enumerate(lengths):
        t = np.arange(n) / rate
        out.append((0.3 + 0.1 * i) * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * i)
    return out


SETTINGS = [
    ({}, dict(padding=True)),
    ({"return_attention_mask": True}, dict(padding=True)),
    ({"return_attention_mask": True}, dict(padding="max_length", max_length=300, truncation=True)),
    ({"return_attention_mask": True, "padding_value": 0.5}, dict(padding="longest", pad_to_multiple_of=64)),
    ({"return_attention_mask": True, "padding_side": "left"}, dict(padding=True)),
    ({"do_normalize": False, "return_attention_mask": True}, dict(padding=True)),
    ({"return_attention_mask": True}, dict(padding=True, return_attention_mask=False)),
]


@pytest.mark.parametrize("init,call", SETTINGS, ids=[str(i) for i in range(len(SETTINGS))])
def test_matches_transformers(init, call, tmp_path):
    reference = transformers.Wav2Vec2FeatureExtractor(**init)
    reference.save_pretrained(tmp_path)
    ours = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(ours, Wav2Vec2FeatureExtractor)
    batch = waves()
    want = reference(batch, sampling_rate=16000, return_tensors="np", **call)
    got = ours(batch, sampling_rate=16000, **call)
    assert sorted(got) == sorted(k for k in want.keys())
    assert got["input_values"].dtype == np.float32
    np.testing.assert_allclose(got["input_values"], want["input_values"], atol=1e-5, rtol=0)
    if "attention_mask" in want:
        np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])


def test_single_wave_and_unpadded_batch(tmp_path):
    reference = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    reference.save_pretrained(tmp_path)
    ours = AutoFeatureExtractor.from_pretrained(tmp_path)
    one = waves()[1]
    np.testing.assert_allclose(ours(one, sampling_rate=16000)["input_values"],
                               reference(one, sampling_rate=16000, return_tensors="np")["input_values"], atol=1e-5)
    got = ours(waves(), sampling_rate=16000)["input_values"]
    want = reference(waves(), sampling_rate=16000)["input_values"]
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_errors(tmp_path):
    extractor = Wav2Vec2FeatureExtractor()
    with pytest.raises(FeatureExtractorError, match="16000 Hz"):
        extractor(waves(), sampling_rate=8000, padding=True)
    with pytest.raises(FeatureExtractorError, match="max_length"):
        extractor(waves(), padding="max_length")
    with pytest.raises(FeatureExtractorError, match="mono"):
        extractor(np.zeros((2, 3, 4)))
    with pytest.raises(FeatureExtractorError, match="preprocessor_config.json"):
        AutoFeatureExtractor.from_pretrained(tmp_path)
