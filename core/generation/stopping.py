"""Stop strings: `transformers`' `StopStringCriteria`, as a table built once on the host and a
static-shape check per step that runs in numpy (host loop) or inside the jitted JAX loop.

A row stops when the text of its tokens ends with a stop string, token boundaries allowed to
split it ("st" + "op", or "las" + "topper" for "stop"), but only when the string overlaps the
last token (a stop string somewhere in the past does not stop a row). As `transformers` does it:
for every vocabulary token, precompute (a) the lengths by which its start overlaps the end of
each stop string, (b) the positions (counted from the end of the stop string) where the whole
token fits inside it — running off its start allowed — and (c) its length; then a step looks
up the last `maximum_token_len` tokens in that table and walks backwards with a cumulative sum.
The table and the check are line for line those of `transformers.StopStringCriteria`
(`_stop_string_get_matching_positions`, `_stop_string_create_embedding_vec`, `__call__`), so
the same tokens stop; byte-level vocabularies (GPT-2) are matched on bytes as `transformers` 5
matches them.

Imports no JAX: `check` takes the array module (`numpy` or `jax.numpy`) as an argument.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class StopStringTable:
    """Everything a step needs. `table` (max token id + 2, size) int32: per token the valid
    positions of every stop string, then its end overlaps, then its length (last row: a dummy
    for ids outside the vocabulary)."""
    stop_strings: tuple
    table: np.ndarray
    target_lens: np.ndarray          # (num_stop_strings,) int32
    max_valid_positions: int
    max_valid_end_lens: int
    maximum_token_len: int

    @property
    def num_stop_strings(self) -> int:
        return len(self.stop_strings)

    @property
    def dims(self) -> tuple:
        """The static part (a jit static argument)."""
        return (self.num_stop_strings, self.max_valid_positions, self.max_valid_end_lens, self.maximum_token_len)


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map (as `transformers`' own)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _decoder_has_type(config, kind: str) -> bool:
    if isinstance(config, dict):
        return config.get("type") == kind or any(_decoder_has_type(v, kind) for v in config.values())
    if isinstance(config, list):
        return any(_decoder_has_type(v, kind) for v in config)
    return False


def matching_mode(tokenizer):
    """'byte_level', 'byte_fallback' or None, from the tokenizer's decoder (as transformers)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return None
    state = getattr(decoder, "__getstate__", lambda: None)()
    if isinstance(state, str):
        state = state.encode()
    config = None
    if isinstance(state, bytes):
        try:
            config = json.loads(state)
        except json.JSONDecodeError:
            config = None
    if decoder.__class__.__name__ == "ByteLevel":
        return "byte_level"
    if config is not None:
        if _decoder_has_type(config, "ByteFallback"):
            return "byte_fallback"
        if _decoder_has_type(config, "ByteLevel"):
            return "byte_level"
    return None


def _tokens_to_string(tokenizer, tokens: list[str]) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.decoder.decode(tokens) if backend.decoder is not None else " ".join(tokens)
    if hasattr(tokenizer, "convert_tokens_to_string"):
        return tokenizer.convert_tokens_to_string(tokens)
    raise TypeError(f"{type(tokenizer).__name__}: stop strings need a tokenizer that can turn tokens into text "
                    "(a `tokenizers` backend or `convert_tokens_to_string`)")


def clean_vocab(tokenizer, mode, static_prefix: str = "abcdef"):
    """Each token as the text (bytes for byte-level / byte-fallback vocabularies) it yields."""
    vocab = tokenizer.get_vocab()
    byte_decoder = {c: b for b, c in _bytes_to_unicode().items()} if mode == "byte_level" else None
    base_ids = tokenizer(static_prefix, add_special_tokens=False)["input_ids"]
    base_tokens = tokenizer.convert_ids_to_tokens(list(base_ids))
    tokens, indices = [], []
    for token, index in vocab.items():
        text = None
        if mode == "byte_level":
            if all(c in byte_decoder for c in token):
                text = bytes(byte_decoder[c] for c in token)
        elif mode == "byte_fallback":
            if len(token) == 6 and token.startswith("<0x") and token.endswith(">") and all(
                    c in "0123456789abcdefABCDEF" for c in token[3:5]):
                text = bytes([int(token[3:5], 16)])
        if text is None:
            text = _tokens_to_string(tokenizer, base_tokens + [token])
            text = text[text.index(static_prefix) + len(static_prefix):]
            if mode is not None:
                text = text.encode("utf-8")
        tokens.append(text)
        indices.append(index)
    return tuple(tokens), tuple(indices)


