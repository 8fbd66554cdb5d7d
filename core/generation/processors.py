"""Logits processors and warpers as pure functions of (scores, ...), with `transformers`' semantics.

Each mirrors the `transformers.generation.logits_process` class named in its docstring; they run
inside the jitted decode loop, so every shape is static (the sequences are the full
(rows, max_length) buffer and `cur_len` says how much of it is filled).
"""
import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def repetition_penalty(scores, sequences, cur_len, prompt_ignore, penalty):
    """RepetitionPenaltyLogitsProcessor: every token present in `sequences[:, :cur_len]` (except
    the left padding, positions < `prompt_ignore` per row) gets its score divided by `penalty`
    if positive, multiplied if negative."""
    rows, length = sequences.shape
    vocab = scores.shape[-1]
    position = jnp.arange(length)[None, :]
    counted = (position < cur_len) & (position >= prompt_ignore[:, None])
    tokens = jnp.where(counted, jnp.clip(sequences, 0, vocab), vocab)
    present = jnp.zeros((rows, vocab + 1), bool).at[jnp.arange(rows)[:, None], tokens].set(True)[:, :vocab]
    penalised = jnp.where(scores < 0, scores * penalty, scores / penalty)
    return jnp.where(present, penalised, scores)


def eos_mask(vocab: int, eos_token_ids):
    return jnp.isin(jnp.arange(vocab), jnp.asarray(eos_token_ids, jnp.int32))


def min_length(scores, cur_len, min_len, eos_token_ids):
    """MinLengthLogitsProcessor / MinNewTokensLengthLogitsProcessor: EOS (any of the ids
    `eos_token_ids`) is impossible while the sequence (prompt included) is shorter than `min_len`."""
    banned = eos_mask(scores.shape[-1], eos_token_ids)[None, :] & (cur_len < min_len)
    return jnp.where(banned, NEG_INF, scores)


def temperature(scores, value):
    """TemperatureLogitsWarper."""
    return scores / value


def top_k(scores, k: int, min_tokens_to_keep: int = 1):
    """TopKLogitsWarper: keep scores >= the k-th largest (ties kept)."""
    k = min(max(k, min_tokens_to_keep), scores.shape[-1])
    threshold = jax.lax.top_k(scores, k)[0][..., -1:]
    return jnp.where(scores < threshold, NEG_INF, scores)


def top_p(scores, p, min_tokens_to_keep: int = 1):
    """TopPLogitsWarper: drop the least likely tokens whose cumulative probability (ascending)
    stays <= 1 - p, always keeping the `min_tokens_to_keep` most likely."""
    order = jnp.argsort(scores, axis=-1)
    sorted_scores = jnp.take_along_axis(scores, order, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_scores, axis=-1), axis=-1)
    remove_sorted = cumulative <= (1 - p)
    vocab = scores.shape[-1]
    remove_sorted = remove_sorted & (jnp.arange(vocab) < vocab - min_tokens_to_keep)[None, :]
    inverse = jnp.argsort(order, axis=-1)
    remove = jnp.take_along_axis(remove_sorted, inverse, axis=-1)
    return jnp.where(remove, NEG_INF, scores)


def min_p(scores, p, min_tokens_to_keep: int = 1):
    """MinPLogitsWarper: drop tokens less likely than p × the top probability, keeping at
    least `min_tokens_to_keep`."""
    probs = jax.nn.softmax(scores, axis=-1)
    remove = probs < p * jnp.max(probs, axis=-1, keepdims=True)
    k = min(min_tokens_to_keep, scores.shape[-1])
    kth = jax.lax.top_k(probs, k)[0][..., -1:]
    # transformers un-removes exactly the top-k indices; with distinct probabilities that is
    # "probability >= the k-th largest".
    remove = remove & (probs < kth)
    return jnp.where(remove, NEG_INF, scores)


def forced_token(scores, token_ids, active):
    """ForcedBOSTokenLogitsProcessor / ForcedEOSTokenLogitsProcessor: where `active`, every score
    is -inf except 0 for the token(s) `token_ids`."""
    allowed = jnp.isin(jnp.arange(scores.shape[-1]), jnp.reshape(jnp.asarray(token_ids, jnp.int32), (-1,)))
    forced = jnp.where(allowed[None, :], 0.0, NEG_INF)
    return jnp.where(active, jnp.asarray(forced, scores.dtype), scores)


def suppress_tokens(scores, token_ids, active=True):
    """SuppressTokensLogitsProcessor (and, where `active`, SuppressTokensAtBeginLogitsProcessor):
    -inf at the token ids `token_ids` (ids outside the vocabulary are ignored)."""
    banned = jnp.isin(jnp.arange(scores.shape[-1]), jnp.reshape(jnp.asarray(token_ids, jnp.int32), (-1,)))
    return jnp.where(banned[None, :] & active, NEG_INF, scores)


def _ban(scores, tokens, hit):
    """-inf at `tokens` (rows, n) of each row where `hit` (rows, n)."""
    rows, vocab = scores.shape
    tokens = jnp.where(hit, jnp.clip(tokens, 0, vocab), vocab)
    banned = jnp.zeros((rows, vocab + 1), bool).at[jnp.arange(rows)[:, None], tokens].set(True)[:, :vocab]
    return jnp.where(banned, NEG_INF, scores)


