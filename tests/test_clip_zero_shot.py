"""CLIP with its real tokenizer: zero-shot scores of solid-colour images against colour-name prompts.

The CLIP BPE ships (MIT) inside `open-clip-torch` as bpe_simple_vocab_16e6.txt.gz (a data package of
scripts/setup.sh); its vocab.json / merges.txt are derived here as CLIP's tokenizer defines them (the 256
byte symbols, the same with `</w>`, one token per merge, then the two special tokens: 49,408 ids).
transformers' CLIPTokenizer is built from them and saved with a random-weight CLIPModel of that
vocabulary; Rosetta and transformers then read the same folder: token ids identical, and the
zero-shot-image-classification pipeline gives identical labels in identical order with scores ≤ 1e-5.
"""
import gzip
import importlib.util
import json
import pathlib

import numpy as np
import pytest
import transformers
from PIL import Image

from core import AutoTokenizer, pipeline
from tests import parity

COLOURS = {"red": (220, 20, 30), "green": (30, 180, 40), "blue": (20, 40, 210), "yellow": (240, 220, 30),
           "black": (5, 5, 5), "white": (250, 250, 250)}
PROMPTS = ["a photo of a red car.", "A GREEN apple, on a table!", "blue   sky  ", "colour: #ffff00 (yellow)",
           "naïve café — déjà vu", "", "it's 3:14pm; don't stop"]
MERGES = 49152 - 256 - 2   # CLIP keeps this many merges of the file


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE, in byte order of CLIP's (and GPT-2's) table:
    printable Latin-1 bytes stand for themselves, the others for code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    table = {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}
    return [table[b] for b in keep] + [table[b] for b in range(256) if b not in keep]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None, "open-clip-torch (a data package) is missing: run bash scripts/setup.sh"
    source = pathlib.Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:MERGES + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    assert len(vocab) == 49408
    root = tmp_path_factory.mktemp("clip_real_vocab")
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    reference_tokenizer = transformers.CLIPTokenizer(vocab=str(root / "vocab.json"), merges=str(root / "merges.txt"),
                                                     model_max_length=16)
    out = root / "clip"
    reference_tokenizer.save_pretrained(out)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=12, intermediate_size=17, num_hidden_layers=2,
                         num_attention_heads=3, max_position_embeddings=16, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(hidden_size=15, intermediate_size=23, num_hidden_layers=2, num_attention_heads=5,
                           image_size=16, patch_size=4), projection_dim=8, logit_scale_init_value=2.6592)
    parity.build_eager(transformers.CLIPModel, config, 11).save_pretrained(out)
    transformers.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
                                    ).save_pretrained(out)
    return out


def test_real_clip_vocabulary_tokenizes_like_transformers(folder):
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    assert len(ours) == len(theirs) == 49408
    for text in PROMPTS:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
        assert ours.tokenize(text) == theirs.tokenize(text), text
    batch = dict(padding="max_length", truncation=True, max_length=16)
    assert ours(PROMPTS, **batch)["input_ids"] == theirs(PROMPTS, **batch)["input_ids"]
    ids = theirs(PROMPTS)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == theirs.batch_decode(ids, skip_special_tokens=skip)


def test_zero_shot_colours_match_transformers(folder, tmp_path, record_property):
    images = [Image.new("RGB", (20, 24), rgb) for rgb in COLOURS.values()]
    path = tmp_path / "yellow.png"
    images[3].save(path)
    ours = pipeline("zero-shot-image-classification", model=folder)
    theirs = transformers.pipeline("zero-shot-image-classification", model=str(folder))
    worst = 0.0
    labels = list(COLOURS)
    for inputs, kwargs in [(images, {"candidate_labels": labels}), (str(path), {"candidate_labels": labels[::-1]}),
                           (images[:2], {"candidate_labels": labels[:3], "hypothesis_template": "a {} square"})]:
        got, want = ours(inputs, **kwargs), theirs(inputs, **kwargs)
        got, want = (got, want) if isinstance(inputs, list) else ([got], [want])
        for row_got, row_want in zip(got, want, strict=True):
            assert [r["label"] for r in row_got] == [r["label"] for r in row_want]
            diff = np.abs(np.array([r["score"] for r in row_got]) - np.array([r["score"] for r in row_want])).max()
            worst = max(worst, float(diff))
    assert worst <= parity.TOL
    record_property("parity:clip zero-shot (real vocabulary) vs transformers", worst)
