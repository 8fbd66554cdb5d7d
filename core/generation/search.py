"""The decode loops: prefill and every generated token inside one `jit` (`lax.while_loop`).

Greedy / sampling (`decode`) and beam search (`beam_search`) follow `transformers`' `_sample`
and `_beam_search` step by step, so that greedy and beam outputs are token-identical to
`transformers.generate`. Shapes are static: the KV cache holds `max_length` positions, the
sequences buffer is (rows, max_length), and the loop stops early (as `transformers` does) when
every row is finished; the host trims the buffer to the length actually generated.

Params are arguments of the jitted functions (never closed-over constants); the module and the
settings that change the program (lengths, token ids, which processors run) are static, the
values of temperature / top_p / min_p / penalties are traced (changing them does not recompile).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from core.generation import processors as proc
from core.generation import stopping, streaming


@dataclasses.dataclass(frozen=True)
class Plan:
    """The static part of a generate call (hashable: a jit static argument): what decides the
    shapes and which code runs."""
    max_length: int
    n_eos: int                   # how many eos ids (their values are in Knobs)
    do_sample: bool
    top_k: int                   # 0: off
    use_temperature: bool
    use_top_p: bool
    use_min_p: bool
    use_repetition_penalty: bool
    use_min_length: bool
    min_tokens_to_keep: int = 1
    num_beams: int = 1
    num_return_sequences: int = 1
    early_stopping: bool | str = False
    length_penalty_positive: bool = False
    encoder_decoder: bool = False    # seq2seq: `module.decode` with a cross-attention cache
    forced_bos: bool = False         # ForcedBOSTokenLogitsProcessor (token id in Knobs)
    forced_eos: bool = False         # ForcedEOSTokenLogitsProcessor (token ids in Knobs)
    no_repeat_ngram_size: int = 0    # NoRepeatNGramLogitsProcessor (0: off)
    encoder_no_repeat_ngram_size: int = 0   # EncoderNoRepeatNGramLogitsProcessor (ids in Knobs)
    stop: tuple = ()                 # StopStringCriteria: `stopping.StopStringTable.dims` (table in Knobs)
    stream: bool = False             # push each step's tokens to the host streamer (`streaming`)
    suppress: bool = False           # SuppressTokensLogitsProcessor (ids in Knobs)
    begin_suppress: bool = False     # SuppressTokensAtBeginLogitsProcessor (ids, begin index in Knobs)
    timestamps: bool = False         # WhisperTimeStampLogitsProcessor (token ids, begin index in Knobs)


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The traced part: values that change no shape (new values reuse the compiled loop)."""
    temperature: jax.Array       # float32 scalars
    top_p: jax.Array
    min_p: jax.Array
    repetition_penalty: jax.Array
    min_length: jax.Array        # int32 scalars
    pad_token_id: jax.Array      # fill of finished rows and of the buffer's unused tail
    beam_fill: jax.Array         # transformers' fill value of beam outputs
    eos_token_ids: jax.Array     # int32 (n_eos,)
    forced_bos_token_id: jax.Array = 0
    forced_eos_token_ids: jax.Array = 0
    encoder_ids: jax.Array = 0       # (rows, encoder length) int32: encoder_no_repeat_ngram_size's source
    stop_table: jax.Array = 0        # stopping.StopStringTable.table
    stop_target_lens: jax.Array = 0
    stream_id: jax.Array = 0         # int32: which registered streamer receives the tokens
    suppress_tokens: jax.Array = 0   # int32 (n,): suppress_tokens
    begin_suppress_tokens: jax.Array = 0   # int32 (n,): begin_suppress_tokens
    begin_index: jax.Array = 0       # int32: the sequence length where begin_suppress_tokens apply
    timestamp_begin: jax.Array = 0   # int32 scalars: WhisperTimeStampLogitsProcessor's settings
    no_timestamps_token_id: jax.Array = 0
    timestamp_eos: jax.Array = 0
    max_initial_timestamp_index: jax.Array = 0   # ≥ vocab: no limit
    timestamp_begin_index: jax.Array = 0         # the prompt length: where the generated tokens start


jax.tree_util.register_dataclass(Knobs)


