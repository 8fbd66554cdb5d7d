"""`CausalLMModel`: a `PretrainedModel` for the causal-lm task, with `generate`.

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokens = model.generate(input_ids, attention_mask=mask, max_new_tokens=32)            # greedy
    tokens = model.generate(input_ids, do_sample=True, top_p=0.9, seed=0)               # sampling
    tokens = model.generate(input_ids, num_beams=4, num_return_sequences=2)             # beam search

`generate` takes `transformers`' argument names and returns what `transformers.generate`
returns, as a numpy array: prompt + new tokens, rows padded with `pad_token_id` after their EOS.
"""
from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import secrets
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from core.generation import search, stopping, streaming
from core.generation.config import GenerationConfig
from core.layers import prims as P
from core.modeling import _STATIC, PretrainedModel, _dummy_inputs


def decode_params(model: PretrainedModel):
    """The params the decode loop runs on. Decoding at small batch reads every weight once per
    token, so the weights' layout is what decides its speed:
    - XLA:CPU copies each layer's weights out of a stacked scan (dynamic-slice) before using
      them, twice the memory traffic; so the loop runs on one buffer per layer
      (`P.per_layer_params`), read in place;
    - XLA:CPU's dot at a few rows reads an (out, in) kernel faster than Flax's (in, out), up to
      1.7× for a tall one (an MLP's down projection); so the copy stores every `Dense` kernel
      transposed (`kernel_t`, see `P.Dense`).
    The copy is made on the first `generate` and kept while `model.params` is the same object.
    `model.decode_layout = "stacked"` decodes on `model.params` as they are (no extra copy of
    the weights, slower decoding)."""
    if getattr(model, "decode_layout", "per_layer") == "stacked":
        return model.params
    cached = getattr(model, "_decode_params", None)
    if cached is None or cached[0] is not model.params:
        paths = P.dense_paths(model.module, **_dummy_inputs(model.task, model.config))
        cached = (model.params, P.per_layer_params(model.params, transposed_dense=paths))
        model._decode_params = cached
    return cached[1]


