"""core.tokenization against transformers 5 for the encoder-decoder tokenizers and GPT-Sw3.

Every tokenizer model is trained here (SentencePiece on a small corpus, a byte-level BPE with the
`tokenizers` trainer), built as the transformers tokenizer, saved with `save_pretrained`, and loaded
by both libraries from that folder. transformers 5 saves T5, mBART, Pegasus and BART as tokenizer.json;
M2M100, Marian, PLBart and GPT-Sw3 as their SentencePiece models (+ vocab.json). The BART folder is
also checked in its "slow" form, vocab.json + merges.txt only.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import sacremoses
import sentencepiece
import tokenizers
import transformers  # the reference; a test-only dependency
from tokenizers import models, pre_tokenizers, trainers

from core.tokenization import AutoTokenizer

CORPUS = """The quick brown fox jumps over the lazy dog.
What is the capital of Japan? Tokyo is the capital of Japan.
Héllo wörld, naïve café, straße, ÀÉÎÕÜ.
def maximum(a, b): return max(a, b)
Tokenizers split words into pieces; don't they? It's 3.14 and 42%.
Das ist ein kleiner Frosch. Ich bin ein Hund und du bist eine Katze.
A second sequence, a short one, and a longer sentence with more words in it.
""" * 20

TEXTS = [
    "Hello world. The quick brown fox!",
    "Tokyo is the capital of Japan, isn't it?",
    "Héllo wörld, naïve café",
    "",
    "  leading and   inner spaces ",
    "special </s> tokens <unk> in the <pad> text",
    "a",
]
TARGETS = ["Ich bin ein kleiner Frosch.", "Das ist", "", "du bist eine Katze und ein Hund", "x", "ein", "Frosch"]


def _spm(tmp, name, **kwargs):
    sentencepiece.SentencePieceTrainer.train(
        input=str(tmp / "corpus.txt"), model_prefix=str(tmp / name), vocab_size=120, character_coverage=1.0,
        minloglevel=2, hard_vocab_limit=False, **kwargs,
    )  # fmt: skip
    return str(tmp / f"{name}.model")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spm")
    (tmp / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return {
        "t5": _spm(tmp, "t5", model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1),
        "fairseq": _spm(tmp, "fairseq", model_type="unigram"),
        "bpe": _spm(tmp, "bpe", model_type="bpe"),
        "dir": tmp,
    }


def _source(tmp, files: dict[str, str], config: dict | None = None) -> str:
    """A folder as a Hub checkpoint would have it: the model files and a tokenizer_config.json."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copy(path, tmp / name)
    if config is not None:
        (tmp / "tokenizer_config.json").write_text(json.dumps(config))
    return str(tmp)


def _save(reference, folder) -> str:
    reference.save_pretrained(folder)
    return str(folder)