def _matching_positions(token_list, token_indices, stop_strings):
    valid_positions, end_overlaps = {}, {}
    for stop in stop_strings:
        reversed_stop = stop[::-1]
        valid_positions[stop], end_overlaps[stop] = {}, {}
        for token, index in zip(token_list, token_indices):
            reversed_token = token[::-1]
            positions, ends = [], []
            i = reversed_stop.find(reversed_token[:1], 1)
            while 0 <= i < len(stop):
                if reversed_token.startswith(reversed_stop[i:i + len(token)]):
                    positions.append(i)
                i = reversed_stop.find(reversed_token[:1], i + 1)
            if stop:
                i = token.find(stop[-1:])
                while i >= 0:
                    overlap = min(i + 1, len(stop))
                    if token[i + 1 - overlap:i + 1] == stop[-overlap:]:
                        ends.append(overlap)
                    i = token.find(stop[-1:], i + 1)
            else:
                ends = [0] * max(0, len(token) - 1)
            if positions:
                valid_positions[stop][index] = positions
            if ends:
                end_overlaps[stop][index] = ends
    return valid_positions, end_overlaps


def build_table(tokenizer, stop_strings: str | Sequence[str]) -> StopStringTable:
    """The per-token table of `stop_strings` for `tokenizer`'s vocabulary (host side, once per call)."""
    if tokenizer is None:
        raise ValueError("There are one or more stop strings, either in the arguments to `generate` or in the "
                         "model's generation config, but we could not locate a tokenizer. When generating with "
                         "stop strings, you must pass the model's tokenizer to the `tokenizer` argument of `generate`.")
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    stop_strings = tuple(stop_strings)
    if not stop_strings or not all(isinstance(s, str) for s in stop_strings):
        raise ValueError(f"stop_strings: expected a string or a non-empty list of strings, got {stop_strings!r}")
    mode = matching_mode(tokenizer)
    matching = stop_strings if mode is None else tuple(s.encode("utf-8") for s in stop_strings)
    token_list, token_indices = clean_vocab(tokenizer, mode)
    positions, ends = _matching_positions(token_list, token_indices, matching)
    all_positions = [len(v) for p in positions.values() for v in p.values()]
    max_valid_positions = max(all_positions) if all_positions else 1
    end_lens = [len(v) for p in ends.values() for v in p.values()]
    if not end_lens:
        raise ValueError("Stop string preprocessing was unable to identify tokens matching one or more of the "
                         "supplied stop string(s). This is most often caused by the stop strings containing unusual "
                         "characters that are not in the tokenizer vocabulary.")
    max_valid_end_lens = max(end_lens)
    count = len(matching)
    size = count * (max_valid_positions + max_valid_end_lens) + 1
    table = np.full((max(token_indices) + 2, size), -1, np.int32)
    for i, stop in enumerate(matching):
        for index, valid in positions[stop].items():
            table[index, max_valid_positions * i:max_valid_positions * i + len(valid)] = valid
        start = max_valid_positions * count + max_valid_end_lens * i
        for index, possible in ends[stop].items():
            table[index, start:start + len(possible)] = possible
    for token, index in zip(token_list, token_indices):
        table[index, -1] = len(token)
    return StopStringTable(stop_strings, table, np.array([len(s) for s in matching], np.int32), max_valid_positions,
                           max_valid_end_lens, max(len(s) for s in matching))


def check(xp, table, target_lens, dims, flipped_ids):
    """Which rows end with a stop string. `flipped_ids` (rows, maximum_token_len): the last tokens,
    newest first, positions before the start of the sequence set to an id >= the table's last
    row (the dummy). `xp` is numpy or jax.numpy; every shape is static."""
    count, max_positions, max_ends, _ = dims
    rows, length = flipped_ids.shape
    ids = xp.minimum(flipped_ids, table.shape[0] - 1)
    embedded = xp.take(table, ids, axis=0)                                   # rows, L, size
    split = max_positions * count
    valid_positions = xp.reshape(embedded[:, 1:, :split], (rows, length - 1, count, max_positions))
    end_lengths = xp.reshape(embedded[:, :1, split:-1], (rows, 1, count, max_ends))
    lengths = xp.broadcast_to(embedded[:, 1:, None, -1:], (rows, length - 1, count, max_ends))
    cumsum = xp.cumsum(xp.concatenate([end_lengths, lengths], axis=1), axis=1)
    initial_match = end_lengths > 0
    later_match = xp.any(cumsum[:, :-1, :, None, :] == valid_positions[:, :, :, :, None], axis=-2)
    match = xp.concatenate([initial_match, later_match], axis=1)
    mask = xp.cumsum(xp.asarray(~match, xp.int32), axis=1) == 0
    reached = xp.max(xp.where(mask, cumsum, 0), axis=(1, 3)) >= target_lens[None, :]
    return xp.any(reached, axis=-1)


def last_tokens_flipped(sequences: np.ndarray, cur_len: int, length: int, dummy: int) -> np.ndarray:
    """Host helper: the last `length` tokens of `sequences[:, :cur_len]`, newest first."""
    index = cur_len - 1 - np.arange(length)
    tokens = sequences[:, np.clip(index, 0, None)]
    return np.where(index[None, :] >= 0, tokens, dummy)