class CausalLMModel(PretrainedModel):
    """See the module docstring. `generation_config` holds the model's generation defaults
    (`generation_config.json`, else the token ids of config.json)."""

    decode_layout = "per_layer"     # or "stacked": see `decode_params`

    def __init__(self, config, module, params: Mapping, task: str, load_report: Optional[dict] = None,
                 generation_config: Optional[GenerationConfig] = None):
        super().__init__(config, module, params, task, load_report)
        self._apply = jax.jit(module.apply, static_argnames=_STATIC + ("logits_to_keep",))
        self.generation_config = generation_config or GenerationConfig.from_model_config(config)

    @classmethod
    def from_pretrained(cls, folder, task: str = "causal-lm", **kwargs) -> "CausalLMModel":
        model = super().from_pretrained(folder, task=task, **kwargs)
        folder = pathlib.Path(folder)       # a .gguf file itself: its folder has no generation_config.json
        model.generation_config = GenerationConfig.from_pretrained(folder if folder.is_dir() else folder.parent,
                                                                   model.config)
        return model

    @classmethod
    def from_config(cls, config, task: str = "causal-lm", **kwargs) -> "CausalLMModel":
        return super().from_config(config, task=task, **kwargs)

    def save_pretrained(self, folder, max_shard_size: int | str = "5GB") -> pathlib.Path:
        folder = super().save_pretrained(folder, max_shard_size=max_shard_size)
        self.generation_config.save_pretrained(folder)
        return folder

    # -- calling ----------------------------------------------------------------------------------
    def __call__(self, deterministic: bool = True, dropout_rng=None, output_attentions: bool = False,
                 output_hidden_states: bool = False, params: Optional[Mapping] = None, cache=None,
                 cache_index=0, logits_to_keep: int = 0, **inputs):
        """As `PretrainedModel.__call__`, plus the explicit KV cache: `cache` (from `init_cache`)
        and `cache_index` (positions already in it); the output's `cache` is the updated one.
        With a cache, `attention_mask` covers all of its slots: (batch, max_length)."""
        inputs = {k: v for k, v in inputs.items() if v is not None}
        if "input_ids" not in inputs:
            raise TypeError(f"{type(self.module).__name__} needs input_ids; got {sorted(inputs)}")
        arrays = {k: self._check_input(k, v) for k, v in inputs.items()}
        rngs = None
        if not deterministic:
            if dropout_rng is None:
                raise ValueError("deterministic=False (training-mode dropout) needs dropout_rng=jax.random.key(...)")
            rngs = {"dropout": dropout_rng}
        return self._apply({"params": self.params if params is None else params}, **arrays, cache=cache,
                           cache_index=cache_index, logits_to_keep=logits_to_keep, deterministic=deterministic,
                           output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                           rngs=rngs)

    def init_cache(self, batch_size: int, max_length: int):
        """An empty KV cache for `batch_size` rows of up to `max_length` positions."""
        return self.module.init_cache(batch_size, max_length)

    # -- generation -------------------------------------------------------------------------------
    def generate(self, input_ids, attention_mask=None, generation_config: Optional[GenerationConfig] = None,
                 seed: Optional[int] = None, prng_key=None, streamer=None, tokenizer=None, **kwargs) -> np.ndarray:
        """Generate continuations of `input_ids` (batch, length) — left-pad a batch of prompts of
        different lengths and pass its `attention_mask`. Options are `transformers`' names
        (max_new_tokens, max_length, min_new_tokens, min_length, do_sample, temperature, top_k,
        top_p, min_p, repetition_penalty, no_repeat_ngram_size, encoder_no_repeat_ngram_size,
        stop_strings (needs `tokenizer=`), num_beams, length_penalty, early_stopping,
        num_return_sequences, eos_token_id, pad_token_id), over `generation_config`, over
        `self.generation_config`. Sampling draws from `prng_key` (a jax key) or `seed`; with
        neither, from a fresh random seed. `streamer` (an object with put/end, see
        `core.generation.streaming`) receives the prompt, then each step's tokens (greedy and
        sampling), then `end()`.

        Returns int64 numpy (batch * num_return_sequences, prompt + generated): like
        `transformers`, the output stops at the longest row, and rows that finished earlier are
        padded with pad_token_id (beam search: transformers' fill value)."""
        cfg = self.generation_config.merged(generation_config, **kwargs)
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"input_ids: expected integer ids of shape (batch, length), got {ids.dtype} {ids.shape}")
        if ids.shape[1] == 0:
            raise ValueError("input_ids: empty prompt (length 0); generation needs at least one token")
        vocab = self.config.vocab_size
        if ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(f"input_ids: values must lie in [0, {vocab}) (vocab_size); found {ids.min()}..{ids.max()}")
        batch, prompt_len = ids.shape
        eos = cfg.eos_token_ids
        pad = cfg.pad_token_id
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
        if batch > 1 and (mask[:, -1] == 0).any():
            logging.warning("A decoder-only architecture is being used, but right-padding was detected! For correct "
                            "generation results, please set `padding_side='left'` when initializing the tokenizer.")

        max_length = self._max_length(cfg, prompt_len)
        if prompt_len >= max_length:
            raise ValueError(f"Input length of input_ids is {prompt_len}, but `max_length` is set to {max_length}. "
                             "This can lead to unexpected behavior. You should consider increasing `max_length` or, "
                             "better yet, setting `max_new_tokens`.")
        limit = self.max_length
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length {max_length} (prompt {prompt_len} + new tokens) exceeds the model's maximum "
                             f"of {limit} positions; generate fewer tokens or shorten the prompt")
        min_length = cfg.min_length
        if cfg.min_new_tokens is not None:
            min_length = cfg.min_new_tokens + prompt_len

        expand = max(cfg.num_beams, cfg.num_return_sequences)
        ids = np.repeat(ids, expand, axis=0).astype(np.int32)
        mask = np.repeat(mask, expand, axis=0)
        positions = np.where(mask == 0, 0, np.cumsum(mask, axis=-1) - 1).astype(np.int32)
        # transformers' repetition penalty skips the left padding of each row.
        prompt_ignore = np.argmax(mask != 0, axis=1).astype(np.int32)

        if prng_key is None:
            prng_key = jax.random.key(secrets.randbits(32) if seed is None else seed)
        beam = cfg.num_beams > 1
        min_length = int(min_length or 0)
        feature_plan, feature_knobs = generation_features(cfg, tokenizer, streamer, ids)
        suppress_plan, suppress_knobs = suppress_features(cfg, prompt_len)
        feature_plan, feature_knobs = {**feature_plan, **suppress_plan}, {**feature_knobs, **suppress_knobs}
        knobs = search.Knobs(
            temperature=jnp.float32(cfg.temperature), top_p=jnp.float32(cfg.top_p),
            min_p=jnp.float32(cfg.min_p if cfg.min_p is not None else 0.0),
            repetition_penalty=jnp.float32(cfg.repetition_penalty), min_length=jnp.int32(min_length),
            pad_token_id=jnp.int32(0 if pad is None else pad),
            # transformers: `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1`
            beam_fill=jnp.int32((pad if pad else eos[0]) if eos else -1),
            eos_token_ids=jnp.asarray(eos, jnp.int32), **feature_knobs)
        plan = search.Plan(
            max_length=max_length, n_eos=len(eos), do_sample=bool(cfg.do_sample),
            top_k=int(cfg.top_k or 0) if cfg.do_sample else 0,
            use_temperature=bool(cfg.do_sample) and cfg.temperature != 1.0,
            use_top_p=bool(cfg.do_sample) and cfg.top_p < 1.0,
            use_min_p=bool(cfg.do_sample) and cfg.min_p is not None,
            use_repetition_penalty=cfg.repetition_penalty != 1.0, use_min_length=min_length > 0,
            min_tokens_to_keep=((len(eos) + 1 if eos else 2) if beam else 1), num_beams=cfg.num_beams,
            num_return_sequences=cfg.num_return_sequences, early_stopping=cfg.early_stopping,
            length_penalty_positive=cfg.length_penalty > 0.0, **feature_plan)
        args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions), jnp.asarray(prompt_ignore), prng_key,
                knobs)
        if not beam:
            with streaming_session(streamer, knobs, ids) as knobs:
                sequences, length = search.decode(self.module, plan, decode_params(self), *args[:-1], knobs)
                return np.asarray(sequences, np.int64)[:, :int(length)]
        # g ** length_penalty in double precision, as transformers' Python arithmetic computes it.
        table = np.array([float(g) ** cfg.length_penalty if g else 1.0 for g in range(max_length - prompt_len + 2)],
                         np.float32)
        sequences, _, generated = search.beam_search(self.module, plan, decode_params(self), *args,
                                                     jnp.asarray(table))
        sequences = np.asarray(sequences, np.int64)[:, :cfg.num_return_sequences]
        generated = np.asarray(generated)[:, :cfg.num_return_sequences]
        sequences = sequences.reshape(batch * cfg.num_return_sequences, max_length)
        return sequences[:, :prompt_len + int(generated.max())]

    def _max_length(self, cfg: GenerationConfig, prompt_len: int) -> int:
        """transformers' _prepare_generated_length: max_new_tokens wins; a default max_length
        (20) counts new tokens and is capped at max_position_embeddings."""
        if cfg.max_new_tokens is not None:
            return cfg.max_new_tokens + prompt_len
        if cfg.extra.get("_has_default_max_length"):
            length = cfg.max_length + prompt_len
            limit = getattr(self.config, "max_position_embeddings", None)
            return min(length, limit) if limit is not None else length
        return cfg.max_length


