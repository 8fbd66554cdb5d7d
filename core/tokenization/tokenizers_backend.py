"""Tokenizers run by the Rust `tokenizers` library: from a tokenizer.json, or built from a BERT vocab.txt."""
from __future__ import annotations

import logging

import tokenizers
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from .base import EncodedSequence, PreTrainedTokenizer
from .settings import TokenizerSettings

logger = logging.getLogger(__name__)


class TokenizersTokenizer(PreTrainedTokenizer):
    """A `tokenizers.Tokenizer` pipeline (normalizer, pre-tokenizer, model, post-processor, decoder)."""

    is_fast = True
    supports_offsets = True

    def __init__(self, backend: tokenizers.Tokenizer, settings: TokenizerSettings):
        super().__init__(settings)
        self._backend = backend
        # A tokenizer.json keeps the padding and truncation it was saved with (MiniLM's pads and
        # truncates everything to 128). transformers drops them and applies each call's own.
        backend.no_padding()
        backend.no_truncation()
        self._register_special_tokens()
        if "add_bos_token" in settings.config or "add_eos_token" in settings.config:
            self._install_bos_eos_template()
        self._warned_about_bpe_cleanup = False

    @classmethod
    def from_file(cls, tokenizer_file: str, settings: TokenizerSettings) -> TokenizersTokenizer:
        return cls(tokenizers.Tokenizer.from_file(tokenizer_file), settings)

    @property
    def backend_tokenizer(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer`."""
        return self._backend

    def _register_special_tokens(self) -> None:
        """Makes the configured special tokens added tokens of the backend, as transformers does.

        Added tokens are matched whole in the input text and dropped by skip_special_tokens; a
        special token missing from the vocabulary gets the next free id.
        """
        already_added = {token.content for token in self._backend.get_added_tokens_decoder().values()}
        wanted = [(spec.content, spec.special) for spec in self.settings.added_tokens.values()]
        wanted += [(token, True) for token in self.all_special_tokens]
        to_add = []
        for content, special in wanted:
            if content not in already_added:
                to_add.append(tokenizers.AddedToken(content, special=special, normalized=not special))
                already_added.add(content)
        if to_add:
            self._backend.add_special_tokens(to_add)

    def _install_bos_eos_template(self) -> None:
        """Adds bos/eos around each sequence per `add_bos_token`/`add_eos_token`.

        transformers rebuilds the post-processor from these two switches whenever either is given,
        replacing the one in tokenizer.json.
        """
        add_bos = bool(self.settings.get("add_bos_token", False)) and self.bos_token is not None
        add_eos = bool(self.settings.get("add_eos_token", False)) and self.eos_token is not None

        def template(sequence: str, type_id: int) -> str:
            parts = [f"{self.bos_token}:{type_id}"] if add_bos else []
            parts.append(f"${sequence}:{type_id}")
            if add_eos:
                parts.append(f"{self.eos_token}:{type_id}")
            return " ".join(parts)

        special_tokens = []
        if add_bos:
            special_tokens.append((self.bos_token, self.bos_token_id))
        if add_eos:
            special_tokens.append((self.eos_token, self.eos_token_id))
        self._backend.post_processor = processors.TemplateProcessing(
            single=template("A", 0),
            pair=f"{template('A', 0)} {template('B', 1)}",
            special_tokens=special_tokens,
        )

    # ---- backend interface -------------------------------------------------------------------

    def _encode_batch(self, inputs, add_special_tokens, truncation, max_length, return_offsets):
        if truncation is None:
            self._backend.no_truncation()
        else:
            self._backend.enable_truncation(max_length, strategy=truncation, direction=self.truncation_side)
        batch = [text if pair is None else (text, pair) for text, pair in inputs]
        try:
            encodings = self._backend.encode_batch(batch, add_special_tokens=add_special_tokens)
        except Exception as error:
            if "Truncation error" in str(error):
                raise ValueError(f"truncation={truncation!r}, max_length={max_length}: {error}") from error
            raise
        return [
            EncodedSequence(
                ids=list(encoding.ids),
                type_ids=list(encoding.type_ids),
                special_tokens_mask=list(encoding.special_tokens_mask),
                offsets=list(encoding.offsets) if return_offsets else None,
            )
            for encoding in encodings
        ]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        # The encoding's own tokens: for an unknown word a Unigram model reports the word, not <unk>.
        self._check_tokenize_arguments(text, pair)
        self._backend.no_truncation()
        return self._backend.encode(text, pair, add_special_tokens=add_special_tokens).tokens

    def _decode_ids(self, ids, skip_special_tokens):
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def _can_clean_up_tokenization_spaces(self) -> bool:
        # transformers skips the clean-up for BPE models: it deletes real spaces before punctuation.
        if isinstance(self._backend.model, tokenizers.models.BPE):
            if not self._warned_about_bpe_cleanup:
                logger.warning("clean_up_tokenization_spaces is ignored for BPE models: it corrupts text")
                self._warned_about_bpe_cleanup = True
            return False
        return True

    def _token_to_id(self, token):
        return self._backend.token_to_id(token)

    def _id_to_token(self, index):
        return self._backend.id_to_token(index)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._backend.num_special_tokens_to_add(pair)

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)


# The special tokens of BERT's WordPiece vocabularies, used when the config names none.
BERT_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def read_wordpiece_vocab(vocab_file: str) -> dict[str, int]:
    """Token -> line number. Only the newline is stripped, as transformers' BERT loader does
    (`WordPiece.read_file` strips all trailing whitespace, which would rename a few tokens)."""
    with open(vocab_file, encoding="utf-8") as handle:
        return {line.rstrip("\n"): index for index, line in enumerate(handle)}


class CLIPTokenizer(TokenizersTokenizer):
    """CLIP's tokenizer.json: byte-level BPE whose words end in `</w>`. The saved ByteLevel decoder
    leaves the suffix in; transformers' CLIPTokenizer turns each into a space and strips the text."""

    def _decode_ids(self, ids, skip_special_tokens):
        text = super()._decode_ids(ids, skip_special_tokens)
        suffix = getattr(self._backend.model, "end_of_word_suffix", None)
        return text.replace(suffix, " ").strip() if suffix else text


class WordPieceTokenizer(TokenizersTokenizer):
    """BERT's tokenizer built from a WordPiece `vocab.txt`, for folders without a tokenizer.json.

    The pipeline is the one transformers' BertTokenizer builds from the same file: BERT's basic
    tokenization (clean-up, optional lower-casing and accent stripping, punctuation and CJK
    splitting), greedy longest-match-first WordPiece with `##` continuations, then
    `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`.
    """

    @classmethod
    def from_vocab_file(cls, vocab_file: str, settings: TokenizerSettings) -> WordPieceTokenizer:
        for name, default in BERT_SPECIAL_TOKENS.items():
            if settings.special_tokens.get(name) is None:
                settings.special_tokens[name] = default
        tokens = settings.special_tokens
        vocab = read_wordpiece_vocab(vocab_file)

        backend = tokenizers.Tokenizer(WordPiece(vocab, unk_token=tokens["unk_token"]))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=settings.get("tokenize_chinese_chars", True),
            # None: strip accents exactly when lower-casing, as in the original BERT.
            strip_accents=settings.get("strip_accents"),
            lowercase=settings.get("do_lower_case", True),
        )
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        cls_token, sep_token = tokens["cls_token"], tokens["sep_token"]
        for token in (cls_token, sep_token):
            if token not in vocab:
                raise ValueError(f"{vocab_file} lacks the special token {token!r} named by the configuration")
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
        )
        return cls(backend, settings)
