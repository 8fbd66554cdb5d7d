"""The tokenizer API every backend shares, shaped like transformers' tokenizers.

A backend (`tokenizers` library, `sentencepiece` library) turns texts into `EncodedSequence`s: ids
with the model's special tokens added and truncation applied. Everything around that is here and
the same for all backends: checking the arguments, choosing the padding and truncation strategy the
way transformers does, padding, the length warning, numpy conversion and decoding.

Where transformers' behaviour is an accident rather than a contract, Rosetta raises a clear error
instead (each case is marked "transformers" in a comment below).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import chat as _chat
from .settings import SPECIAL_TOKEN_NAMES, TokenizerSettings

logger = logging.getLogger(__name__)

PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
TENSOR_TYPES = ("np",)


class BatchEncoding(dict):
    """The tokenizer's output: a dict of model inputs, whose keys can also be read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key {name!r}; it has {sorted(self)}") from None


@dataclasses.dataclass
class EncodedSequence:
    """One input (a text, or a text pair) after special tokens and truncation, before padding."""

    ids: list[int]
    type_ids: list[int]
    special_tokens_mask: list[int]
    offsets: list[tuple[int, int]] | None = None
    attention_mask: list[int] | None = None  # all ones until padding marks the pad positions

    def __post_init__(self):
        if self.attention_mask is None:
            self.attention_mask = [1] * len(self.ids)


def truncated_lengths(
    first_length: int, second_length: int | None, max_length: int, strategy: str
) -> tuple[int, int | None]:
    """How many tokens of each sequence survive truncating the pair to `max_length` tokens.

    `max_length` excludes the special tokens. This is the rule of the `tokenizers` library
    (src/utils/truncation.rs), so that a SentencePiece model cuts exactly where its tokenizer.json
    conversion would: `longest_first` shortens the longer sequence first, then both evenly, the
    longer one (the second on a tie) keeping the odd token; `only_first`/`only_second` fail if that
    sequence is too short.
    """
    if max_length == 0:
        return 0, None if second_length is None else 0
    total = first_length + (second_length or 0)
    if total <= max_length:
        return first_length, second_length
    to_remove = total - max_length

    if strategy == "longest_first":
        if second_length is None:
            return max_length, None
        shorter, longer = sorted((first_length, second_length))
        longer = shorter if shorter > max_length else max(shorter, max_length - shorter)
        if shorter + longer > max_length:
            shorter = max_length // 2
            longer = shorter + max_length % 2
        if first_length > second_length:
            return longer, shorter
        return shorter, longer

    if strategy == "only_first":
        if first_length > to_remove:
            return first_length - to_remove, second_length
        which = "first"
    else:
        if second_length is None:
            raise ValueError("truncation='only_second' needs a text_pair to truncate")
        if second_length > to_remove:
            return first_length, second_length - to_remove
        which = "second"
    raise ValueError(
        f"truncation={strategy!r} cannot reach max_length: the {which} sequence is too short "
        f"(the pair has {to_remove} tokens too many); use truncation='longest_first' or a larger max_length"
    )


def _describe(value: Any) -> str:
    """Names what was passed, for error messages."""
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                return f"a {type(value).__name__} whose item {index} is {type(item).__name__} ({item!r:.40})"
    return f"{type(value).__name__} ({value!r:.60})"


def _as_text_batch(value: Any, argument: str) -> tuple[list[str], bool]:
    """The texts in `value` and whether `value` was a batch (a list or tuple) rather than one string."""
    if isinstance(value, str):
        return [value], False
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value), True
    raise TypeError(
        f"`{argument}` must be a string or a list of strings, got {_describe(value)}. "
        "Pretokenized input (lists of words) is not supported."
    )


