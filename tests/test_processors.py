"""AutoProcessor: the class transformers picks for the same folder, and the same outputs (Whisper and
Wav2Vec2 speech processors with labels, CLIP text + images), the fallbacks for folders without a
processor class, and clear errors."""
import json
import pathlib

import numpy as np
import pytest
import transformers

from core import AutoProcessor
from core.processing.image import ImageProcessor
from core.processing.processor import ProcessorError
from core.tokenization.base import PreTrainedTokenizer
from tests import parity
from tests.test_pipelines_whisper import _tokenizer_files

RATE = 16000
TEXTS = ["hello world", "a quick test."]


def _waves():
    rng = np.random.default_rng(3)
    return [(rng.normal(size=n) * 0.2).astype(np.float32) for n in (4000, 2500)]


def _config(folder: pathlib.Path, model_type: str):
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("processors")
    whisper = root / "whisper"
    whisper.mkdir()
    _tokenizer_files(whisper)
    transformers.WhisperFeatureExtractor(feature_size=8, sampling_rate=RATE).save_pretrained(whisper)
    _config(whisper, "whisper")

    wav2vec2 = root / "wav2vec2"
    letters = "abcdefghijklmnopqrstuvwxyz'."
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(letters)}}
    (root / "vocab.json").write_text(json.dumps(vocab))
    transformers.Wav2Vec2CTCTokenizer(str(root / "vocab.json")).save_pretrained(wav2vec2)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=True).save_pretrained(wav2vec2)
    _config(wav2vec2, "wav2vec2")

    clip = root / "clip"
    symbols = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["."]
    clip_vocab = {t: i for i, t in enumerate(symbols + [s + "</w>" for s in symbols]
                                             + ["<|startoftext|>", "<|endoftext|>"])}
    (root / "clip_vocab.json").write_text(json.dumps(clip_vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(vocab=str(root / "clip_vocab.json"), merges=str(root / "merges.txt"),
                               model_max_length=16).save_pretrained(clip)
    transformers.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
                                    ).save_pretrained(clip)
    _config(clip, "clip")

    # A text-only model (no processor class: AutoProcessor gives the tokenizer) and a vision-only
    # one (no tokenizer: the image processor).
    bert = root / "bert"
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=9)
    parity.build_eager(transformers.BertModel, config, 0).save_pretrained(bert)
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters]))
    transformers.BertTokenizer(str(root / "vocab.txt")).save_pretrained(bert)
    vit = root / "vit"
    vit.mkdir()
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(vit)
    _config(vit, "vit")
    return {"whisper": whisper, "wav2vec2": wav2vec2, "clip": clip, "bert": bert, "vit": vit}


def assert_same(ours: dict, theirs, label: str):
    assert sorted(ours) == sorted(theirs), label
    for key in ours:
        a, b = np.asarray(ours[key]), np.asarray(theirs[key])
        assert a.shape == b.shape, (label, key, a.shape, b.shape)
        if np.issubdtype(b.dtype, np.floating):
            assert np.abs(a - b).max() <= 1e-5, (label, key, np.abs(a - b).max())
        else:
            assert (a == b).all(), (label, key)


@pytest.mark.parametrize("kind", ["whisper", "wav2vec2"])
def test_speech_processors_match_transformers(folders, kind):
    ours = AutoProcessor.from_pretrained(folders[kind])
    theirs = transformers.AutoProcessor.from_pretrained(folders[kind])
    assert type(ours).__name__ == type(theirs).__name__
    waves = _waves()
    padding = {} if kind == "whisper" else {"padding": True}
    assert_same(ours(waves, sampling_rate=RATE, **padding),
                theirs(waves, sampling_rate=RATE, return_tensors="np", **padding), f"{kind} audio")
    both_ours = ours(audio=waves, text=TEXTS, sampling_rate=RATE, padding=True, return_tensors="np")
    both_theirs = theirs(audio=waves, text=TEXTS, sampling_rate=RATE, padding=True, return_tensors="np")
    assert "labels" in both_ours
    assert_same(both_ours, both_theirs, f"{kind} audio + text")
    assert_same(ours(text=TEXTS, padding=True, return_tensors="np"),
                theirs(text=TEXTS, padding=True, return_tensors="np"), f"{kind} text")
    ids = both_ours["labels"]
    assert ours.batch_decode(ids, skip_special_tokens=True) == theirs.batch_decode(ids, skip_special_tokens=True)