def _sp_pieces(path):
    processor = sentencepiece.SentencePieceProcessor(model_file=path)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def build(kind: str, m, tmp) -> tuple[object, str]:
    """(transformers tokenizer, folder it saved) for one tokenizer kind."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "t5_slow":  # a Hub folder without tokenizer.json: transformers converts spiece.model
            config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 7}
            src = _source(tmp / "src", {"spiece.model": m["t5"]}, config)
            return transformers.AutoTokenizer.from_pretrained(src), src
        if kind == "t5":
            src = _source(tmp / "src", {"spiece.model": m["t5"]}, {"tokenizer_class": "T5Tokenizer"})
            ref = transformers.T5Tokenizer.from_pretrained(src, extra_ids=7)
        elif kind == "mbart":
            src = _source(tmp / "src", {"sentencepiece.bpe.model": m["fairseq"]})
            ref = transformers.MBartTokenizer.from_pretrained(src, src_lang="de_DE", tgt_lang="ro_RO")
        elif kind == "pegasus":
            src = _source(tmp / "src", {"spiece.model": m["t5"]})
            ref = transformers.PegasusTokenizer.from_pretrained(src, offset=7)
        elif kind in ("bart", "bart_slow"):
            backend = tokenizers.Tokenizer(models.BPE())
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            backend.train(
                [str(m["dir"] / "corpus.txt")],
                trainers.BpeTrainer(
                    vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                ),
            )  # fmt: skip
            src = tmp / "src"
            src.mkdir(parents=True)
            backend.model.save(str(src))
            (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BartTokenizer"}))
            ref = transformers.BartTokenizer.from_pretrained(str(src))
            if kind == "bart_slow":
                return ref, str(src)
        elif kind == "m2m100":
            pieces = _sp_pieces(m["fairseq"])
            vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
            for piece in pieces[3:]:
                vocab[piece] = len(vocab)
            src = tmp / "src"
            src.mkdir(parents=True)
            (src / "vocab.json").write_text(json.dumps(vocab))
            shutil.copy(m["fairseq"], src / "sentencepiece.bpe.model")
            ref = transformers.M2M100Tokenizer(
                str(src / "vocab.json"), str(src / "sentencepiece.bpe.model"), src_lang="fr", tgt_lang="de"
            )
        elif kind == "marian":
            vocab = {"</s>": 0, "<unk>": 1}
            for piece in _sp_pieces(m["fairseq"])[3:] + _sp_pieces(m["bpe"])[3:]:
                vocab.setdefault(piece, len(vocab))
            vocab[">>de<<"] = len(vocab)
            vocab["<pad>"] = len(vocab)
            src = tmp / "src"
            src.mkdir(parents=True)
            (src / "vocab.json").write_text(json.dumps(vocab))
            shutil.copy(m["fairseq"], src / "source.spm")
            shutil.copy(m["bpe"], src / "target.spm")
            ref = transformers.MarianTokenizer(
                str(src / "source.spm"), str(src / "target.spm"), str(src / "vocab.json"),
                source_lang="en", target_lang="de", model_max_length=12,
            )  # fmt: skip
        elif kind == "plbart":
            ref = transformers.PLBartTokenizer(vocab_file=m["fairseq"], src_lang="python", tgt_lang="en_XX")
        elif kind == "plbart_multi":
            ref = transformers.PLBartTokenizer(vocab_file=m["fairseq"], language_codes="multi", src_lang="java")
        elif kind == "fsmt":
            # BPE with </w> word ends over Moses-tokenized text (as fairseq's WMT19 models were built)
            moses = sacremoses.MosesTokenizer(lang="en")
            words = [" ".join(moses.tokenize(line, aggressive_dash_splits=True, escape=True))
                     for line in CORPUS.splitlines()]
            backend = tokenizers.Tokenizer(models.BPE(end_of_word_suffix="</w>"))
            backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            backend.train_from_iterator(words, trainers.BpeTrainer(
                vocab_size=200, end_of_word_suffix="</w>", special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
            src = tmp / "src"
            src.mkdir(parents=True)
            vocab = backend.get_vocab()
            (src / "vocab-src.json").write_text(json.dumps(vocab))
            # a target vocabulary numbered differently: decoding must read it, not the source one
            target = {token: (index * 7) % len(vocab) for token, index in vocab.items() if index >= 4}
            target.update({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3})
            (src / "vocab-tgt.json").write_text(json.dumps(target))
            merges = json.loads(backend.to_str())["model"]["merges"]
            (src / "merges.txt").write_text("".join(" ".join(merge) + "\n" for merge in merges))
            ref = transformers.FSMTTokenizer(langs=["en", "de"], src_vocab_file=str(src / "vocab-src.json"),
                                             tgt_vocab_file=str(src / "vocab-tgt.json"),
                                             merges_file=str(src / "merges.txt"))
        elif kind == "gptsw3":
            ref = transformers.GPTSw3Tokenizer(vocab_file=m["bpe"], name_or_path="tiny-sw3")
        else:
            raise ValueError(kind)
        return ref, _save(ref, tmp / "saved")


KINDS = ["t5", "t5_slow", "mbart", "pegasus", "bart", "bart_slow", "m2m100", "marian", "plbart", "plbart_multi", "gptsw3", "fsmt"]
SPECIAL_TEXT = {
    "t5": "fill <extra_id_0> and <extra_id_3> please",
    "t5_slow": "fill <extra_id_0> and <extra_id_6> please</s>",
    "mbart": "en_XX code <mask> and ro_RO",
    "pegasus": "a <mask_1> b <mask_2> c <unk_3>",
    "bart": "a <mask> b</s>",
    "bart_slow": "a <mask> b</s>",
    "m2m100": "__en__ code </s> and __de__ text",
    "marian": ">>de<< Ich bin </s> ein",
    "plbart": "def f(x): <mask> __python__ return",
    "plbart_multi": "def f(x): __go__ return",
    "fsmt": "Tokyo «is» the capital -- 3.14% </s> of Japan，isn't it？\u200b  \n x",
    "gptsw3": "Hej\u2009värld\u00a0och <|endoftext|> e\u0301n <s> text\x07!",
}


@pytest.fixture(scope="module", params=KINDS)
def pair(request, models_dir, tmp_path_factory):
    reference, folder = build(request.param, models_dir, tmp_path_factory.mktemp(request.param))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request.param not in ("m2m100", "marian", "plbart", "plbart_multi", "gptsw3", "fsmt"):
            reference = transformers.AutoTokenizer.from_pretrained(folder)  # what the folder says
    return request.param, reference, AutoTokenizer.from_pretrained(folder)


def _plain(encoding) -> dict:
    return {key: (value.tolist() if isinstance(value, np.ndarray) else value) for key, value in encoding.items()}


def _calls(kind):
    texts = TEXTS + [SPECIAL_TEXT[kind]]
    return [
        dict(text=texts[0]),
        dict(text=texts),
        dict(text=texts, padding=True),
        dict(text=texts, padding="max_length", max_length=16, truncation=True),
        dict(text=texts, max_length=5, truncation=True, padding=True, return_tensors="np"),
        dict(text=texts, text_target=TARGETS + [texts[-1]], padding=True),
        dict(text=texts[:3], text_target=TARGETS[:3], max_length=6, max_target_length=4, truncation=True),
        dict(text_target=TARGETS),
        dict(text=texts[:4], text_pair=TARGETS[:4], max_length=9, truncation=True),
        dict(text=texts, add_special_tokens=False),
        dict(text=texts[:3], padding="longest", padding_side="left", return_special_tokens_mask=True),
    ]


@pytest.mark.parametrize("call", range(11))
def test_encoding_matches(pair, call):
    kind, reference, ours = pair
    kwargs = _calls(kind)[call]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _plain(reference(**kwargs))
    assert _plain(ours(**kwargs)) == expected, (kind, kwargs)


def test_tokens_special_tokens_and_decoding(pair):
    kind, reference, ours = pair
    texts = TEXTS + [SPECIAL_TEXT[kind]]
    assert ours.all_special_tokens == reference.all_special_tokens or set(ours.all_special_tokens) == set(
        reference.all_special_tokens
    ), kind
    assert ours.all_special_ids == [reference.convert_tokens_to_ids(t) for t in ours.all_special_tokens]
    for name in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token"):
        assert getattr(ours, name + "_id") == getattr(reference, name + "_id"), (kind, name)
    assert ours.vocab_size == reference.vocab_size and len(ours) == len(reference), kind
    for text in texts:
        assert ours.tokenize(text) == reference.tokenize(text), (kind, text)
    batch = reference(texts, text_target=TARGETS + [texts[-1]], padding=True)
    ids = batch["input_ids"] + batch["labels"] + [list(range(len(reference)))]
    for skip in (False, True):
        expected = reference.batch_decode(ids, skip_special_tokens=skip)
        assert ours.batch_decode(ids, skip_special_tokens=skip) == expected, (kind, skip)
        assert ours.decode(ids[0], skip_special_tokens=skip) == expected[0]


def test_language_switching(models_dir, tmp_path):
    """src_lang/tgt_lang given to from_pretrained and set afterwards, as in transformers."""
    for kind, src, tgt in (("mbart", "fi_FI", "zh_CN"), ("m2m100", "ja", "zh"), ("plbart", "java", "python")):
        reference, folder = build(kind, models_dir, tmp_path / kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = type(reference).from_pretrained(folder, src_lang=src, tgt_lang=tgt)
            ours = AutoTokenizer.from_pretrained(folder, src_lang=src, tgt_lang=tgt)
            call = dict(text=TEXTS[:2], text_target=TARGETS[:2])
            assert _plain(ours(**call)) == _plain(reference(**call)), kind
            reference.src_lang = ours.src_lang = tgt
            assert _plain(ours(**call)) == _plain(reference(**call)), kind
            assert ours.src_lang == reference.src_lang


def test_marian_encodes_targets_with_the_target_model(models_dir, tmp_path):
    reference, folder = build("marian", models_dir, tmp_path)
    ours = AutoTokenizer.from_pretrained(folder)
    target = ours(text_target="Frosch Katze")["input_ids"]
    assert target != ours("Frosch Katze")["input_ids"]
    assert target == reference(text_target="Frosch Katze")["input_ids"]
    assert ours("Frosch Katze")["input_ids"] == reference("Frosch Katze")["input_ids"]  # back in source mode


@pytest.mark.parametrize(
    "kind, missing", [("m2m100", "vocab.json"), ("marian", "target.spm"), ("plbart", "sentencepiece.bpe.model"),
                      ("gptsw3", "spiece.model"), ("bart_slow", "merges.txt")],
)  # fmt: skip
def test_missing_files_are_named(models_dir, tmp_path, kind, missing):
    _, folder = build(kind, models_dir, tmp_path)
    os.remove(os.path.join(folder, missing))
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        AutoTokenizer.from_pretrained(folder)