def _forward(module, params, input_ids, slot_mask, position_ids, cache, cache_index, context=None):
    """One forward with the cache. `context` (encoder-decoders): (encoder last hidden state, its
    attention mask); the cross-attention keys/values are already in the cache."""
    if context is not None:
        out = module.apply({"params": params}, input_ids, None, context[1], slot_mask, cache, cache_index, False,
                           logits_to_keep=1, method="decode")
    else:
        out = module.apply({"params": params}, input_ids=input_ids, attention_mask=slot_mask,
                           position_ids=position_ids, cache=cache, cache_index=cache_index, logits_to_keep=1)
    return jnp.asarray(out.logits[:, -1], jnp.float32), out.cache


def _process(plan: Plan, knobs: Knobs, scores, sequences, cur_len, prompt_ignore, warp: bool):
    """The processors `transformers` builds for these settings, in its order."""
    if plan.begin_suppress:
        scores = proc.suppress_tokens(scores, knobs.begin_suppress_tokens, cur_len == knobs.begin_index)
    if plan.suppress:
        scores = proc.suppress_tokens(scores, knobs.suppress_tokens)
    if plan.use_repetition_penalty:
        scores = proc.repetition_penalty(scores, sequences, cur_len, prompt_ignore, knobs.repetition_penalty)
    if plan.no_repeat_ngram_size:
        scores = proc.no_repeat_ngram(scores, sequences, cur_len, plan.no_repeat_ngram_size)
    if plan.encoder_no_repeat_ngram_size:
        scores = proc.encoder_no_repeat_ngram(scores, knobs.encoder_ids, sequences, cur_len,
                                              plan.encoder_no_repeat_ngram_size)
    if plan.n_eos and plan.use_min_length:
        scores = proc.min_length(scores, cur_len, knobs.min_length, knobs.eos_token_ids)
    if plan.forced_bos:
        scores = proc.forced_token(scores, knobs.forced_bos_token_id, cur_len == 1)
    if plan.forced_eos:
        scores = proc.forced_token(scores, knobs.forced_eos_token_ids, cur_len == plan.max_length - 1)
    if warp:
        if plan.use_temperature:
            scores = proc.temperature(scores, knobs.temperature)
        if plan.top_k:
            scores = proc.top_k(scores, plan.top_k, plan.min_tokens_to_keep)
        if plan.use_top_p:
            scores = proc.top_p(scores, knobs.top_p, plan.min_tokens_to_keep)
        if plan.use_min_p:
            scores = proc.min_p(scores, knobs.min_p, plan.min_tokens_to_keep)
    if plan.timestamps:
        # Whisper passes it as a custom processor: transformers runs it after its own (warpers included).
        scores = proc.whisper_timestamps(scores, sequences, cur_len, knobs.timestamp_begin_index,
                                         knobs.timestamp_begin, knobs.no_timestamps_token_id, knobs.timestamp_eos,
                                         knobs.max_initial_timestamp_index)
    return scores


def _prefill(module, params, plan, input_ids, attention_mask, position_ids, context=None):
    """The prompt (decoder-only) or the decoder start tokens (encoder-decoder: the encoder
    output's keys/values of every layer go into the cross-attention cache here)."""
    rows, prompt_len = input_ids.shape
    slot_mask = jnp.concatenate(
        [attention_mask, jnp.ones((rows, plan.max_length - prompt_len), attention_mask.dtype)], axis=1)
    if context is None:
        cache = module.init_cache(rows, plan.max_length)
        logits, cache = _forward(module, params, input_ids, slot_mask, position_ids, cache, 0)
        return logits, cache, slot_mask
    cache = module.init_cache(rows, plan.max_length, context[0].shape[1])
    out = module.apply({"params": params}, input_ids, context[0], context[1], slot_mask, cache, 0, True,
                       logits_to_keep=1, method="decode")
    return jnp.asarray(out.logits[:, -1], jnp.float32), out.cache, slot_mask


def _stop_string_hits(plan: Plan, knobs: Knobs, sequences, cur_len):
    """StopStringCriteria on `sequences[:, :cur_len]` (see `stopping.check`)."""
    length = plan.stop[-1]
    index = cur_len - 1 - jnp.arange(length)
    tokens = jnp.take(sequences, jnp.clip(index, 0, None), axis=1)
    dummy = knobs.stop_table.shape[0] - 1
    flipped = jnp.where(index[None, :] >= 0, tokens, dummy)
    return stopping.check(jnp, knobs.stop_table, knobs.stop_target_lens, plan.stop, flipped)


