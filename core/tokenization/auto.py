"""`AutoTokenizer`: the right tokenizer for a Hugging Face model folder, chosen from the files in it."""
from __future__ import annotations

import glob
import os
from typing import Any

from .base import PreTrainedTokenizer
from .ctc import Wav2Vec2CTCTokenizer
from .sentencepiece_backend import SentencePieceTokenizer
from .seq2seq import (
    BYTE_LEVEL_BPE_CLASSES,
    SENTENCEPIECE_CLASSES,
    SLOW_TOKENIZER_CLASSES,
    TOKENIZER_JSON_CLASSES,
    byte_level_bpe_from_files,
)
from .settings import load_tokenizer_settings
from .tokenizers_backend import TokenizersTokenizer, WordPieceTokenizer

TOKENIZER_FILE = "tokenizer.json"
WORDPIECE_VOCAB_FILE = "vocab.txt"
# The names transformers' SentencePiece tokenizers save their model under; any other *.model is
# tried after these.
SENTENCEPIECE_MODEL_FILES = (
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "sentencepiece.model",
)

# SentencePiece tokenizer classes with their own special-token layout, by transformers class name.
# Unlisted classes get the generic "pieces, then bos/eos as configured" behaviour.
SENTENCEPIECE_TOKENIZER_CLASSES: dict[str, type[SentencePieceTokenizer]] = dict(SENTENCEPIECE_CLASSES)


def find_sentencepiece_model(folder: str) -> str | None:
    for name in SENTENCEPIECE_MODEL_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    others = sorted(glob.glob(os.path.join(glob.escape(folder), "*.model")))
    return others[0] if others else None


class AutoTokenizer:
    """Loads the tokenizer of a local Hugging Face model folder.

    The files decide the backend, in transformers' order of preference:
    1. `tokenizer.json`: the `tokenizers` library runs it as saved;
    2. a SentencePiece `*.model`: the `sentencepiece` library;
    3. a WordPiece `vocab.txt`: BERT's tokenizer, built with `tokenizers` components.
    `tokenizer_config.json` and `special_tokens_map.json` supply the special tokens and settings.
    """

    def __init__(self):
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(folder)")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides: Any) -> PreTrainedTokenizer:
        """The tokenizer saved in `folder`. Keyword arguments override `tokenizer_config.json`
        entries (e.g. `padding_side="left"`, `model_max_length=128`). `gguf_file=...` (a llama.cpp
        GGUF file in `folder`, or `folder` is the file): the tokenizer its metadata describes."""
        folder = os.fspath(folder)
        gguf_file = overrides.pop("gguf_file", None)
        if gguf_file is not None or folder.lower().endswith(".gguf"):
            from core.checkpoint import gguf

            path = gguf.resolve(folder, gguf_file)
            return gguf.GGUFCheckpoint(path).tokenizer(folder if os.path.isdir(folder) else str(path), **overrides)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"{folder!r} is not a directory. AutoTokenizer.from_pretrained reads a local Hugging Face "
                "model folder; Rosetta does not download from the Hub."
            )

        tokenizer_file = os.path.join(folder, TOKENIZER_FILE)
        if os.path.isfile(tokenizer_file):
            # tokenizer.json's post-processor already says where bos/eos go; like transformers, the
            # config's add_bos_token/add_eos_token only count when passed to from_pretrained.
            settings = load_tokenizer_settings(
                folder, overrides, ignored_config_keys=("add_bos_token", "add_eos_token")
            )
            tokenizer_type = TOKENIZER_JSON_CLASSES.get(settings.tokenizer_class, TokenizersTokenizer)
            return tokenizer_type.from_file(tokenizer_file, settings)

        settings = load_tokenizer_settings(folder, overrides)
        if settings.tokenizer_class == "Wav2Vec2CTCTokenizer":
            # the CTC speech models' character vocabulary (vocab.json); a Python tokenizer in transformers 5.
            return Wav2Vec2CTCTokenizer(folder, settings)
        if settings.tokenizer_class in SLOW_TOKENIZER_CLASSES:
            # transformers 5 keeps these as Python tokenizers: their own files, vocabulary and layout.
            return SLOW_TOKENIZER_CLASSES[settings.tokenizer_class](folder, settings)
        if settings.tokenizer_class in BYTE_LEVEL_BPE_CLASSES:
            return byte_level_bpe_from_files(folder, settings)

        sentencepiece_model = find_sentencepiece_model(folder)
        if sentencepiece_model is not None:
            settings = load_tokenizer_settings(folder, overrides)
            tokenizer_type = SENTENCEPIECE_TOKENIZER_CLASSES.get(
                settings.tokenizer_class, SentencePieceTokenizer
            )
            return tokenizer_type(sentencepiece_model, settings)

        vocab_file = os.path.join(folder, WORDPIECE_VOCAB_FILE)
        if os.path.isfile(vocab_file):
            settings = load_tokenizer_settings(folder, overrides, default_tokenizer_class="BertTokenizer")
            return WordPieceTokenizer.from_vocab_file(vocab_file, settings)

        raise FileNotFoundError(
            f"No tokenizer files in {folder!r}. Looked for {TOKENIZER_FILE} (any tokenizer), a SentencePiece "
            f"model ({', '.join(SENTENCEPIECE_MODEL_FILES)} or another *.model) and a WordPiece "
            f"{WORDPIECE_VOCAB_FILE} (BERT). Found: {sorted(os.listdir(folder))}"
        )