def test_clip_processor_matches_transformers(folders):
    ours = AutoProcessor.from_pretrained(folders["clip"])
    theirs = transformers.AutoProcessor.from_pretrained(folders["clip"])
    assert type(ours).__name__ == type(theirs).__name__ == "CLIPProcessor"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8) for _ in range(2)]
    assert_same(ours(text=["a cat.", "dogs"], images=images, padding=True, return_tensors="np"),
                theirs(text=["a cat.", "dogs"], images=images, padding=True, return_tensors="np"), "clip both")
    assert_same(ours(images=images), theirs(images=images, return_tensors="np"), "clip images")


def test_folders_without_a_processor_class_fall_back_like_transformers(folders):
    assert isinstance(AutoProcessor.from_pretrained(folders["bert"]), PreTrainedTokenizer)
    assert type(transformers.AutoProcessor.from_pretrained(folders["bert"])).__name__.startswith("Bert")
    assert isinstance(AutoProcessor.from_pretrained(folders["vit"]), ImageProcessor)


def test_bad_folders_and_calls_get_clear_errors(folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        AutoProcessor.from_pretrained(tmp_path / "missing")
    with pytest.raises(ProcessorError, match="Unrecognized processing class"):
        AutoProcessor.from_pretrained(tmp_path)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "preprocessor_config.json").write_text(json.dumps({"processor_class": "LlavaProcessor"}))
    with pytest.raises(ProcessorError, match="LlavaProcessor"):
        AutoProcessor.from_pretrained(odd)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ProcessorError, match="not readable JSON"):
        AutoProcessor.from_pretrained(broken)
    processor = AutoProcessor.from_pretrained(folders["whisper"])
    with pytest.raises(ValueError, match="either an `audio` or `text`"):
        processor()
    with pytest.raises(TypeError, match="unknown option 'colour'"):
        processor(_waves(), colour="red")
    with pytest.raises(ValueError, match="return_tensors='pt'"):
        processor(_waves(), return_tensors="pt")
    with pytest.raises(ValueError, match="sampling_rate=8000"):
        processor(_waves(), sampling_rate=8000)


def test_whisper_tokenizer_prefix_and_timestamps_match_transformers(folders, tmp_path):
    from core.tokenization import AutoTokenizer

    folder = tmp_path / "whisper-en"
    folder.mkdir()
    _tokenizer_files(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "language": "english",
                                                              "task": "transcribe"}))
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    assert type(ours).__name__ == "WhisperTokenizer"
    assert ours(TEXTS)["input_ids"] == theirs(TEXTS)["input_ids"]
    assert ours("hi", add_special_tokens=False)["input_ids"] == theirs("hi", add_special_tokens=False)["input_ids"]
    for kwargs in ({"no_timestamps": False}, {"task": "translate", "language": "en"}):
        assert ours.get_decoder_prompt_ids(**kwargs) == theirs.get_decoder_prompt_ids(**kwargs)
        assert ours(TEXTS[0])["input_ids"] == theirs(TEXTS[0])["input_ids"]
    # Generated tokens with timestamp pairs (61 = <|0.00|>), one segment restarting at 0.00.
    SOT, EN, TRANSCRIBE, EOS, PREV = 51, 52, 56, 50, 58
    text = theirs("hello world", add_special_tokens=False)["input_ids"]
    tokens = [SOT, EN, TRANSCRIBE, 61, *text[:3], 62, 62, *text[3:], 63, 61, *text[:2], 62, EOS]
    for kwargs in ({}, {"skip_special_tokens": True}, {"decode_with_timestamps": True},
                   {"output_offsets": True}, {"output_offsets": True, "skip_special_tokens": True}):
        assert ours.decode(tokens, **kwargs) == theirs.decode(tokens, **kwargs), kwargs
    prompted = [PREV, *text[:2], *tokens]
    assert ours.decode(prompted, skip_special_tokens=True) == theirs.decode(prompted, skip_special_tokens=True)
    assert ours.batch_decode([tokens, tokens[:5]], skip_special_tokens=True) == theirs.batch_decode(
        [tokens, tokens[:5]], skip_special_tokens=True)
    with pytest.raises(ValueError, match="Unsupported language: 'klingon'"):
        ours.set_prefix_tokens(language="klingon")


def test_whisper_language_table_is_transformers():
    from transformers.models.whisper import tokenization_whisper as reference

    from core.tokenization import whisper

    assert list(whisper.LANGUAGES.items()) == list(reference.LANGUAGES.items())
    assert whisper.TO_LANGUAGE_CODE == reference.TO_LANGUAGE_CODE
