"""Generation for the framework ports: the decode loops of `search.py` on the host, in numpy.

The torch and TF ports generate through this module (`Module.generate` in each port runtime):
the model runs in its own framework, one step at a time with its explicit KV cache, and the
choice of tokens — processors, greedy, sampling, beam search — happens here, in numpy, step for
step as `core/generation/search.py` does it in JAX (and as `transformers` does), so greedy and
beam outputs are token-identical across JAX, the ports and `transformers`. Sampling draws from a
numpy generator (`seed`): reproducible, but not the same draws as JAX's.

Imports no JAX (the ports run without it).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from core.generation import stopping, streaming
from core.generation.config import GenerationConfig

# forward(input_ids, slot_mask, position_ids, cache, cache_index) -> (last logits (rows, vocab) float32, cache)
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray, object, int], tuple]


@dataclasses.dataclass(frozen=True)
class Request:
    """A generate call, checked and expanded: what both loops need."""
    ids: np.ndarray             # (rows, prompt_len) int32, rows = batch * expand
    mask: np.ndarray            # (rows, prompt_len) int32
    positions: np.ndarray       # (rows, prompt_len) int32
    prompt_ignore: np.ndarray   # (rows,) left padding per row (repetition penalty skips it)
    batch: int
    max_length: int
    min_length: int
    eos: tuple
    pad: Optional[int]
    config: GenerationConfig
    stop: Optional[stopping.StopStringTable] = None   # stop_strings' table (needs the tokenizer)
    encoder_ids: Optional[np.ndarray] = None           # (rows, length): encoder_no_repeat_ngram_size's n-grams
    encoder_decoder: bool = False                      # seq2seq: ids are the decoder start tokens; forced BOS/EOS


def prepare(config: GenerationConfig, input_ids, attention_mask, vocab_size: int,
            max_positions: Optional[int], model_max_length: Optional[int], tokenizer=None) -> Request:
    """Check the inputs and settle lengths and token ids as `transformers.generate` does."""
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"input_ids: expected integer ids of shape (batch, length), got {ids.dtype} {ids.shape}")
    if ids.shape[1] == 0:
        raise ValueError("input_ids: empty prompt (length 0); generation needs at least one token")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"input_ids: values must lie in [0, {vocab_size}) (vocab_size); "
                         f"found {ids.min()}..{ids.max()}")
    batch, prompt_len = ids.shape
    eos = tuple(config.eos_token_ids)
    pad = config.pad_token_id
    if pad is None and eos:
        pad = eos[0]
    if attention_mask is None:
        mask = np.ones_like(ids)
        # transformers infers the mask from pad tokens in the prompt unless pad is also an eos.
        if pad is not None and (ids == pad).any() and pad not in eos:
            mask = (ids != pad).astype(ids.dtype)
    else:
        mask = np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask: shape {mask.shape} differs from input_ids {ids.shape}")
    mask = mask.astype(np.int32)

    if config.max_new_tokens is not None:
        max_length = config.max_new_tokens + prompt_len
    elif config.extra.get("_has_default_max_length"):
        max_length = config.max_length + prompt_len
        if max_positions is not None:
            max_length = min(max_length, max_positions)
    else:
        max_length = config.max_length
    if prompt_len >= max_length:
        raise ValueError(f"Input length of input_ids is {prompt_len}, but `max_length` is set to {max_length}. "
                         "This can lead to unexpected behavior. You should consider increasing `max_length` or, "
                         "better yet, setting `max_new_tokens`.")
    if model_max_length is not None and max_length > model_max_length:
        raise ValueError(f"max_length {max_length} (prompt {prompt_len} + new tokens) exceeds the model's maximum "
                         f"of {model_max_length} positions; generate fewer tokens or shorten the prompt")
    min_length = config.min_length
    if config.min_new_tokens is not None:
        min_length = config.min_new_tokens + prompt_len

    expand = max(config.num_beams, config.num_return_sequences)
    ids = np.repeat(ids, expand, axis=0).astype(np.int32)
    mask = np.repeat(mask, expand, axis=0)
    positions = np.where(mask == 0, 0, np.cumsum(mask, axis=-1) - 1).astype(np.int32)
    prompt_ignore = np.argmax(mask != 0, axis=1).astype(np.int32)
    stop = None if config.stop_strings is None else stopping.build_table(tokenizer, config.stop_strings)
    return Request(ids, mask, positions, prompt_ignore, batch, max_length, int(min_length or 0), eos, pad, config,
                   stop, ids.copy())


# -- processors (numpy twins of processors.py) ----------------------------------------------------

def _log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _softmax(x):
    return np.exp(_log_softmax(x))


def process(request: Request, scores, sequences, cur_len: int, warp: bool, min_tokens_to_keep: int = 1):
    """The processors `transformers` builds for these settings, in its order."""
    cfg = request.config
    scores = np.array(scores, np.float32)
    vocab = scores.shape[-1]
    if cfg.begin_suppress_tokens and cur_len == cfg.begin_suppress_index(request.ids.shape[1]):
        scores[:, [t for t in cfg.begin_suppress_tokens if 0 <= t < vocab]] = -np.inf
    if cfg.suppress_tokens:
        scores[:, [t for t in cfg.suppress_tokens if 0 <= t < vocab]] = -np.inf
    if cfg.repetition_penalty != 1.0:
        rows, vocab = scores.shape
        for row in range(rows):
            tokens = np.unique(sequences[row, request.prompt_ignore[row]:cur_len])
            tokens = tokens[(tokens >= 0) & (tokens < vocab)]
            chosen = scores[row, tokens]
            scores[row, tokens] = np.where(chosen < 0, chosen * cfg.repetition_penalty,
                                           chosen / cfg.repetition_penalty)
    if cfg.no_repeat_ngram_size:
        scores = _ban_ngrams(scores, sequences[:, :cur_len], sequences, cur_len, int(cfg.no_repeat_ngram_size))
    if cfg.encoder_no_repeat_ngram_size and request.encoder_ids is not None and not (request.encoder_ids < 0).any():
        scores = _ban_ngrams(scores, request.encoder_ids, sequences, cur_len, int(cfg.encoder_no_repeat_ngram_size))
    if request.eos and request.min_length > 0 and cur_len < request.min_length:
        scores[:, list(request.eos)] = -np.inf
    if request.encoder_decoder:
        if cfg.forced_bos_token_id is not None and cur_len == 1:
            scores = _force(scores, [cfg.forced_bos_token_id])
        forced_eos = cfg.forced_eos_token_id
        if forced_eos is not None and cur_len == request.max_length - 1:
            scores = _force(scores, [forced_eos] if isinstance(forced_eos, int) else list(forced_eos))
    if warp:
        if cfg.temperature != 1.0:
            scores = scores / np.float32(cfg.temperature)
        if cfg.top_k:
            k = min(max(int(cfg.top_k), min_tokens_to_keep), scores.shape[-1])
            threshold = -np.sort(-scores, axis=-1)[:, k - 1:k]
            scores = np.where(scores < threshold, -np.inf, scores)
        if cfg.top_p < 1.0:
            order = np.argsort(scores, axis=-1, kind="stable")
            sorted_scores = np.take_along_axis(scores, order, axis=-1)
            cumulative = np.cumsum(_softmax(sorted_scores), axis=-1)
            remove_sorted = cumulative <= (1 - cfg.top_p)
            remove_sorted[:, scores.shape[-1] - min_tokens_to_keep:] = False
            remove = np.zeros_like(remove_sorted)
            np.put_along_axis(remove, order, remove_sorted, axis=-1)
            scores = np.where(remove, -np.inf, scores)
        if cfg.min_p is not None:
            probs = _softmax(scores)
            kth = -np.sort(-probs, axis=-1)[:, min(min_tokens_to_keep, scores.shape[-1]) - 1:][:, :1]
            remove = (probs < cfg.min_p * probs.max(axis=-1, keepdims=True)) & (probs < kth)
            scores = np.where(remove, -np.inf, scores)
    timestamps = cfg.extra.get("_whisper_timestamps")
    if timestamps:
        # Whisper passes it as a custom processor: transformers runs it after its own (warpers included).
        scores = whisper_timestamps(scores, sequences, cur_len, request.ids.shape[1], **timestamps)
    return scores


def whisper_timestamps(scores, sequences, cur_len: int, begin_index: int, timestamp_begin: int,
                       no_timestamps_token_id: int, eos_token_id: int, max_initial_timestamp_index=None):
    """WhisperTimeStampLogitsProcessor (numpy twin of `processors.whisper_timestamps`) on
    `sequences[:, begin_index:cur_len]`, the tokens generated after the decoder prompt."""
    scores = np.array(scores, np.float32)
    scores[:, no_timestamps_token_id] = -np.inf
    for k in range(scores.shape[0]):
        seq = sequences[k, begin_index:cur_len].tolist()
        last_was = len(seq) >= 1 and seq[-1] >= timestamp_begin
        penultimate_was = len(seq) < 2 or seq[-2] >= timestamp_begin
        if last_was:
            if penultimate_was:
                scores[k, timestamp_begin:] = -np.inf
            else:
                scores[k, :eos_token_id] = -np.inf
        seen = [t for t in seq if t >= timestamp_begin]
        timestamp_last = timestamp_begin
        if seen:
            timestamp_last = seen[-1] if last_was and not penultimate_was else seen[-1] + 1
        scores[k, timestamp_begin:max(timestamp_last, timestamp_begin)] = -np.inf
    if cur_len == begin_index:
        scores[:, :timestamp_begin] = -np.inf
        if max_initial_timestamp_index is not None:
            scores[:, timestamp_begin + max_initial_timestamp_index + 1:] = -np.inf
    logprobs = _log_softmax(scores.astype(np.float32))
    with np.errstate(divide="ignore"):
        peak = np.max(logprobs[:, timestamp_begin:], axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        timestamp_logprob = (np.log(np.sum(np.exp(logprobs[:, timestamp_begin:] - peak), axis=-1)) + peak[:, 0])
    max_text = np.max(logprobs[:, :timestamp_begin], axis=-1)
    scores[timestamp_logprob > max_text, :timestamp_begin] = -np.inf
    return scores


def _force(scores, tokens):
    """ForcedBOS/ForcedEOS: every other token -inf, the forced ones 0."""
    forced = np.full(scores.shape[-1], -np.inf, np.float32)
    forced[tokens] = 0.0
    return np.broadcast_to(forced, scores.shape).copy()


def _ban_ngrams(scores, source, sequences, cur_len: int, n: int):
    """NoRepeatNGram (source: the sequences so far) / EncoderNoRepeatNGram (source: the encoder
    ids): ban every token that completes an n-gram of `source` whose first n - 1 tokens are the
    last n - 1 tokens of `sequences[:, :cur_len]`."""
    if cur_len + 1 < n:
        return scores
    for row in range(scores.shape[0]):
        prefix = tuple(sequences[row, cur_len - n + 1:cur_len].tolist())
        tokens = source[row].tolist()
        banned = [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix]
        scores[row, banned] = -np.inf
    return scores


def stop_string_hits(request: Request, sequences: np.ndarray, cur_len: int) -> np.ndarray:
    """StopStringCriteria on `sequences[:, :cur_len]` (numpy, `stopping.check`)."""
    stop = request.stop
    flipped = stopping.last_tokens_flipped(sequences, cur_len, stop.maximum_token_len, stop.table.shape[0] - 1)
    return stopping.check(np, stop.table, stop.target_lens, stop.dims, flipped)


# -- the loops ------------------------------------------------------------------------------------

def _prefill(forward: Forward, init_cache, request: Request):
    rows, prompt_len = request.ids.shape
    slot_mask = np.concatenate([request.mask, np.ones((rows, request.max_length - prompt_len), np.int32)], axis=1)
    logits, cache = forward(request.ids, slot_mask, request.positions, init_cache(rows, request.max_length), 0)
    return np.asarray(logits, np.float32), cache, slot_mask


def decode(forward: Forward, init_cache, request: Request, rng: np.random.Generator, streamer=None) -> np.ndarray:
    """Greedy (argmax) or multinomial sampling; returns prompt + new tokens, trimmed as
    `transformers` trims them (at the longest row)."""
    cfg = request.config
    rows, prompt_len = request.ids.shape
    logits, cache, slot_mask = _prefill(forward, init_cache, request)
    pad = 0 if request.pad is None else request.pad
    sequences = np.concatenate([request.ids, np.full((rows, request.max_length - prompt_len), pad, np.int32)], 1)
    unfinished = np.ones(rows, bool)
    last_position = request.positions[:, -1]
    cur_len = prompt_len
    while cur_len < request.max_length and unfinished.any():
        scores = process(request, logits, sequences, cur_len, warp=cfg.do_sample)
        if cfg.do_sample:
            probs = _softmax(scores.astype(np.float64))
            tokens = np.array([rng.choice(len(p), p=p / p.sum()) for p in probs], np.int32)
        else:
            tokens = np.argmax(scores, axis=-1).astype(np.int32)
        if request.eos:
            tokens = np.where(unfinished, tokens, pad)
        if streamer is not None:
            streamer.put(tokens.astype(np.int64))
        sequences[:, cur_len] = tokens
        if request.stop is not None:
            unfinished = unfinished & ~stop_string_hits(request, sequences, cur_len + 1)
        if request.eos:
            unfinished = unfinished & ~np.isin(tokens, request.eos)
        cur_len += 1
        if cur_len < request.max_length and unfinished.any():
            positions = (last_position + (cur_len - prompt_len))[:, None]
            logits, cache = forward(sequences[:, cur_len - 1:cur_len], slot_mask, positions, cache, cur_len - 1)
            logits = np.asarray(logits, np.float32)
    return sequences[:, :cur_len].astype(np.int64)


def beam_search(forward: Forward, init_cache, reorder: Callable, request: Request,
                rng: np.random.Generator) -> np.ndarray:
    """`transformers`' vectorised beam search, as `search.beam_search` runs it in JAX.
    `reorder(cache, beam_idx)` gathers the cache rows of the surviving beams."""
    cfg = request.config
    rows, prompt_len = request.ids.shape
    num_beams = cfg.num_beams
    batch = rows // num_beams
    max_length = request.max_length
    n_eos = len(request.eos)
    beams_to_keep = max(2, 1 + n_eos) * num_beams
    top_num_beam_mask = np.arange(beams_to_keep) < num_beams
    early_true = cfg.early_stopping is True
    generated_max = max_length - prompt_len
    penalty = np.array([float(g) ** cfg.length_penalty if g else 1.0 for g in range(generated_max + 2)], np.float32)
    min_keep = (n_eos + 1 if n_eos else 2)
    fill = (request.pad if request.pad else request.eos[0]) if request.eos else -1

    logits, cache, slot_mask = _prefill(forward, init_cache, request)
    last_position = request.positions[:, -1]
    running_sequences = np.full((batch, num_beams, max_length), fill, np.int32)
    running_sequences[:, :, :prompt_len] = request.ids.reshape(batch, num_beams, prompt_len)
    sequences = running_sequences.copy()
    running_scores = np.where(np.arange(num_beams)[None, :] == 0, 0.0, -1e9).astype(np.float32) * np.ones((batch, 1),
                                                                                                            np.float32)
    beam_scores = np.full((batch, num_beams), -1e9, np.float32)
    finished = np.zeros((batch, num_beams), bool)
    unsatisfied = np.ones((batch, 1), bool)
    running_indices = np.full((batch, num_beams, generated_max), -1, np.int32)
    beam_indices = running_indices.copy()

    def gather(x, idx):
        return np.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)

    cur_len = prompt_len
    while True:
        vocab = logits.shape[-1]
        log_probs = _log_softmax(logits)
        log_probs = process(request, log_probs, running_sequences.reshape(rows, max_length), cur_len,
                            warp=cfg.do_sample, min_tokens_to_keep=min_keep)
        log_probs = (log_probs.reshape(batch, num_beams, vocab) + running_scores[:, :, None]).reshape(batch, -1)
        if cfg.do_sample:
            gumbel = rng.gumbel(size=log_probs.shape).astype(np.float32)
            topk_indices = np.argsort(-(log_probs + gumbel), axis=-1, kind="stable")[:, :beams_to_keep]
            topk_log_probs = np.take_along_axis(log_probs, topk_indices, axis=1)
            order = np.argsort(-topk_log_probs, axis=-1, kind="stable")
            topk_log_probs = np.take_along_axis(topk_log_probs, order, axis=1)
            topk_indices = np.take_along_axis(topk_indices, order, axis=1)
        else:
            topk_indices = np.argsort(-log_probs, axis=-1, kind="stable")[:, :beams_to_keep]
            topk_log_probs = np.take_along_axis(log_probs, topk_indices, axis=1)
        topk_beam = topk_indices // vocab
        topk_ids = (topk_indices % vocab).astype(np.int32)
        topk_running_indices = gather(running_indices, topk_beam)
        topk_running_sequences = gather(running_sequences, topk_beam)
        topk_running_sequences[:, :, cur_len] = topk_ids
        topk_running_indices[:, :, cur_len - prompt_len] = topk_beam + np.arange(batch)[:, None] * num_beams

        hits = np.broadcast_to(cur_len + 1 >= max_length, topk_ids.shape)
        if n_eos:
            hits = hits | np.isin(topk_ids, request.eos)
        if request.stop is not None:
            flat = topk_running_sequences.reshape(batch * beams_to_keep, max_length)
            hits = hits | stop_string_hits(request, flat, cur_len + 1).reshape(topk_ids.shape)

        topk_running_log_probs = topk_log_probs + hits.astype(np.float32) * np.float32(-1.0e9)
        next_indices = np.argsort(-topk_running_log_probs, axis=-1, kind="stable")[:, :num_beams]
        running_sequences = gather(topk_running_sequences, next_indices)
        running_scores = gather(topk_running_log_probs, next_indices)
        running_indices = gather(topk_running_indices, next_indices)

        did_finish = hits & top_num_beam_mask[None, :]
        scores = topk_log_probs / penalty[cur_len + 1 - prompt_len]
        full = finished.all(axis=-1, keepdims=True) & early_true
        scores = scores + full.astype(np.float32) * np.float32(-1.0e9)
        scores = scores + (~unsatisfied).astype(np.float32) * np.float32(-1.0e9)
        scores = scores + (~did_finish).astype(np.float32) * np.float32(-1.0e9)
        merged_scores = np.concatenate([beam_scores, scores], axis=1)
        keep = np.argsort(-merged_scores, axis=-1, kind="stable")[:, :num_beams]
        sequences = gather(np.concatenate([sequences, topk_running_sequences], axis=1), keep)
        beam_scores = gather(merged_scores, keep)
        beam_indices = gather(np.concatenate([beam_indices, topk_running_indices], axis=1), keep)
        finished = gather(np.concatenate([finished, did_finish], axis=1), keep)

        beam_idx = running_indices[:, :, cur_len - prompt_len].reshape(rows)
        cur_len += 1
        if cfg.early_stopping == "never" and cfg.length_penalty > 0:
            best_length = generated_max
        else:
            best_length = cur_len - prompt_len
        best_possible = running_scores[:, :1] / penalty[best_length]
        worst_finished = np.where(finished, beam_scores.min(axis=1, keepdims=True), np.float32(-1.0e9))
        unsatisfied = unsatisfied & (best_possible > worst_finished).any(axis=-1, keepdims=True)
        done = not (unsatisfied.any() and not (finished.all() and early_true) and not hits.all())
        if done:
            break
        cache = reorder(cache, beam_idx)
        tokens = running_sequences[:, :, cur_len - 1].reshape(rows, 1)
        positions = (last_position + (cur_len - prompt_len))[:, None]
        logits, cache = forward(tokens, slot_mask, positions, cache, cur_len - 1)
        logits = np.asarray(logits, np.float32)

    generated = (beam_indices >= 0).sum(axis=-1)
    out = sequences[:, :cfg.num_return_sequences].reshape(batch * cfg.num_return_sequences, max_length)
    return out[:, :prompt_len + int(generated[:, :cfg.num_return_sequences].max())].astype(np.int64)


def prepare_seq2seq(config: GenerationConfig, input_ids, attention_mask, vocab_size: int,
                    tokenizer=None, stop_table: bool = True) -> tuple[Request, np.ndarray, np.ndarray]:
    """An encoder-decoder generate call, checked as `transformers.generate` checks it: the decoder's
    Request (decoder start tokens; lengths count decoder tokens, the start token included) and the
    encoder's ids and mask, repeated for beams / return sequences. The JAX engine, which builds its
    own stop-string table, passes `stop_table=False`."""
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.shape[1] == 0:
        raise ValueError(f"input_ids: expected integer ids of shape (batch, length >= 1), got {ids.dtype} {ids.shape}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"input_ids: values must lie in [0, {vocab_size}) (vocab_size); found {ids.min()}..{ids.max()}")
    eos = tuple(config.eos_token_ids)
    pad = config.pad_token_id
    if pad is None and eos:
        pad = eos[0]
    start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    if start is None:
        raise ValueError("`decoder_start_token_id` or `bos_token_id` has to be defined for encoder-decoder generation.")
    if attention_mask is None:
        mask = np.ones_like(ids)
        if pad is not None and (ids == pad).any() and pad not in eos:
            mask = (ids != pad).astype(ids.dtype)
    else:
        mask = np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask: shape {mask.shape} differs from input_ids {ids.shape}")
    if config.max_new_tokens is not None:
        max_length = config.max_new_tokens + 1
    elif config.extra.get("_has_default_max_length"):
        max_length = config.max_length + 1
    else:
        max_length = config.max_length
    if max_length <= 1:
        raise ValueError(f"`max_length` ({max_length}) leaves no room for generated tokens after the decoder start "
                         "token; set `max_new_tokens`.")
    min_length = config.min_length if config.min_new_tokens is None else config.min_new_tokens + 1
    expand = max(config.num_beams, config.num_return_sequences)
    enc_ids = np.repeat(ids, expand, axis=0).astype(np.int32)
    enc_mask = np.repeat(mask, expand, axis=0).astype(np.int32)
    rows = enc_ids.shape[0]
    stop = None
    if stop_table and config.stop_strings is not None:
        stop = stopping.build_table(tokenizer, config.stop_strings)
    request = Request(np.full((rows, 1), start, np.int32), np.ones((rows, 1), np.int32), np.zeros((rows, 1), np.int32),
                      np.zeros(rows, np.int32), ids.shape[0], max_length, int(min_length or 0), eos, pad, config, stop,
                      enc_ids, encoder_decoder=True)
    return request, enc_ids, enc_mask


def generate(forward: Forward, init_cache, reorder: Callable, config: GenerationConfig, input_ids,
             attention_mask=None, vocab_size: int = 0, max_positions: Optional[int] = None,
             model_max_length: Optional[int] = None, seed: Optional[int] = None, streamer=None,
             tokenizer=None) -> np.ndarray:
    """Prompt + generated tokens (int64 numpy), as `transformers.generate` returns them.
    `tokenizer`: needed by stop_strings. `streamer` (put/end): receives the prompt, each step's
    tokens, then end() (greedy and sampling)."""
    request = prepare(config, input_ids, attention_mask, vocab_size, max_positions, model_max_length, tokenizer)
    return run(request, forward, init_cache, reorder, seed, streamer)


def run(request: Request, forward: Forward, init_cache, reorder: Callable, seed: Optional[int] = None,
        streamer=None) -> np.ndarray:
    """The decode loop `request` asks for (beam search, greedy or sampling), streaming if asked.
    Encoder-decoders (`prepare_seq2seq`): `forward` runs the decoder on the encoder output it
    holds, filling the cross-attention cache at cache index 0; the result starts with the
    decoder start token, as `transformers` returns it."""
    config = request.config
    rng = np.random.default_rng(seed)
    if config.num_beams > 1:
        if streamer is not None:
            raise ValueError("`streamer` cannot be used with beam search (yet!). Make sure that `num_beams` is set "
                             "to 1.")
        return beam_search(forward, init_cache, reorder, request, rng)
    if streamer is None:
        return decode(forward, init_cache, request, rng)
    streaming.check_streamer(streamer)
    streamer.put(request.ids.astype(np.int64))
    try:
        return decode(forward, init_cache, request, rng, streamer)
    finally:
        streamer.end()


def prepare_prompted(config: GenerationConfig, prompt, max_length: int, min_length: int, tokenizer=None) -> Request:
    """An encoder-decoder Request from a given decoder prompt (batch, P) — Whisper's
    `<|startoftranscript|> <|lang|> <|task|> <|notimestamps|>` — whose lengths the caller settled
    (`max_length` / `min_length` count decoder tokens, the prompt included). Rows are repeated for
    max(num_beams, num_return_sequences); eos / pad as `prepare_seq2seq` settles them. The prefill
    runs the P prompt tokens at cache index 0 (filling the cross-attention cache once); positions
    and cache index then continue from P."""
    ids = np.asarray(prompt)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.shape[1] == 0:
        raise ValueError(f"prompt: expected integer ids of shape (batch, length >= 1), got {ids.dtype} {ids.shape}")
    batch, prompt_len = ids.shape
    if max_length <= prompt_len:
        raise ValueError(f"`max_length` ({max_length}) leaves no room for generated tokens after the decoder prompt "
                         f"of {prompt_len} tokens; set `max_new_tokens`.")
    eos = tuple(config.eos_token_ids)
    pad = config.pad_token_id
    if pad is None and eos:
        pad = eos[0]
    expand = max(config.num_beams, config.num_return_sequences)
    ids = np.repeat(ids, expand, axis=0).astype(np.int32)
    rows = ids.shape[0]
    positions = np.broadcast_to(np.arange(prompt_len, dtype=np.int32), (rows, prompt_len)).copy()
    stop = None if config.stop_strings is None else stopping.build_table(tokenizer, config.stop_strings)
    return Request(ids, np.ones((rows, prompt_len), np.int32), positions, np.zeros(rows, np.int32), batch,
                   int(max_length), int(min_length or 0), eos, pad, config, stop, np.zeros((rows, 1), np.int32),
                   encoder_decoder=True)
