"""`Wav2Vec2CTCTokenizer`: the character vocabulary of the CTC speech models (Wav2Vec2, HuBERT, WavLM).

A folder holds `vocab.json` (token → id; one character per token, plus `<pad>`, `<s>`, `</s>`, `<unk>`
and the word delimiter `|`) and `tokenizer_config.json` with `tokenizer_class: Wav2Vec2CTCTokenizer`.
transformers keeps it a Python ("slow") tokenizer; this reproduces it:

- encoding: multi-character vocabulary tokens (and special tokens) are split out of the text first
  (stripping the whitespace around them, as their saved AddedToken flags say), every other chunk
  becomes its characters with spaces replaced by the word delimiter (upper-cased first with
  `do_lower_case`); no special tokens are added around a sequence;
- decoding (CTC): ids → tokens (vocabulary first, unknown ids → `<unk>`), with
  `skip_special_tokens` the special tokens except the word delimiter dropped *before* grouping,
  runs of the same token grouped into one, the pad token (the CTC blank) removed, the word delimiter
  replaced by `replace_word_delimiter_char` (a space), joined without separators and stripped
  (lower-cased with `do_lower_case`). Nested multi-language vocabularies (`target_lang`) pick the
  language's table.
"""
from __future__ import annotations

import itertools
import os
import re

from .seq2seq import SlowSentencePieceTokenizer, _read_json, require_file
from .settings import AddedTokenSpec, TokenizerSettings

VOCAB_FILE = "vocab.json"
DEFAULT_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


class Wav2Vec2CTCTokenizer(SlowSentencePieceTokenizer):
    """transformers' Wav2Vec2CTCTokenizer (see the module docstring)."""

    def __init__(self, folder: str, settings: TokenizerSettings):
        cls = settings.tokenizer_class
        vocab = _read_json(require_file(folder, VOCAB_FILE, cls))
        self.target_lang = settings.get("target_lang")
        if self.target_lang is not None:
            if self.target_lang not in vocab or not isinstance(vocab[self.target_lang], dict):
                raise ValueError(f"{os.path.join(folder, VOCAB_FILE)}: target_lang={self.target_lang!r} is not one of "
                                 f"its languages ({', '.join(k for k, v in vocab.items() if isinstance(v, dict))})")
            vocab = vocab[self.target_lang]
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise ValueError(f"{os.path.join(folder, VOCAB_FILE)}: expected a token → id mapping (a nested "
                             "multi-language vocabulary needs target_lang in tokenizer_config.json)")
        self.encoder = dict(vocab)
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.word_delimiter_token = settings.get("word_delimiter_token", "|")
        self.replace_word_delimiter_char = settings.get("replace_word_delimiter_char", " ")
        self.do_lower_case = bool(settings.get("do_lower_case", False))
        for name, token in DEFAULT_SPECIAL_TOKENS.items():
            if settings.special_tokens.get(name) is None and name not in settings.config:
                settings.special_tokens[name] = token
        super().__init__(settings)
        self._finish_setup()
        # Multi-character vocabulary tokens are matched whole in the text (transformers adds them as
        # AddedTokens stripping the whitespace on both sides), also when the config does not list them.
        for token, index in self.encoder.items():
            if len(token) > 1 and token not in self._added_ids:
                self._added_ids[token] = index
                self._added_specs.setdefault(index, AddedTokenSpec(token, special=False, lstrip=True, rstrip=True))
        matched = sorted({*self._added_ids, *self.all_special_tokens}, key=len, reverse=True)
        if matched:
            self._split_pattern = re.compile("|".join(map(re.escape, matched)))

    @property
    def vocab_size(self) -> int:
        return len(self.decoder)

    def _base_vocab(self):
        return dict(self.encoder)

    @property
    def word_delimiter_token_id(self) -> int | None:
        return None if self.word_delimiter_token is None else self._token_to_id(self.word_delimiter_token)

    def _tokenize(self, text: str) -> list[str]:
        if self.do_lower_case:
            text = text.upper()
        return list(text.replace(" ", self.word_delimiter_token))

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder.get(token, self.encoder.get(self.unk_token))

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, self.unk_token)

    def _id_to_token(self, index: int) -> str | None:
        if index in self.decoder:                 # the vocabulary wins over added tokens
            return self.decoder[index]
        if index in self._added_specs:
            return self._added_specs[index].content
        return self.unk_token

    def convert_tokens_to_string(self, tokens: list[str], group_tokens: bool = True) -> str:
        if group_tokens:
            tokens = [token for token, _ in itertools.groupby(tokens)]
        chars = [token for token in tokens if token != self.pad_token]
        chars = [self.replace_word_delimiter_char if token == self.word_delimiter_token else token for token in chars]
        text = "".join(chars).strip()
        return text.lower() if self.do_lower_case else text

    def _decode_ids(self, ids, skip_special_tokens):
        tokens = [self._id_to_token(index) for index in ids]
        if skip_special_tokens:
            special = set(self.all_special_tokens)
            tokens = [t for t in tokens if t not in special or t == self.word_delimiter_token]
        return self.convert_tokens_to_string(tokens)
