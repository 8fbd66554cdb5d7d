"""Tokenizers of the encoder-decoder models (and GPT-Sw3) whose folders need more than the generic backends.

transformers 5 saves T5, Pegasus and BART tokenizers as tokenizer.json (the generic `tokenizers`
backend runs them); mBART's tokenizer.json needs its language code suffix rebuilt from
`src_lang`/`tgt_lang`. M2M100, Marian, PLBart and GPT-Sw3 stay "slow" (Python) tokenizers in
transformers 5: a SentencePiece model plus, for M2M100 and Marian, a vocab.json that renumbers its
pieces. `SlowSentencePieceTokenizer` reproduces transformers' Python tokenizer pipeline for them:
added and special tokens split out of the text first (honouring lstrip/rstrip), every other chunk
through SentencePiece, pieces to ids through the model's vocabulary, then the model's special-token
layout, Python truncation and the model's `convert_tokens_to_string` for decoding. A BART/RoBERTa
folder with only vocab.json + merges.txt gets the byte-level BPE pipeline transformers builds.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata

import sentencepiece
import tokenizers
from tokenizers import decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from .base import EncodedSequence, PreTrainedTokenizer
from .sentencepiece_backend import SentencePieceTokenizer
from .settings import AddedTokenSpec, TokenizerSettings
from .tokenizers_backend import CLIPTokenizer, TokenizersTokenizer
from .whisper import WhisperTokenizer

WORD_BOUNDARY = "\u2581"


def _read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def require_file(folder: str, name: str, tokenizer_class: str | None) -> str:
    """The path of `name` in `folder`, or a FileNotFoundError naming the file and the class needing it."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{tokenizer_class or 'this tokenizer'} needs {name} in {folder!r}, which is missing. "
            f"Found: {sorted(os.listdir(folder))}"
        )
    return path


def python_truncate(
    ids: list[int], pair_ids: list[int] | None, to_remove: int, strategy: str, side: str
) -> tuple[list[int], list[int] | None]:
    """transformers' Python `truncate_sequences` (it differs from the `tokenizers` rule for pairs)."""
    if to_remove <= 0:
        return ids, pair_ids

    def cut(sequence: list[int], count: int) -> list[int]:
        if count <= 0:
            return sequence
        return sequence[:-count] if side == "right" else sequence[count:]

    if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None):
        if strategy == "only_first" and len(ids) <= to_remove:
            raise ValueError(
                f"truncation='only_first' cannot reach max_length: the first sequence is too short "
                f"({len(ids)} tokens, {to_remove} to remove)"
            )
        return cut(ids, to_remove), pair_ids
    if strategy == "longest_first":
        len_ids, len_pair = len(ids), len(pair_ids)
        first_remove = min(abs(len_pair - len_ids), to_remove)
        second_remove = to_remove - first_remove
        if len_ids > len_pair:
            ids_remove = first_remove + second_remove // 2
            pair_remove = second_remove - second_remove // 2
        else:
            ids_remove = second_remove // 2
            pair_remove = first_remove + second_remove - second_remove // 2
        return cut(ids, ids_remove), cut(pair_ids, pair_remove)
    # only_second
    if pair_ids is None:
        raise ValueError("truncation='only_second' needs a text_pair to truncate")
    if len(pair_ids) <= to_remove:
        raise ValueError(
            f"truncation='only_second' cannot reach max_length: the second sequence is too short "
            f"({len(pair_ids)} tokens, {to_remove} to remove)"
        )
    return ids, cut(pair_ids, to_remove)