def _ngram_windows(ids, n: int):
    """Every window of n consecutive tokens: (rows, length - n + 1, n)."""
    starts = ids.shape[1] - n + 1
    return jnp.stack([ids[:, k:k + starts] for k in range(n)], axis=-1)


def _ngram_prefix_match(windows, sequences, cur_len, n: int):
    """Whether each window's first n - 1 tokens equal the last n - 1 tokens of `sequences[:, :cur_len]`."""
    if n == 1:
        return jnp.ones(windows.shape[:2], bool)
    prefix = jax.lax.dynamic_slice_in_dim(sequences, jnp.maximum(cur_len - (n - 1), 0), n - 1, axis=1)
    return jnp.all(windows[:, :, :-1] == prefix[:, None, :], axis=-1)


def no_repeat_ngram(scores, sequences, cur_len, n: int):
    """NoRepeatNGramLogitsProcessor: a token that would repeat an n-gram of `sequences[:, :cur_len]`
    (prompt and its padding included, as transformers counts them) is impossible. Static shapes:
    every window of the (rows, max_length) buffer, those past `cur_len` masked out."""
    length = sequences.shape[1]
    if length < n:
        return scores
    windows = _ngram_windows(sequences, n)
    inside = jnp.arange(windows.shape[1])[None, :] + n <= cur_len
    hit = inside & _ngram_prefix_match(windows, sequences, cur_len, n) & (cur_len + 1 >= n)
    return _ban(scores, windows[:, :, -1], hit)


def encoder_no_repeat_ngram(scores, encoder_ids, sequences, cur_len, n: int):
    """EncoderNoRepeatNGramLogitsProcessor: a token that would complete an n-gram of the encoder
    input (`encoder_ids`, one row per hypothesis; the prompt for decoder-only models) is impossible."""
    if encoder_ids.shape[1] < n:
        return scores
    windows = _ngram_windows(encoder_ids, n)
    hit = _ngram_prefix_match(windows, sequences, cur_len, n) & (cur_len + 1 >= n)
    return _ban(scores, windows[:, :, -1], hit)


def whisper_timestamps(scores, sequences, cur_len, begin_index, timestamp_begin, no_timestamps_token_id,
                       eos_token_id, max_initial_timestamp_index):
    """WhisperTimeStampLogitsProcessor on `sequences[:, begin_index:cur_len]` (the tokens generated
    after the decoder prompt): <|notimestamps|> never; timestamps in pairs (after a pair, text; after
    a single timestamp, a timestamp or eos and above); timestamps never decrease (and never repeat
    but as the second of a pair); the first generated token a timestamp, at most
    `max_initial_timestamp_index` (a value ≥ the vocabulary: no limit); text banned when the
    timestamps' total probability beats every single text token (`_detect_timestamp_from_logprob`)."""
    rows, length = sequences.shape
    vocab = scores.shape[-1]
    ids = jnp.arange(vocab)[None, :]
    position = jnp.arange(length)[None, :]
    scores = jnp.where(ids == no_timestamps_token_id, NEG_INF, scores)
    generated = cur_len - begin_index
    is_timestamp = sequences >= timestamp_begin
    last = jax.lax.dynamic_index_in_dim(sequences, jnp.maximum(cur_len - 1, 0), axis=1, keepdims=False)
    penultimate = jax.lax.dynamic_index_in_dim(sequences, jnp.maximum(cur_len - 2, 0), axis=1, keepdims=False)
    last_was = (generated >= 1) & (last >= timestamp_begin)
    penultimate_was = (generated < 2) | (penultimate >= timestamp_begin)
    text_or_below_eos = ids < eos_token_id
    timestamp_ids = ids >= timestamp_begin
    ban = (last_was & penultimate_was)[:, None] & timestamp_ids
    ban = ban | (last_was & ~penultimate_was)[:, None] & text_or_below_eos
    seen = is_timestamp & (position >= begin_index) & (position < cur_len)
    any_seen = jnp.any(seen, axis=1)
    last_index = jnp.max(jnp.where(seen, position, -1), axis=1)
    last_timestamp = jnp.take_along_axis(sequences, jnp.maximum(last_index, 0)[:, None], axis=1)[:, 0]
    timestamp_last = jnp.where(any_seen, jnp.where(last_was & ~penultimate_was, last_timestamp, last_timestamp + 1),
                               timestamp_begin)
    ban = ban | (timestamp_ids & (ids < timestamp_last[:, None]))
    initial = generated == 0
    ban = ban | (initial & (ids < timestamp_begin))
    ban = ban | (initial & (ids > timestamp_begin + max_initial_timestamp_index))
    scores = jnp.where(ban, NEG_INF, scores)
    logprobs = jax.nn.log_softmax(jnp.asarray(scores, jnp.float32), axis=-1)
    timestamp_logprob = jax.nn.logsumexp(jnp.where(timestamp_ids, logprobs, NEG_INF), axis=-1)
    max_text = jnp.max(jnp.where(timestamp_ids, NEG_INF, logprobs), axis=-1)
    sample_timestamp = (timestamp_logprob > max_text)[:, None]
    return jnp.where(sample_timestamp & ~timestamp_ids, NEG_INF, scores)