# -- greedy and sampling ---------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("module", "plan"))
def decode(module, plan: Plan, params, input_ids, attention_mask, position_ids, prompt_ignore, rng, knobs: Knobs,
           context=None):
    """Greedy (argmax) or multinomial sampling. Returns (sequences (rows, max_length), length)."""
    rows, prompt_len = input_ids.shape
    max_length = plan.max_length
    logits, cache, slot_mask = _prefill(module, params, plan, input_ids, attention_mask, position_ids, context)
    pad = jnp.asarray(knobs.pad_token_id, input_ids.dtype)
    sequences = jnp.concatenate([input_ids, jnp.full((rows, max_length - prompt_len), pad, input_ids.dtype)], axis=1)
    last_position = position_ids[:, -1]
    eos = jnp.asarray(knobs.eos_token_ids, input_ids.dtype) if plan.n_eos else None

    def choose(cur_len, sequences, logits, unfinished, rng):
        scores = _process(plan, knobs, logits, sequences, cur_len, prompt_ignore, warp=plan.do_sample)
        rng, key = jax.random.split(rng)
        if plan.do_sample:
            tokens = jax.random.categorical(key, scores, axis=-1)
        else:
            tokens = jnp.argmax(scores, axis=-1)
        tokens = jnp.asarray(tokens, sequences.dtype)
        if eos is not None:
            # transformers pads finished rows only when an eos criterion exists.
            tokens = jnp.where(unfinished, tokens, pad)
        if plan.stream:
            streaming.emit(knobs.stream_id, tokens)
        sequences = jax.lax.dynamic_update_slice(sequences, tokens[:, None], (0, cur_len))
        if plan.stop:
            unfinished = unfinished & ~_stop_string_hits(plan, knobs, sequences, cur_len + 1)
        if eos is not None:
            unfinished = unfinished & ~jnp.isin(tokens, eos)
        return cur_len + 1, sequences, unfinished, rng

    def cond(state):
        cur_len, _, _, _, unfinished, _ = state
        return (cur_len < max_length) & jnp.any(unfinished)

    def body(state):
        cur_len, sequences, cache, logits, unfinished, rng = state
        cur_len, sequences, unfinished, rng = choose(cur_len, sequences, logits, unfinished, rng)

        def next_logits(cache):
            token = jax.lax.dynamic_slice_in_dim(sequences, cur_len - 1, 1, axis=1)
            positions = (last_position + (cur_len - prompt_len))[:, None]
            return _forward(module, params, token, slot_mask, positions, cache, cur_len - 1, context)

        # The forward of the token just chosen only when the loop goes on (no wasted last step).
        logits, cache = jax.lax.cond((cur_len < max_length) & jnp.any(unfinished), next_logits,
                                     lambda cache: (logits, cache), cache)
        return cur_len, sequences, cache, logits, unfinished, rng

    state = (jnp.asarray(prompt_len, jnp.int32), sequences, cache, logits, jnp.ones((rows,), bool), rng)
    cur_len, sequences, _, _, _, _ = jax.lax.while_loop(cond, body, state)
    return sequences, cur_len


# -- beam search -----------------------------------------------------------------------------------

def _gather_beams(x, indices):
    """x (batch, beams, ...) gathered along the beam axis by indices (batch, k)."""
    indices = jnp.reshape(indices, indices.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, indices, axis=1)