class SlowSentencePieceTokenizer(PreTrainedTokenizer):
    """transformers' Python tokenizer pipeline over SentencePiece; subclasses give the vocabulary and layout.

    Subclasses implement `_tokenize(chunk)` (pieces), `_convert_token_to_id`, `_convert_id_to_token`,
    `convert_tokens_to_string`, `vocab_size`, and set `prefix_tokens`/`suffix_tokens` (ids put around
    every sequence, a pair being `prefix A B suffix`) or override `_wrap`.
    """

    def __init__(self, settings: TokenizerSettings):
        super().__init__(settings)
        self.prefix_tokens: list[int] = []
        self.suffix_tokens: list[int] = []
        self._added_ids: dict[str, int] = {}
        self._added_specs: dict[int, object] = {}
        # Special tokens the model numbers itself, never given an added id.
        self._reserved_tokens: set[str] = set()

    def _finish_setup(self) -> None:
        """Registers added tokens (the config's `added_tokens_decoder`, then any special token the
        vocabulary lacks, at the next free id) and the pattern that splits them out of the text."""
        for index, spec in self.settings.added_tokens.items():
            self._added_ids[spec.content] = index
            self._added_specs[index] = spec
        base_vocab = self._base_vocab()
        next_id = len({**base_vocab, **self._added_ids})
        for token in self.all_special_tokens:
            if token in self._added_ids or token in base_vocab or token in self._reserved_tokens:
                continue
            self._added_ids[token] = next_id
            next_id += 1
        matched = sorted({*self._added_ids, *self.all_special_tokens}, key=len, reverse=True)
        self._split_pattern = re.compile("|".join(map(re.escape, matched))) if matched else None

    def _base_vocab(self) -> dict[str, int]:
        return {self._convert_id_to_token(index): index for index in range(self.vocab_size)}

    # ---- model specifics ----------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    def _convert_token_to_id(self, token: str) -> int:
        raise NotImplementedError

    def _convert_id_to_token(self, index: int) -> str:
        raise NotImplementedError

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens).replace(WORD_BOUNDARY, " ").strip()

    def _wrap(self, ids: list[int], pair_ids: list[int] | None) -> tuple[list[int], list[int]]:
        """(ids with special tokens, special-tokens mask)."""
        body = ids + (pair_ids or [])
        input_ids = self.prefix_tokens + body + self.suffix_tokens
        mask = [1] * len(self.prefix_tokens) + [0] * len(body) + [1] * len(self.suffix_tokens)
        return input_ids, mask

    # ---- tokenizing ---------------------------------------------------------------------------

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        self._check_tokenize_arguments(text, pair)
        if add_special_tokens:
            return super().tokenize(text, pair, add_special_tokens)
        tokens = self._split_and_tokenize(text)
        return tokens if pair is None else tokens + self._split_and_tokenize(pair)

    def _split_and_tokenize(self, text: str) -> list[str]:
        if self._split_pattern is None:
            chunks = [text]
        else:
            chunks, start = [], 0
            for match in self._split_pattern.finditer(text):
                chunks += [text[start : match.start()], match.group()]
                start = match.end()
            chunks.append(text[start:])
            chunks = [chunk for chunk in chunks if chunk]
        split_tokens = set(self._added_ids) | set(self.all_special_tokens)
        for i, chunk in enumerate(chunks):
            if chunk not in self._added_ids:
                continue
            spec = self._added_specs.get(self._added_ids[chunk])
            if spec is None:
                continue
            if spec.rstrip and i + 1 < len(chunks):
                chunks[i + 1] = chunks[i + 1].lstrip()
            if spec.lstrip and i > 0:
                chunks[i - 1] = chunks[i - 1].rstrip()
        tokens = []
        for chunk in chunks:
            if not chunk:
                continue
            tokens += [chunk] if chunk in split_tokens else self._tokenize(chunk)
        return tokens

    def _token_to_id(self, token: str) -> int | None:
        if token in self._added_ids:
            return self._added_ids[token]
        return self._convert_token_to_id(token)

    def _id_to_token(self, index: int) -> str | None:
        if index in self._added_specs:
            return self._added_specs[index].content
        for token, token_id in self._added_ids.items():
            if token_id == index:
                return token
        if 0 <= index < self.vocab_size:
            return self._convert_id_to_token(index)
        return None

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self._wrap([], [] if pair else None)[0])

    def _encode_batch(self, inputs, add_special_tokens, truncation, max_length, return_offsets):
        encoded = []
        for text, pair in inputs:
            ids = [self._token_to_id(token) for token in self._split_and_tokenize(text)]
            pair_ids = None if pair is None else [self._token_to_id(t) for t in self._split_and_tokenize(pair)]
            if truncation is not None:
                total = len(ids) + len(pair_ids or [])
                if add_special_tokens:
                    total += self.num_special_tokens_to_add(pair is not None)
                ids, pair_ids = python_truncate(ids, pair_ids, total - max_length, truncation, self.truncation_side)
            if add_special_tokens:
                input_ids, special_mask = self._wrap(ids, pair_ids)
            else:
                input_ids, special_mask = ids + (pair_ids or []), [0] * (len(ids) + len(pair_ids or []))
            type_ids = [0] * len(input_ids)
            encoded.append(EncodedSequence(input_ids, type_ids, special_mask))
        return encoded

    def _decode_ids(self, ids, skip_special_tokens):
        skipped = set(self.all_special_ids) if skip_special_tokens else set()
        tokens = [self._id_to_token(index) for index in ids if index not in skipped]
        return self.convert_tokens_to_string([token for token in tokens if token is not None])

    def __len__(self) -> int:
        return len(self.get_vocab())

    def get_vocab(self) -> dict[str, int]:
        vocab = self._base_vocab()
        vocab.update(self._added_ids)
        return vocab