def suppress_features(cfg: GenerationConfig, prompt_length: int):
    """The Plan and Knobs fields of suppress_tokens and begin_suppress_tokens (the latter at the
    first generated position, `GenerationConfig.begin_suppress_index`)."""
    plan, knobs = {}, {}
    if cfg.suppress_tokens:
        plan["suppress"] = True
        knobs["suppress_tokens"] = jnp.asarray(list(cfg.suppress_tokens), jnp.int32)
    if cfg.begin_suppress_tokens:
        plan["begin_suppress"] = True
        knobs["begin_suppress_tokens"] = jnp.asarray(list(cfg.begin_suppress_tokens), jnp.int32)
        knobs["begin_index"] = jnp.int32(cfg.begin_suppress_index(prompt_length))
    return plan, knobs


def timestamp_features(cfg: GenerationConfig, prompt_length: int):
    """The Plan and Knobs fields of WhisperTimeStampLogitsProcessor: on when the Whisper driver put
    its settings in `cfg.extra[TIMESTAMPS_KEY]` (timestamp_begin, no_timestamps_token_id,
    eos_token_id, max_initial_timestamp_index or None); the generated tokens start at `prompt_length`."""
    from core.generation.whisper import TIMESTAMPS_KEY
    settings = cfg.extra.get(TIMESTAMPS_KEY)
    if not settings:
        return {}, {}
    max_initial = settings.get("max_initial_timestamp_index")
    return {"timestamps": True}, {
        "timestamp_begin": jnp.int32(settings["timestamp_begin"]),
        "no_timestamps_token_id": jnp.int32(settings["no_timestamps_token_id"]),
        "timestamp_eos": jnp.int32(settings["eos_token_id"]),
        "max_initial_timestamp_index": jnp.int32(2 ** 30 if max_initial is None else max_initial),
        "timestamp_begin_index": jnp.int32(prompt_length)}


