"""Tokenizers run by the `sentencepiece` library, for folders with a `*.model` file but no tokenizer.json."""
from __future__ import annotations

import functools
import re

import sentencepiece

from .base import EncodedSequence, PreTrainedTokenizer, truncated_lengths
from .settings import TokenizerSettings

# SentencePiece's word-boundary marker: a piece that starts with it starts with a space.
WORD_BOUNDARY = "\u2581"


class SentencePieceTokenizer(PreTrainedTokenizer):
    """A SentencePiece model (LLaMA-, T5-style checkpoints) plus the folder's special tokens.

    Encoding a text: special and added tokens written in it are matched whole (as transformers
    does), the text between them goes through SentencePiece, then each sequence gets bos/eos per
    `add_bos_token`/`add_eos_token` (both off unless the configuration turns them on, as in
    transformers). Models with another layout (T5's eos only, mBART's language codes, Marian's
    source/target vocabularies) override `build_inputs_with_special_tokens` and
    `num_special_tokens_to_add`.

    `legacy` (from the configuration; True unless the tokenizer class says otherwise) decides how
    text that follows a special token is encoded: legacy adds SentencePiece's dummy-prefix space
    to it, as encoding each piece separately would; non-legacy (transformers' LLaMA default) does not.
    """

    def __init__(self, model_file: str, settings: TokenizerSettings):
        self.model_file = model_file
        self._processor = sentencepiece.SentencePieceProcessor(model_file=model_file)
        super().__init__(settings)
        self.add_bos_token = bool(settings.get("add_bos_token", False))
        self.add_eos_token = bool(settings.get("add_eos_token", False))
        self.legacy = bool(settings.get("legacy", True))
        self._added_token_ids = self._collect_added_tokens()
        self._added_token_contents = {index: token for token, index in self._added_token_ids.items()}
        # Longest first, so that a token containing another one wins.
        matched = sorted({*self._added_token_ids, *self.all_special_tokens}, key=len, reverse=True)
        self._added_token_pattern = re.compile("|".join(map(re.escape, matched))) if matched else None

    def _collect_added_tokens(self) -> dict[str, int]:
        """Token -> id of the tokens matched whole in the text besides the special tokens: those of
        `added_tokens_decoder` at their saved ids, then any special token the SentencePiece model
        lacks, at the next free id (as transformers adds them)."""
        added = {spec.content: index for index, spec in self.settings.added_tokens.items()}
        next_id = max([self.vocab_size - 1, *added.values()]) + 1
        for token in self.all_special_tokens:
            if token not in added and self._piece_id(token) is None:
                added[token] = next_id
                next_id += 1
        return added

    def _piece_id(self, piece: str) -> int | None:
        """The id of a SentencePiece piece, or None (`piece_to_id` answers unk's id for unknown pieces)."""
        index = self._processor.piece_to_id(piece)
        return index if self._processor.id_to_piece(index) == piece else None

    @functools.cached_property
    def _processor_without_dummy_prefix(self) -> sentencepiece.SentencePieceProcessor:
        """The same model without the space SentencePiece puts before the text (non-legacy mode)."""
        # The normalizer spec lives in the model's protobuf; editing it needs the protobuf package,
        # which only this rarely used path imports.
        from sentencepiece import sentencepiece_model_pb2

        proto = sentencepiece_model_pb2.ModelProto.FromString(self._processor.serialized_model_proto())
        if not proto.normalizer_spec.add_dummy_prefix:
            return self._processor
        proto.normalizer_spec.add_dummy_prefix = False
        return sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())

    def _encode_text(self, text: str, out_type: type = int) -> list[int] | list[str]:
        """Ids (with `out_type=str`, pieces) of a text: added tokens whole, the rest through SentencePiece."""
        if self._added_token_pattern is None:
            return self._processor.encode(text, out_type=out_type)
        encoded = []
        start = 0
        for match in self._added_token_pattern.finditer(text):
            encoded += self._encode_chunk(text[start : match.start()], start == 0, out_type)
            token = match.group()
            encoded.append(token if out_type is str else self.convert_tokens_to_ids(token))
            start = match.end()
        encoded += self._encode_chunk(text[start:], start == 0, out_type)
        return encoded

    def _encode_chunk(self, chunk: str, at_text_start: bool, out_type: type) -> list[int] | list[str]:
        if not chunk:
            return []
        if at_text_start or self.legacy:
            return self._processor.encode(chunk, out_type=out_type)
        return self._processor_without_dummy_prefix.encode(chunk, out_type=out_type)

    def build_inputs_with_special_tokens(
        self, ids: list[int], pair_ids: list[int] | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """(ids, type ids, special-tokens mask) of `[bos] A [eos]` or `[bos] A [eos] [bos] B [eos]`,
        bos and eos each as configured; the second sequence has type id 1."""
        prefix = [self.bos_token_id] if self.add_bos_token and self.bos_token is not None else []
        suffix = [self.eos_token_id] if self.add_eos_token and self.eos_token is not None else []
        parts = [ids] if pair_ids is None else [ids, pair_ids]
        input_ids, type_ids, special_mask = [], [], []
        for type_id, part in enumerate(parts):
            wrapped = prefix + part + suffix
            input_ids += wrapped
            type_ids += [type_id] * len(wrapped)
            special_mask += [1] * len(prefix) + [0] * len(part) + [1] * len(suffix)
        return input_ids, type_ids, special_mask

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        # SentencePiece's own pieces: an unknown character shows as itself, not as <unk>.
        if add_special_tokens:
            return super().tokenize(text, pair, add_special_tokens)
        self._check_tokenize_arguments(text, pair)
        pieces = self._encode_text(text, out_type=str)
        return pieces if pair is None else pieces + self._encode_text(pair, out_type=str)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        per_sequence = int(self.add_bos_token and self.bos_token is not None)
        per_sequence += int(self.add_eos_token and self.eos_token is not None)
        return per_sequence * (2 if pair else 1)

    # ---- backend interface -------------------------------------------------------------------

    def _encode_batch(self, inputs, add_special_tokens, truncation, max_length, return_offsets):
        encoded = []
        for text, pair in inputs:
            ids = self._encode_text(text)
            pair_ids = None if pair is None else self._encode_text(pair)
            if truncation is not None:
                special_count = self.num_special_tokens_to_add(pair is not None) if add_special_tokens else 0
                pair_length = None if pair_ids is None else len(pair_ids)
                budget = max_length - special_count
                keep, keep_pair = truncated_lengths(len(ids), pair_length, budget, truncation)
                ids = self._truncate(ids, keep)
                pair_ids = None if pair_ids is None else self._truncate(pair_ids, keep_pair)
            if add_special_tokens:
                input_ids, type_ids, special_mask = self.build_inputs_with_special_tokens(ids, pair_ids)
            else:
                input_ids = ids + (pair_ids or [])
                type_ids = [0] * len(ids) + [1] * len(pair_ids or [])
                special_mask = [0] * len(input_ids)
            encoded.append(EncodedSequence(input_ids, type_ids, special_mask))
        return encoded

    def _truncate(self, ids: list[int], keep: int) -> list[int]:
        return ids[:keep] if self.truncation_side == "right" else ids[len(ids) - keep :]

    def _decode_ids(self, ids, skip_special_tokens):
        """SentencePiece decodes the runs of ordinary pieces; special tokens are written as themselves.

        SentencePiece drops the space that starts a decoded text (its dummy prefix), which is right
        at the start of the output but not for a run that follows a special token: there it is
        kept, giving transformers' "<s> Hello" for [bos, "▁Hello"].
        """
        special_ids = set(self.all_special_ids) | {
            index for index, spec in self.settings.added_tokens.items() if spec.special
        }
        parts: list[str] = []
        run: list[int] = []

        def flush_run() -> None:
            if run:
                text = self._processor.decode(run)
                starts_a_word = self._processor.id_to_piece(run[0]).startswith(WORD_BOUNDARY)
                if parts and starts_a_word and not text.startswith(" "):
                    text = " " + text
                parts.append(text)
                run.clear()

        for index in ids:
            if index in special_ids or index in self._added_token_contents:
                flush_run()
                if not (skip_special_tokens and index in special_ids):
                    parts.append(self._id_to_token(index))
            else:
                run.append(index)
        flush_run()
        return "".join(parts)

    def _token_to_id(self, token):
        if token in self._added_token_ids:
            return self._added_token_ids[token]
        return self._piece_id(token)

    def _id_to_token(self, index):
        if index in self._added_token_contents:
            return self._added_token_contents[index]
        if 0 <= index < self.vocab_size:
            return self._processor.id_to_piece(index)
        return None

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def __len__(self) -> int:
        return max([self.vocab_size - 1, *self._added_token_ids.values()]) + 1

    def get_vocab(self) -> dict[str, int]:
        vocab = {self._processor.id_to_piece(index): index for index in range(self.vocab_size)}
        vocab.update(self._added_token_ids)
        return vocab