class _SourceTargetLanguages:
    """`src_lang`/`tgt_lang` switching shared by the language-code tokenizers."""

    def _init_languages(self, default_src: str | None) -> None:
        src = self.settings.get("src_lang")
        self._src_lang = default_src if src is None else self._normalize_lang(src)
        tgt = self.settings.get("tgt_lang")
        self.tgt_lang = None if tgt is None else self._normalize_lang(tgt)
        self._set_lang(self._src_lang)

    def _normalize_lang(self, lang: str) -> str:
        return lang

    @property
    def src_lang(self) -> str:
        return self._src_lang

    @src_lang.setter
    def src_lang(self, lang: str) -> None:
        self._src_lang = self._normalize_lang(lang)
        self._set_lang(self._src_lang)

    def _switch_to_input_mode(self) -> None:
        self._set_lang(self._src_lang)

    def _switch_to_target_mode(self) -> None:
        self._set_lang(self.tgt_lang)

    def _set_lang(self, lang: str | None) -> None:
        raise NotImplementedError


# ---- mBART (tokenizer.json) ---------------------------------------------------------------------

MBART_LANGUAGE_CODES = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]  # fmt: skip


class MBartTokenizer(_SourceTargetLanguages, TokenizersTokenizer):
    """mBART: `A </s> src_lang` for inputs, `A </s> tgt_lang` for targets (`tgt_lang` None: the source's)."""

    def __init__(self, backend: tokenizers.Tokenizer, settings: TokenizerSettings):
        for code in MBART_LANGUAGE_CODES:
            if code not in settings.extra_special_tokens:
                settings.extra_special_tokens.append(code)
        super().__init__(backend, settings)
        self._init_languages("en_XX")

    def _switch_to_target_mode(self) -> None:
        if self.tgt_lang is None:
            self.tgt_lang = self._src_lang  # transformers keeps it
        self._set_lang(self.tgt_lang)

    def _set_lang(self, lang: str | None) -> None:
        code_id = self.convert_tokens_to_ids(lang)
        eos = self.eos_token
        self._backend.post_processor = processors.TemplateProcessing(
            single=["$A", eos, lang],
            pair=["$A", "$B", eos, lang],
            special_tokens=[(eos, self.eos_token_id), (lang, code_id)],
        )


# ---- M2M100 -------------------------------------------------------------------------------------

M2M100_LANGUAGE_CODES = {
    "m2m100": ["af", "am", "ar", "ast", "az", "ba", "be", "bg", "bn", "br", "bs", "ca", "ceb", "cs", "cy", "da", "de", "el", "en", "es", "et", "fa", "ff", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha", "he", "hi", "hr", "ht", "hu", "hy", "id", "ig", "ilo", "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko", "lb", "lg", "ln", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "my", "ne", "nl", "no", "ns", "oc", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sd", "si", "sk", "sl", "so", "sq", "sr", "ss", "su", "sv", "sw", "ta", "th", "tl", "tn", "tr", "uk", "ur", "uz", "vi", "wo", "xh", "yi", "yo", "zh", "zu"],
    "wmt21": ["en", "ha", "is", "ja", "cs", "ru", "zh", "de"],
}  # fmt: skip