@functools.partial(jax.jit, static_argnames=("module", "plan"))
def beam_search(module, plan: Plan, params, input_ids, attention_mask, position_ids, prompt_ignore, rng,
                knobs: Knobs, length_penalty_table, context=None):
    """`transformers`' vectorised beam search (`_beam_search`), one step per loop iteration.

    `input_ids` etc. are already expanded to (batch * num_beams, prompt_len). `length_penalty_table[g]`
    is `g ** length_penalty` for g generated tokens, computed on the host in double precision as
    `transformers` computes it. Returns (sequences (batch, num_beams, max_length), beam scores,
    per-beam generated lengths)."""
    rows, prompt_len = input_ids.shape
    num_beams = plan.num_beams
    batch = rows // num_beams
    max_length = plan.max_length
    beams_to_keep = max(2, 1 + plan.n_eos) * num_beams
    top_num_beam_mask = jnp.arange(beams_to_keep) < num_beams
    eos = jnp.asarray(knobs.eos_token_ids, jnp.int32) if plan.n_eos else None
    early_true = plan.early_stopping is True
    generated_max = max_length - prompt_len

    logits, cache, slot_mask = _prefill(module, params, plan, input_ids, attention_mask, position_ids, context)
    last_position = position_ids[:, -1]

    running_sequences = jnp.full((batch, num_beams, max_length), knobs.beam_fill, jnp.int32)
    running_sequences = running_sequences.at[:, :, :prompt_len].set(
        jnp.reshape(jnp.asarray(input_ids, jnp.int32), (batch, num_beams, prompt_len)))
    sequences = running_sequences
    running_beam_scores = jnp.where(jnp.arange(num_beams)[None, :] == 0, 0.0, -1e9) * jnp.ones((batch, 1), jnp.float32)
    running_beam_scores = jnp.asarray(running_beam_scores, jnp.float32)
    beam_scores = jnp.full((batch, num_beams), -1e9, jnp.float32)
    is_sent_finished = jnp.zeros((batch, num_beams), bool)
    unsatisfied = jnp.ones((batch, 1), bool)
    running_beam_indices = jnp.full((batch, num_beams, generated_max), -1, jnp.int32)
    beam_indices = running_beam_indices

    def step(state, logits):
        (cur_len, running_sequences, running_beam_scores, running_beam_indices, sequences, beam_scores,
         beam_indices, is_sent_finished, unsatisfied, cache, rng, _) = state
        vocab = logits.shape[-1]
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        flat_running = jnp.reshape(running_sequences, (rows, max_length))
        log_probs = _process(plan, knobs, log_probs, flat_running, cur_len, prompt_ignore, warp=plan.do_sample)
        log_probs = jnp.reshape(log_probs, (batch, num_beams, vocab)) + running_beam_scores[:, :, None]
        log_probs = jnp.reshape(log_probs, (batch, num_beams * vocab))

        # _get_top_k_continuations
        if plan.do_sample:
            rng, key = jax.random.split(rng)
            # Sampling without replacement ∝ softmax(log_probs): the Gumbel top-k trick.
            gumbel = jax.random.gumbel(key, log_probs.shape, jnp.float32)
            _, topk_indices = jax.lax.top_k(log_probs + gumbel, beams_to_keep)
            topk_log_probs = jnp.take_along_axis(log_probs, topk_indices, axis=1)
            order = jnp.argsort(-topk_log_probs, axis=-1)
            topk_log_probs = jnp.take_along_axis(topk_log_probs, order, axis=1)
            topk_indices = jnp.take_along_axis(topk_indices, order, axis=1)
        else:
            topk_log_probs, topk_indices = jax.lax.top_k(log_probs, beams_to_keep)
        topk_current_beam = topk_indices // vocab
        topk_ids = topk_indices % vocab
        topk_running_beam_indices = _gather_beams(running_beam_indices, topk_current_beam)
        topk_running_sequences = _gather_beams(running_sequences, topk_current_beam)
        topk_running_sequences = topk_running_sequences.at[:, :, cur_len].set(topk_ids)
        batch_modified = topk_current_beam + jnp.arange(batch)[:, None] * num_beams
        topk_running_beam_indices = topk_running_beam_indices.at[:, :, cur_len - prompt_len].set(batch_modified)

        # stopping criteria on the candidates: max length, eos
        hits = jnp.broadcast_to(cur_len + 1 >= max_length, topk_ids.shape)
        if eos is not None:
            hits = hits | jnp.isin(topk_ids, eos)
        if plan.stop:
            flat = jnp.reshape(topk_running_sequences, (batch * beams_to_keep, max_length))
            hits = hits | jnp.reshape(_stop_string_hits(plan, knobs, flat, cur_len + 1), topk_ids.shape)

        # _get_running_beams_for_next_iteration
        topk_running_log_probs = topk_log_probs + jnp.asarray(hits, jnp.float32) * -1.0e9
        next_indices = jax.lax.top_k(topk_running_log_probs, num_beams)[1]
        running_sequences = _gather_beams(topk_running_sequences, next_indices)
        running_beam_scores = _gather_beams(topk_running_log_probs, next_indices)
        running_beam_indices = _gather_beams(topk_running_beam_indices, next_indices)

        # _update_finished_beams
        did_finish = hits & top_num_beam_mask[None, :]
        scores = topk_log_probs / length_penalty_table[cur_len + 1 - prompt_len]
        full = jnp.all(is_sent_finished, axis=-1, keepdims=True) & early_true
        scores = scores + jnp.asarray(full, jnp.float32) * -1.0e9
        scores = scores + jnp.asarray(~unsatisfied, jnp.float32) * -1.0e9
        scores = scores + jnp.asarray(~did_finish, jnp.float32) * -1.0e9
        merged_sequences = jnp.concatenate([sequences, topk_running_sequences], axis=1)
        merged_scores = jnp.concatenate([beam_scores, scores], axis=1)
        merged_beam_indices = jnp.concatenate([beam_indices, topk_running_beam_indices], axis=1)
        merged_finished = jnp.concatenate([is_sent_finished, did_finish], axis=1)
        keep = jax.lax.top_k(merged_scores, num_beams)[1]
        sequences = _gather_beams(merged_sequences, keep)
        beam_scores = _gather_beams(merged_scores, keep)
        beam_indices = _gather_beams(merged_beam_indices, keep)
        is_sent_finished = _gather_beams(merged_finished, keep)

        # the cache follows the surviving beams
        beam_idx = jnp.reshape(jax.lax.dynamic_index_in_dim(running_beam_indices, cur_len - prompt_len, axis=2,
                                                            keepdims=False), (rows,))
        cache = jax.tree.map(lambda c: jnp.take(c, beam_idx, axis=1), cache)

        cur_len = cur_len + 1
        # _check_early_stop_heuristic
        if plan.early_stopping == "never" and plan.length_penalty_positive:
            best_length = generated_max
        else:
            best_length = cur_len - prompt_len
        best_possible = running_beam_scores[:, :1] / length_penalty_table[best_length]
        worst_finished = jnp.where(is_sent_finished, jnp.min(beam_scores, axis=1, keepdims=True), -1.0e9)
        unsatisfied = unsatisfied & jnp.any(best_possible > worst_finished, axis=-1, keepdims=True)
        # _beam_search_has_unfinished_sequences
        improvement_possible = jnp.any(unsatisfied)
        exists_open_beam = ~(jnp.all(is_sent_finished) & early_true)
        valid_continuations = ~jnp.all(hits)
        done = ~(improvement_possible & exists_open_beam & valid_continuations)
        return (cur_len, running_sequences, running_beam_scores, running_beam_indices, sequences, beam_scores,
                beam_indices, is_sent_finished, unsatisfied, cache, rng, done)

    def cond(state):
        return ~state[-1]

    def body(carry):
        state, logits = carry
        state = step(state, logits)
        cur_len, running_sequences, cache, done = state[0], state[1], state[9], state[-1]

        def next_logits(cache):
            tokens = jnp.reshape(jax.lax.dynamic_index_in_dim(running_sequences, cur_len - 1, axis=2,
                                                              keepdims=False), (rows, 1))
            positions = (last_position + (cur_len - prompt_len))[:, None]
            return _forward(module, params, tokens, slot_mask, positions, cache, cur_len - 1, context)

        logits, cache = jax.lax.cond(done, lambda cache: (logits, cache), next_logits, cache)
        return state[:9] + (cache,) + state[10:], logits

    state = (jnp.asarray(prompt_len, jnp.int32), running_sequences, running_beam_scores, running_beam_indices,
             sequences, beam_scores, beam_indices, is_sent_finished, unsatisfied, cache, rng, jnp.asarray(False))
    state, _ = jax.lax.while_loop(lambda carry: cond(carry[0]), body, (state, logits))
    sequences, beam_scores, beam_indices = state[4], state[5], state[6]
    generated = jnp.sum(beam_indices >= 0, axis=-1)
    return sequences, beam_scores, generated