def generation_features(cfg: GenerationConfig, tokenizer, streamer, encoder_ids):
    """The Plan and Knobs fields of no_repeat_ngram_size, encoder_no_repeat_ngram_size (over
    `encoder_ids`, one row per hypothesis: the prompt for decoder-only models), stop_strings and
    the streamer."""
    plan, knobs = {}, {}
    if cfg.no_repeat_ngram_size:
        plan["no_repeat_ngram_size"] = int(cfg.no_repeat_ngram_size)
    # transformers skips it when the encoder ids hold negative dummies.
    if cfg.encoder_no_repeat_ngram_size and not (np.asarray(encoder_ids) < 0).any():
        plan["encoder_no_repeat_ngram_size"] = int(cfg.encoder_no_repeat_ngram_size)
        knobs["encoder_ids"] = jnp.asarray(np.asarray(encoder_ids, np.int32))
    if cfg.stop_strings is not None:
        table = stopping.build_table(tokenizer, cfg.stop_strings)
        plan["stop"] = table.dims
        knobs["stop_table"] = jnp.asarray(table.table)
        knobs["stop_target_lens"] = jnp.asarray(table.target_lens)
    if streamer is not None:
        if cfg.num_beams > 1:
            raise ValueError("`streamer` cannot be used with beam search (yet!). Make sure that `num_beams` is set "
                             "to 1.")
        streaming.check_streamer(streamer)
        plan["stream"] = True
    return plan, knobs


@contextlib.contextmanager
def streaming_session(streamer, knobs, prompt_ids):
    """Puts the prompt, registers the streamer for the loop's callbacks (yields the knobs with
    its id), and ends it once every callback has run."""
    if streamer is None:
        yield knobs
        return
    streamer.put(np.asarray(prompt_ids, np.int64))
    stream_id = streaming.register(streamer)
    try:
        yield dataclasses.replace(knobs, stream_id=jnp.int32(stream_id))
    finally:
        streaming.finish(stream_id)