class M2M100Tokenizer(_SourceTargetLanguages, SlowSentencePieceTokenizer):
    """M2M100: vocab.json renumbers the SentencePiece pieces; `__xx__` language tokens follow it.
    Layout `__src__ A </s>` (inputs) and `__tgt__ A </s>` (targets)."""

    files = ("vocab.json", "sentencepiece.bpe.model")

    def __init__(self, folder: str, settings: TokenizerSettings):
        self.encoder = _read_json(require_file(folder, "vocab.json", settings.tokenizer_class))
        self.decoder = {index: token for token, index in self.encoder.items()}
        spm_file = require_file(folder, "sentencepiece.bpe.model", settings.tokenizer_class)
        self.sp_model = sentencepiece.SentencePieceProcessor(model_file=spm_file)
        super().__init__(settings)
        codes = M2M100_LANGUAGE_CODES[settings.get("language_codes", "m2m100")]
        self.lang_token_to_id = {f"__{code}__": len(self.encoder) + i for i, code in enumerate(codes)}
        # The language tokens are special (split out of the text, skipped in decoding) only when the
        # configuration lists them: transformers 5's M2M100Tokenizer no longer adds them itself.
        self._finish_setup()
        self._init_languages("en")

    def _id_to_token(self, index):
        # transformers: any id converts, to a language token or (unknown ids) to the unk token.
        token = super()._id_to_token(index)
        return self._convert_id_to_token(index) if token is None else token

    def _set_lang(self, lang: str | None) -> None:
        self.prefix_tokens = [self.lang_token_to_id[f"__{lang}__"]]
        self.suffix_tokens = [self.eos_token_id]

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _tokenize(self, text):
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token):
        if token in self.lang_token_to_id:
            return self.lang_token_to_id[token]
        return self.encoder.get(token, self.encoder[self.unk_token])

    def _convert_id_to_token(self, index):
        for token, token_id in self.lang_token_to_id.items():
            if token_id == index:
                return token
        return self.decoder.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens):
        special = set(self.all_special_tokens)
        pieces, out = [], ""
        for token in tokens:
            if token in special:
                out += self.sp_model.decode(pieces) + token
                pieces = []
            else:
                pieces.append(token)
        return (out + self.sp_model.decode(pieces)).strip()


# ---- Marian -------------------------------------------------------------------------------------


class MarianTokenizer(SlowSentencePieceTokenizer):
    """Marian: source.spm for inputs, target.spm for `text_target`, one vocab.json for both (or a
    target_vocab.json with `separate_vocabs`); `A </s>`; a leading `>>xx<<` code is kept whole."""

    def __init__(self, folder: str, settings: TokenizerSettings):
        cls = settings.tokenizer_class
        self.encoder = _read_json(require_file(folder, "vocab.json", cls))
        self.separate_vocabs = bool(settings.get("separate_vocabs", False))
        if self.separate_vocabs:
            self.target_encoder = _read_json(require_file(folder, "target_vocab.json", cls))
            self.decoder = {index: token for token, index in self.target_encoder.items()}
        else:
            self.decoder = {index: token for token, index in self.encoder.items()}
        self.spm_source = sentencepiece.SentencePieceProcessor(model_file=require_file(folder, "source.spm", cls))
        self.spm_target = sentencepiece.SentencePieceProcessor(model_file=require_file(folder, "target.spm", cls))
        self.current_spm, self.current_encoder = self.spm_source, self.encoder
        super().__init__(settings)
        if self.unk_token not in self.encoder:
            raise ValueError(f"{folder}/vocab.json lacks the unk token {self.unk_token!r}")
        self._finish_setup()

    def _switch_to_input_mode(self) -> None:
        self.current_spm, self.current_encoder = self.spm_source, self.encoder

    def _switch_to_target_mode(self) -> None:
        self.current_spm = self.spm_target
        if self.separate_vocabs:
            self.current_encoder = self.target_encoder

    def _wrap(self, ids, pair_ids):
        body = ids + (pair_ids or [])
        special = set(self.all_special_ids) - {self.unk_token_id}
        return body + [self.eos_token_id], [int(index in special) for index in body] + [1]

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _base_vocab(self):
        return dict(self.encoder)

    def _tokenize(self, text):
        code = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + self.current_spm.encode(text, out_type=str)

    def _convert_token_to_id(self, token):
        return self.current_encoder.get(token, self.current_encoder[self.unk_token])

    def _convert_id_to_token(self, index):
        if index in self.decoder:
            return self.decoder[index]
        # transformers decodes with the source model unless the vocabularies are separate.
        piece = (self.spm_target if self.separate_vocabs else self.spm_source).IdToPiece(index)
        return piece or self.unk_token

    def convert_tokens_to_string(self, tokens):
        sp_model = self.spm_target if self.separate_vocabs else self.spm_source
        special = set(self.all_special_tokens)
        pieces, out = [], ""
        for token in tokens:
            if token in special:
                out += sp_model.decode_pieces(pieces) + token + " "
                pieces = []
            else:
                pieces.append(token)
        out += sp_model.decode_pieces(pieces)
        return out.replace(WORD_BOUNDARY, " ").strip()