def _check_length(value: Any, argument: str, minimum: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{argument}` must be an int or None, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"`{argument}` must be at least {minimum}, got {value}")


def _as_id_list(ids: Any, argument: str) -> list[int]:
    """Token ids as a list of Python ints, from a list, tuple or 1-d numpy array."""
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if isinstance(ids, (list, tuple)) and all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids
    ):
        return [int(i) for i in ids]
    raise TypeError(f"`{argument}` must be a list of ints (token ids), got {_describe(ids)}")


def clean_up_tokenization(text: str) -> str:
    """Removes the spaces word-level detokenization leaves before punctuation and English contractions."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


class PreTrainedTokenizer:
    """Base class: the transformers-shaped API on top of a backend's `_encode_batch`.

    Backends implement `_encode_batch`, `_decode_ids`, `_token_to_id`, `_id_to_token`,
    `num_special_tokens_to_add`, `vocab_size`, `__len__` and `get_vocab`.
    """

    is_fast = False
    # Whether `_encode_batch` can report character offsets (`return_offsets_mapping=True`).
    supports_offsets = False

    def __init__(self, settings: TokenizerSettings):
        self.settings = settings
        self.name_or_path = settings.name_or_path
        self.model_max_length = settings.model_max_length  # None: no limit
        self.padding_side = settings.padding_side
        self.truncation_side = settings.truncation_side
        self.model_input_names = list(settings.model_input_names)
        self.clean_up_tokenization_spaces = settings.clean_up_tokenization_spaces
        self.pad_token_type_id = 0
        self._special_tokens = dict(settings.special_tokens)
        self.extra_special_tokens = list(settings.extra_special_tokens)
        # transformers warns once per tokenizer about a sequence longer than model_max_length.
        self._warned_about_long_sequence = False
        # A template string, or {name: template}; see core/tokenization/chat.py.
        self.chat_template = _chat.load_chat_template(settings.name_or_path, settings.config) if os.path.isdir(
            str(settings.name_or_path)) else settings.config.get("chat_template")

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt: bool = False, continue_final_message: bool | str = False,
                            tokenize: bool = True, **kwargs):
        """Renders a chat (a list of {"role", "content"} messages, or a batch of chats) with the
        tokenizer's chat template, as transformers' `apply_chat_template` (see core/tokenization/chat.py);
        with `tokenize` (default) returns the encoding (`return_dict=False`: the ids)."""
        return _chat.apply_chat_template(self, conversation, tools=tools, documents=documents,
                                         chat_template=chat_template, add_generation_prompt=add_generation_prompt,
                                         continue_final_message=continue_final_message, tokenize=tokenize, **kwargs)

    # ---- backend interface -------------------------------------------------------------------

    def _encode_batch(
        self,
        inputs: list[tuple[str, str | None]],
        add_special_tokens: bool,
        truncation: str | None,
        max_length: int | None,
        return_offsets: bool,
    ) -> list[EncodedSequence]:
        """Encodes (text, text_pair) inputs; truncates to `max_length` (special tokens included)."""
        raise NotImplementedError

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        raise NotImplementedError

    def _token_to_id(self, token: str) -> int | None:
        raise NotImplementedError

    def _id_to_token(self, index: int) -> str | None:
        raise NotImplementedError

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included."""
        raise NotImplementedError

    def get_vocab(self) -> dict[str, int]:
        raise NotImplementedError

    def _can_clean_up_tokenization_spaces(self) -> bool:
        return True

    # ---- special tokens ----------------------------------------------------------------------

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {name: token for name, token in self._special_tokens.items() if token is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [token for token in self._special_tokens.values() if token is not None]
        tokens += self.extra_special_tokens
        return list(dict.fromkeys(tokens))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(token) for token in self.all_special_tokens]

    def _set_special_token(self, name: str, token: str | None) -> None:
        if token is not None and self._token_to_id(token) is None:
            raise ValueError(
                f"cannot set {name} to {token!r}: it is not in the vocabulary of {self.name_or_path}"
            )
        self._special_tokens[name] = token

    def _special_token_id(self, name: str) -> int | None:
        token = self._special_tokens[name]
        return None if token is None else self.convert_tokens_to_ids(token)

    # ---- token <-> id ------------------------------------------------------------------------

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int] | None:
        """Ids of tokens; unknown tokens get the unk token's id (None if there is no unk token)."""
        if isinstance(tokens, str):
            index = self._token_to_id(tokens)
            if index is None:
                unk = self._special_tokens["unk_token"]
                return None if unk is None else self._token_to_id(unk)
            return index
        if isinstance(tokens, (list, tuple)) and all(isinstance(token, str) for token in tokens):
            return [self.convert_tokens_to_ids(token) for token in tokens]
        raise TypeError(f"`tokens` must be a string or a list of strings, got {_describe(tokens)}")

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | None | list[str | None]:
        """Tokens of ids; an id outside the vocabulary gives None."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            return self._id_to_token(int(ids))
        ids = _as_id_list(ids, "ids")
        skipped = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._id_to_token(index) for index in ids if index not in skipped]

    # ---- encoding ----------------------------------------------------------------------------

    def _resolve_strategies(
        self,
        padding: bool | str,
        truncation: bool | str | None,
        max_length: int | None,
        pad_to_multiple_of: int | None,
    ) -> tuple[str, str | None, int | None]:
        """(padding strategy, truncation strategy or None, max_length), by transformers' rules."""
        # transformers: a max_length on its own turns truncation on.
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"

        if padding is False or padding is None:
            padding = "do_not_pad"
        elif padding is True:
            if max_length is not None and truncation in (None, False, "do_not_truncate"):
                warnings.warn(
                    "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                    "To pad to max length, use `padding='max_length'`.",
                    stacklevel=3,
                )
            padding = "longest"
        elif padding not in PADDING_STRATEGIES:
            accepted = ", ".join(map(repr, PADDING_STRATEGIES))
            raise ValueError(f"padding={padding!r} is not one of True, False, {accepted}")

        if truncation is None or truncation is False or truncation == "do_not_truncate":
            truncation = None
        elif truncation is True:
            truncation = "longest_first"
        elif truncation not in TRUNCATION_STRATEGIES:
            accepted = ", ".join(map(repr, TRUNCATION_STRATEGIES))
            raise ValueError(f"truncation={truncation!r} is not one of True, False, {accepted}")

        if max_length is None:
            if padding == "max_length":
                if self.model_max_length is None:
                    # transformers silently stops padding here; an unpadded batch is never what was asked.
                    raise ValueError(
                        f"padding='max_length' needs a length, but max_length is not set and the tokenizer "
                        f"at {self.name_or_path} has no model_max_length. Pass max_length=..."
                    )
                max_length = self.model_max_length
            if truncation is not None:
                if self.model_max_length is None:
                    truncation = None  # transformers: nothing to truncate to, so no truncation
                else:
                    max_length = self.model_max_length

        if padding != "do_not_pad" and self.pad_token_id is None:
            raise ValueError(
                f"padding={padding!r} needs a pad token, and the tokenizer at {self.name_or_path} has none. "
                "Set one, e.g. `tokenizer.pad_token = tokenizer.eos_token`."
            )
        if (
            truncation is not None
            and padding != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                f"Truncation and padding are both activated but truncation length ({max_length}) "
                f"is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding, truncation, max_length

    def _switch_to_input_mode(self) -> None:
        """Seq2seq tokenizers with a source and a target side (language codes, Marian's two
        SentencePiece models) switch to the source side here; others have one side."""

    def _switch_to_target_mode(self) -> None:
        """Switches to the target side, for `text_target=` (see `_switch_to_input_mode`)."""

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        text_target: str | Sequence[str] | None = None,
        text_pair_target: str | Sequence[str] | None = None,
        max_target_length: int | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenizes `text` (the model inputs) and/or `text_target` (the labels), as transformers does.

        With both, the target's `input_ids` become the `labels` of the inputs' encoding; with only
        `text_target`, the target's own encoding is returned. The target side is encoded in target
        mode (target language code, target SentencePiece model) with the same padding and
        truncation arguments; `max_target_length` replaces `max_length` for it.
        """
        if text is None and text_target is None:
            raise TypeError("`text` must be a string or a list of strings (or pass `text_target=`), got None")
        if text is None and text_pair is not None:
            raise TypeError("`text_pair` needs `text`")
        if text_target is None and text_pair_target is not None:
            raise TypeError("`text_pair_target` needs `text_target`")
        encodings = None
        if text is not None:
            self._switch_to_input_mode()
            encodings = self._encode_call(text, text_pair, **kwargs)
        if text_target is None:
            return encodings
        target_kwargs = dict(kwargs)
        if max_target_length is not None:
            target_kwargs["max_length"] = max_target_length
        self._switch_to_target_mode()
        try:
            targets = self._encode_call(text_target, text_pair_target, **target_kwargs)
        finally:
            self._switch_to_input_mode()
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _encode_call(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
    ) -> BatchEncoding:
        """Tokenizes one text (values are lists of ints) or a batch (lists of lists), optionally in pairs.

        Arguments and defaults are transformers': `padding` True/"longest", "max_length" or
        False/"do_not_pad"; `truncation` True/"longest_first", "only_first", "only_second" or
        False/"do_not_truncate"; a `max_length` alone turns truncation on. `return_tensors="np"` gives
        int64 arrays of shape (batch, length), a single text included.
        """
        texts, is_batched = _as_text_batch(text, "text")
        if text_pair is None:
            pairs: list[str | None] = [None] * len(texts)
        else:
            pairs, pair_is_batched = _as_text_batch(text_pair, "text_pair")
            if pair_is_batched != is_batched:
                raise TypeError(
                    "`text` and `text_pair` must both be strings or both be lists of strings, got "
                    f"{type(text).__name__} and {type(text_pair).__name__}"
                )
            if len(pairs) != len(texts):
                raise ValueError(f"`text` has {len(texts)} items but `text_pair` has {len(pairs)}")
        _check_length(max_length, "max_length")
        _check_length(pad_to_multiple_of, "pad_to_multiple_of", minimum=1)
        if padding_side not in (None, "left", "right"):
            raise ValueError(f"padding_side must be 'left', 'right' or None, got {padding_side!r}")
        if return_tensors not in (None, *TENSOR_TYPES):
            raise ValueError(
                f"return_tensors={return_tensors!r} is not supported; use None (lists) or 'np' (numpy arrays)"
            )
        if return_offsets_mapping and not self.supports_offsets:
            raise NotImplementedError(
                f"return_offsets_mapping needs a tokenizer.json (fast) tokenizer; {type(self).__name__} "
                f"for {self.name_or_path} cannot report character offsets"
            )

        padding, truncation, max_length = self._resolve_strategies(
            padding, truncation, max_length, pad_to_multiple_of
        )
        has_pair = text_pair is not None
        if truncation == "only_second" and not has_pair:
            raise ValueError("truncation='only_second' needs a text_pair to truncate")
        if truncation is not None and add_special_tokens:
            special_count = self.num_special_tokens_to_add(pair=has_pair)
            if max_length < special_count:
                # transformers (tokenizers) silently skips truncation here and returns longer sequences.
                raise ValueError(
                    f"max_length={max_length} is smaller than the {special_count} special tokens this "
                    f"tokenizer adds to each {'pair' if has_pair else 'sequence'}"
                )

        encoded = self._encode_batch(
            list(zip(texts, pairs)), add_special_tokens, truncation, max_length, return_offsets_mapping
        )
        self._pad(encoded, padding, max_length, pad_to_multiple_of, padding_side or self.padding_side)
        for sequence in encoded:
            self._warn_if_too_long(sequence.ids, max_length)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        columns: dict[str, list[Any]] = {"input_ids": [sequence.ids for sequence in encoded]}
        if return_token_type_ids:
            columns["token_type_ids"] = [sequence.type_ids for sequence in encoded]
        if return_attention_mask:
            columns["attention_mask"] = [sequence.attention_mask for sequence in encoded]
        if return_special_tokens_mask:
            columns["special_tokens_mask"] = [sequence.special_tokens_mask for sequence in encoded]
        if return_offsets_mapping:
            columns["offset_mapping"] = [sequence.offsets for sequence in encoded]
        if return_length:
            columns["length"] = [len(sequence.ids) for sequence in encoded]

        if return_tensors == "np":
            return BatchEncoding({key: self._to_array(key, value) for key, value in columns.items()})
        if not is_batched:
            return BatchEncoding({key: value[0] for key, value in columns.items()})
        return BatchEncoding(columns)

    def _pad(
        self,
        encoded: list[EncodedSequence],
        padding: str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
        padding_side: str,
    ) -> None:
        """Pads every sequence in place to the batch's longest or to `max_length`, then up to a multiple."""
        if padding == "do_not_pad" or not encoded:
            return
        target = max(len(sequence.ids) for sequence in encoded) if padding == "longest" else max_length
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        pad_id = self.pad_token_id
        for sequence in encoded:
            missing = target - len(sequence.ids)
            if missing <= 0:
                continue  # a sequence longer than max_length (no truncation) stays as it is
            filler = {
                "ids": [pad_id] * missing,
                "type_ids": [self.pad_token_type_id] * missing,
                "special_tokens_mask": [1] * missing,
                "attention_mask": [0] * missing,
            }
            if sequence.offsets is not None:
                filler["offsets"] = [(0, 0)] * missing
            for field, pad_values in filler.items():
                values = getattr(sequence, field)
                padded = values + pad_values if padding_side == "right" else pad_values + values
                setattr(sequence, field, padded)

    def _warn_if_too_long(self, ids: list[int], max_length: int | None) -> None:
        # transformers: encode anyway, but warn (once per tokenizer) that the model cannot take it.
        if (
            max_length is None
            and self.model_max_length
            and len(ids) > self.model_max_length
            and not self._warned_about_long_sequence
        ):
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({len(ids)} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )
            self._warned_about_long_sequence = True

    @staticmethod
    def _to_array(key: str, rows: list[list[Any]]) -> np.ndarray:
        if key == "length":
            return np.asarray(rows, dtype=np.int64)
        lengths = {len(row) for row in rows}
        if len(lengths) > 1:
            # transformers builds ragged object arrays here, which no model accepts.
            raise ValueError(
                f"cannot make a numpy array of `{key}`: the sequences have different lengths "
                f"({sorted(lengths)}). Pass padding=True (and truncation=True for long texts)."
            )
        array = np.asarray(rows, dtype=np.int64)
        if not rows:
            array = array.reshape(0, 0)
        return array

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """The ids of one text (or one text pair)."""
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string, got {_describe(text)}; call the tokenizer for batches")
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"`text_pair` must be a string or None, got {_describe(text_pair)}")
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
            **kwargs,
        )["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """The tokens (vocabulary strings) of a text, without special tokens unless asked."""
        self._check_tokenize_arguments(text, pair)
        (sequence,) = self._encode_batch([(text, pair)], add_special_tokens, None, None, False)
        return self.convert_ids_to_tokens(sequence.ids)

    @staticmethod
    def _check_tokenize_arguments(text: Any, pair: Any) -> None:
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string, got {_describe(text)}")
        if pair is not None and not isinstance(pair, str):
            raise TypeError(f"`pair` must be a string or None, got {_describe(pair)}")

    # ---- decoding ----------------------------------------------------------------------------

    def decode(
        self,
        token_ids: int | Sequence[int] | Sequence[Sequence[int]] | np.ndarray,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str | list[str]:
        """The text of a sequence of ids; a batch (list of lists, 2-d array) gives a list of texts."""
        if isinstance(token_ids, np.ndarray):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, (int, np.integer)) and not isinstance(token_ids, bool):
            token_ids = [int(token_ids)]
        sequence_types = (list, tuple, np.ndarray)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], sequence_types):
            return self.batch_decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)
        text = self._decode_ids(_as_id_list(token_ids, "token_ids"), skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces and self._can_clean_up_tokenization_spaces():
            text = clean_up_tokenization(text)
        return text

    def batch_decode(
        self,
        sequences: Iterable[Sequence[int]] | np.ndarray,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """The texts of a batch of id sequences."""
        if isinstance(sequences, np.ndarray):
            sequences = sequences.tolist()
        return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces) for ids in sequences]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"special_tokens={self.special_tokens_map})"
        )


def _add_special_token_properties(cls: type) -> None:
    """Gives the class `bos_token`, `bos_token_id`, ... for every name in SPECIAL_TOKEN_NAMES."""
    for name in SPECIAL_TOKEN_NAMES:
        setattr(
            cls,
            name,
            property(
                lambda self, name=name: self._special_tokens[name],
                lambda self, token, name=name: self._set_special_token(name, token),
                doc=f"The {name.replace('_', ' ')} (a string), or None if the tokenizer has none.",
            ),
        )
        setattr(
            cls,
            f"{name}_id",
            property(
                lambda self, name=name: self._special_token_id(name),
                doc=f"The id of the {name.replace('_', ' ')}, or None if the tokenizer has none.",
            ),
        )


_add_special_token_properties(PreTrainedTokenizer)