# ---- PLBart -------------------------------------------------------------------------------------

PLBART_LANGUAGE_CODES = {
    "base": ["__java__", "__python__", "__en_XX__"],
    "multi": ["__java__", "__python__", "__en_XX__", "__javascript__", "__php__", "__ruby__", "__go__"],
}
PLBART_LANGUAGE_ALIASES = {
    "java": "__java__",
    "python": "__python__",
    "en_XX": "__en_XX__",
    "javascript": "__javascript__",
    "php": "__php__",
    "ruby": "__ruby__",
    "go": "__go__",
}


class PLBartTokenizer(_SourceTargetLanguages, SlowSentencePieceTokenizer):
    """PLBart: fairseq ids (`<s> <pad> </s> <unk>`, then the SentencePiece pieces shifted by one, then
    the language codes and, for "base", `<mask>`); `A </s> lang` with the source or target language."""

    def __init__(self, folder: str, settings: TokenizerSettings):
        spm_file = require_file(folder, "sentencepiece.bpe.model", settings.tokenizer_class)
        self.sp_model = sentencepiece.SentencePieceProcessor(model_file=spm_file)
        super().__init__(settings)
        self.language_codes = settings.get("language_codes", "base")
        codes = PLBART_LANGUAGE_CODES[self.language_codes]
        size = self.sp_model.get_piece_size()
        self.fairseq_tokens_to_ids = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        if self.language_codes == "base":
            self.fairseq_tokens_to_ids["<mask>"] = size + len(codes) + 1
        self.fairseq_tokens_to_ids.update({code: size + i + 1 for i, code in enumerate(codes)})
        self.fairseq_ids_to_tokens = {index: token for token, index in self.fairseq_tokens_to_ids.items()}
        for code in codes:
            if code not in self.extra_special_tokens:
                self.extra_special_tokens.append(code)
        # transformers drops the reserved tokens from the added tokens: the fairseq table numbers them.
        reserved = {"<s>", "<pad>", "</s>", "<unk>", "<mask>", *codes}
        self.settings.added_tokens = {
            index: spec for index, spec in self.settings.added_tokens.items() if spec.content not in reserved
        }
        self._reserved_tokens = reserved
        self._finish_setup()
        self._init_languages(None if self.language_codes == "base" else "__en_XX__")

    def _normalize_lang(self, lang):
        return PLBART_LANGUAGE_ALIASES.get(lang, lang)

    def _set_lang(self, lang):
        lang = None if lang is None else self._normalize_lang(lang)
        code = None if lang is None else self.fairseq_tokens_to_ids[lang]
        self.prefix_tokens = []
        self.suffix_tokens = [self.eos_token_id] + ([] if code is None else [code])

    def _base_vocab(self):
        vocab = dict(self.fairseq_tokens_to_ids)
        for index in range(self.sp_model.get_piece_size()):
            piece = self.sp_model.IdToPiece(index)
            vocab.setdefault(piece, self.unk_token_id if index == 0 else index + 1)
        return vocab

    @property
    def vocab_size(self) -> int:
        size = self.sp_model.get_piece_size() + len(PLBART_LANGUAGE_CODES[self.language_codes]) + 1
        return size + 1 if self.language_codes == "base" else size

    def _tokenize(self, text):
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token):
        if token in self.fairseq_tokens_to_ids:
            return self.fairseq_tokens_to_ids[token]
        spm_id = self.sp_model.PieceToId(token)
        return spm_id + 1 if spm_id else self.unk_token_id

    def _convert_id_to_token(self, index):
        if index in self.fairseq_ids_to_tokens:
            return self.fairseq_ids_to_tokens[index]
        return self.sp_model.IdToPiece(index - 1)

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None):
        # transformers' PLBartTokenizer always applies its own clean_up_tokenization_spaces setting.
        return super().decode(token_ids, skip_special_tokens, self.clean_up_tokenization_spaces)


# ---- GPT-Sw3 ------------------------------------------------------------------------------------

_SW3_WHITESPACES = {" ", "\u2002", "\u2003", "\u2005", "\u2008", "\u2009", "\u200a", "\u202f", "\u3000", "\ufffc", "\u0084"}  # fmt: skip
_SW3_NON_PRINTING = re.compile(
    f"[{''.join(map(chr, list(range(0, 9)) + list(range(11, 32)) + list(range(127, 160)) + [160, 173, 8203]))}]"
)


class GPTSw3Tokenizer(SlowSentencePieceTokenizer):
    """GPT-Sw3: text cleaned (non-printing characters removed, unusual spaces made plain, NFC) before
    SentencePiece; no special tokens are added; ids are SentencePiece's own."""

    def __init__(self, folder: str, settings: TokenizerSettings):
        spm_file = require_file(folder, "spiece.model", settings.tokenizer_class)
        self.sp_model = sentencepiece.SentencePieceProcessor(model_file=spm_file)
        defaults = {"eos_token": "<|endoftext|>", "unk_token": "<unk>"}
        if "gpt-sw3-7b" in settings.name_or_path:
            defaults.update(pad_token=settings.special_tokens.get("unk_token") or "<unk>", bos_token=None)
        else:
            defaults.update(pad_token="<pad>", bos_token="<s>")
        for name, token in defaults.items():
            if settings.special_tokens.get(name) is None:
                settings.special_tokens[name] = token
        if settings.special_tokens["bos_token"] is None:
            settings.special_tokens["bos_token"] = settings.special_tokens["eos_token"]
        super().__init__(settings)
        self._finish_setup()

    @staticmethod
    def preprocess_text(text: str) -> str:
        text = _SW3_NON_PRINTING.sub("", text)
        text = "".join(" " if char in _SW3_WHITESPACES else char for char in text)
        return unicodedata.normalize("NFC", text)

    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size()

    def _tokenize(self, text):
        return self.sp_model.encode(self.preprocess_text(text), out_type=str)

    def _convert_token_to_id(self, token):
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index):
        return self.sp_model.IdToPiece(index)

    def convert_tokens_to_string(self, tokens):
        special = set(self.all_special_tokens)
        pieces, out, previous_special = [], "", False
        for token in tokens:
            if token in special:
                if not previous_special:
                    out += " "
                out += self.sp_model.decode(pieces) + token
                previous_special, pieces = True, []
            else:
                pieces.append(token)
                previous_special = False
        return out + self.sp_model.decode(pieces)


# ---- FSMT ---------------------------------------------------------------------------------------


class FSMTTokenizer(SlowSentencePieceTokenizer):
    """FSMT (fairseq WMT19): Moses normalisation and tokenization of the source language (sacremoses), then
    BPE with `</w>` word ends over merges.txt; ids from vocab-src.json, decoding through vocab-tgt.json and
    Moses detokenization in the target language; `A </s>` (fairseq adds no bos). As transformers does,
    `text_target` is tokenized with the source settings too."""

    def __init__(self, folder: str, settings: TokenizerSettings):
        try:
            import sacremoses
        except ImportError as error:  # a declared dependency; only a broken install lacks it
            raise ImportError("FSMTTokenizer needs the sacremoses package: pip install sacremoses") from error
        cls = settings.tokenizer_class
        langs = settings.get("langs")
        if not isinstance(langs, (list, tuple)) or len(langs) != 2:
            raise ValueError(f"{folder}/tokenizer_config.json: `langs` must be [source, target], e.g. "
                             f"['en', 'de']; got {langs!r}")
        self.src_lang, self.tgt_lang = langs
        self.encoder = _read_json(require_file(folder, "vocab-src.json", cls))
        self.decoder = {index: token for token, index in _read_json(require_file(folder, "vocab-tgt.json", cls)).items()}
        with open(require_file(folder, "merges.txt", cls), encoding="utf-8") as handle:
            merges = [tuple(line.split()[:2]) for line in handle.read().split("\n")[:-1]]
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.do_lower_case = bool(settings.get("do_lower_case", False))
        self._punct_normalizer = sacremoses.MosesPunctNormalizer(lang=self.src_lang)
        self._moses_tokenizer = sacremoses.MosesTokenizer(lang=self.src_lang)
        self._moses_detokenizer = sacremoses.MosesDetokenizer(lang=self.tgt_lang)
        self._bpe_cache: dict[str, str] = {}
        defaults = {"bos_token": "<s>", "sep_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        for name, token in defaults.items():
            if settings.special_tokens.get(name) is None:
                settings.special_tokens[name] = token
        super().__init__(settings)
        self._finish_setup()

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _base_vocab(self):
        return dict(self.encoder)

    def _wrap(self, ids, pair_ids):
        sep = [self.sep_token_id]
        if pair_ids is None:
            return ids + sep, [0] * len(ids) + [1]
        return ids + sep + pair_ids + sep, [0] * len(ids) + [1] + [0] * len(pair_ids) + [1]

    def _moses_clean(self, text: str) -> str:
        """Moses' replace-unicode-punctuation and remove-non-printing-char steps around its normaliser."""
        for old, new in _FULLWIDTH_PUNCTUATION:
            text = text.replace(old, new)
        text = re.sub(r"。\s*", ". ", text)
        text = self._punct_normalizer.normalize(text)
        return "".join(char for char in text if not unicodedata.category(char).startswith("C"))

    def _bpe(self, token: str) -> str:
        if token in self._bpe_cache:
            return self._bpe_cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        pieces = " ".join(word)
        if pieces == "\n  </w>":  # transformers' special case for a lone newline token
            pieces = "\n</w>"
        self._bpe_cache[token] = pieces
        return pieces

    def _tokenize(self, text):
        if self.do_lower_case:
            text = text.lower()
        words = self._moses_tokenizer.tokenize(self._moses_clean(text), aggressive_dash_splits=True,
                                               return_str=False, escape=True)
        return [piece for word in words if word for piece in self._bpe(word).split(" ")]

    def _convert_token_to_id(self, token):
        return self.encoder.get(token, self.encoder.get(self.unk_token))

    def _convert_id_to_token(self, index):
        return self.decoder.get(index, self.unk_token)

    def _id_to_token(self, index):
        if index in self._added_specs:
            return self._added_specs[index].content
        return self._convert_id_to_token(index)

    def convert_tokens_to_string(self, tokens):
        words = "".join(token.replace(" ", "").replace("</w>", " ") for token in tokens).split()
        return self._moses_detokenizer.detokenize(words)


_FULLWIDTH_PUNCTUATION = [("，", ","), ("、", ","), ("”", '"'), ("“", '"'), ("∶", ":"), ("：", ":"), ("？", "?"),
                          ("《", '"'), ("》", '"'), ("】", "]"), ("％", "%")]


SLOW_TOKENIZER_CLASSES = {
    "M2M100Tokenizer": M2M100Tokenizer,
    "MarianTokenizer": MarianTokenizer,
    "PLBartTokenizer": PLBartTokenizer,
    "GPTSw3Tokenizer": GPTSw3Tokenizer,
    "FSMTTokenizer": FSMTTokenizer,
}
# Classes whose tokenizer.json needs more than the generic `tokenizers` backend (CLIP's is not a seq2seq one).
TOKENIZER_JSON_CLASSES = {"MBartTokenizer": MBartTokenizer, "CLIPTokenizer": CLIPTokenizer,
                          "WhisperTokenizer": WhisperTokenizer}


# ---- byte-level BPE from vocab.json + merges.txt (BART, RoBERTa) --------------------------------

BYTE_LEVEL_BPE_CLASSES = ("BartTokenizer", "RobertaTokenizer")
_ROBERTA_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def byte_level_bpe_from_files(folder: str, settings: TokenizerSettings) -> TokenizersTokenizer:
    """The pipeline transformers' RobertaTokenizer (= BartTokenizer) builds from vocab.json + merges.txt."""
    vocab_file = require_file(folder, "vocab.json", settings.tokenizer_class)
    merges_file = require_file(folder, "merges.txt", settings.tokenizer_class)
    for name, token in _ROBERTA_SPECIAL_TOKENS.items():
        if settings.special_tokens.get(name) is None:
            settings.special_tokens[name] = token
    add_prefix_space = bool(settings.get("add_prefix_space", False))
    trim_offsets = bool(settings.get("trim_offsets", True))
    model = BPE.from_file(vocab_file, merges_file, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    tokenizer = TokenizersTokenizer(backend, settings)
    sep, cls = tokenizer.sep_token, tokenizer.cls_token
    backend.post_processor = processors.RobertaProcessing(
        (sep, tokenizer.sep_token_id), (cls, tokenizer.cls_token_id), trim_offsets, add_prefix_space
    )
    return tokenizer


# ---- T5 from spiece.model alone -----------------------------------------------------------------


class T5SentencePieceTokenizer(SentencePieceTokenizer):
    """A T5 folder with only spiece.model (no tokenizer.json): `A </s>` / `A </s> B </s>`, and
    `extra_ids` sentinels `<extra_id_N>` after the pieces in reverse order (`<extra_id_0>` last),
    as transformers numbers them when it converts the model."""

    def __init__(self, model_file: str, settings: TokenizerSettings):
        for name, token in (("eos_token", "</s>"), ("unk_token", "<unk>"), ("pad_token", "<pad>")):
            if settings.special_tokens.get(name) is None:
                settings.special_tokens[name] = token
        extra_ids = int(settings.get("extra_ids", 100))
        self._sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
        if not any("<extra_id_" in token for token in settings.extra_special_tokens):
            settings.extra_special_tokens += self._sentinels
        settings.config = {**settings.config, "add_bos_token": False, "add_eos_token": True}
        super().__init__(model_file, settings)
        # The sentinels belong to the converted model's vocabulary, so transformers counts them.
        self._sentinel_count = sum(self._piece_id(token) is None for token in self._sentinels)

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size() + getattr(self, "_sentinel_count", 0)

    def _id_to_token(self, index):
        if index in self._added_token_contents:
            return self._added_token_contents[index]
        if 0 <= index < self._processor.get_piece_size():
            return self._processor.id_to_piece(index)
        return None

    def get_vocab(self) -> dict[str, int]:
        size = self._processor.get_piece_size()
        vocab = {self._processor.id_to_piece(index): index for index in range(size)}
        vocab.update(self._added_token_ids)
        return vocab

    def _collect_added_tokens(self) -> dict[str, int]:
        size = self._processor.get_piece_size()
        added = {}
        for i, token in enumerate(reversed(self._sentinels)):
            if self._piece_id(token) is None:
                added[token] = size + i
        self.settings.added_tokens = {
            **{index: AddedTokenSpec(token) for token, index in added.items()},
            **self.settings.added_tokens,
        }
        return super()._collect_added_tokens()


SENTENCEPIECE_CLASSES = {"T5Tokenizer": T5SentencePieceTokenizer}
