"""`Seq2SeqLMModel`: a `PretrainedModel` for the seq2seq-lm task (T5, BART, ...), with `generate`.

    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    tokens = model.generate(input_ids, attention_mask=mask, max_new_tokens=32)           # greedy
    tokens = model.generate(input_ids, num_beams=4, num_return_sequences=2)            # beam search

The encoder runs once per source (its states repeated for beams / return sequences, as
`transformers` expands them); the decoder prefill of the start token fills the cross-attention cache of every
layer (`fill_cross_cache=True`), and every later step runs inside one jit (`lax.while_loop`,
`core.generation.search`) reading it. Returns what `transformers.generate` returns for
encoder-decoders: decoder tokens starting with decoder_start_token_id.

The module follows the encoder-decoder interface (see `core/models/t5/modeling.py`): `encode`,
`decode`, `init_cache(batch, max_length, encoder_length)`.
"""
from __future__ import annotations

import secrets
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from core.generation import host, search
from core.generation.config import GenerationConfig
from core.generation.model import (CausalLMModel, decode_params, generation_features, streaming_session,
                                   suppress_features, timestamp_features)
from core.modeling import _STATIC

_SEQ2SEQ_STATIC = _STATIC + ("logits_to_keep", "fill_cross_cache")


class Seq2SeqLMModel(CausalLMModel):
    """See the module docstring."""

    def __init__(self, config, module, params: Mapping, task: str, load_report: Optional[dict] = None,
                 generation_config: Optional[GenerationConfig] = None):
        super().__init__(config, module, params, task, load_report, generation_config)
        self._apply = jax.jit(module.apply, static_argnames=_SEQ2SEQ_STATIC)
        self._encode = jax.jit(lambda params, ids, mask: module.apply({"params": params}, ids, mask,
                                                                       method="encode").last_hidden_state)

    @classmethod
    def from_pretrained(cls, folder, task: str = "seq2seq-lm", **kwargs) -> "Seq2SeqLMModel":
        return super().from_pretrained(folder, task=task, **kwargs)

    @classmethod
    def from_config(cls, config, task: str = "seq2seq-lm", **kwargs) -> "Seq2SeqLMModel":
        return super().from_config(config, task=task, **kwargs)

    def __call__(self, deterministic: bool = True, dropout_rng=None, output_attentions: bool = False,
                 output_hidden_states: bool = False, params: Optional[Mapping] = None, cache=None,
                 cache_index=0, logits_to_keep: int = 0, fill_cross_cache: bool = True, **inputs):
        """As `PretrainedModel.__call__`, plus the decoder cache (`init_cache`), `cache_index`,
        `fill_cross_cache` and `encoder_hidden_states` (skips the encoder)."""
        inputs = {k: v for k, v in inputs.items() if v is not None}
        if self.encoder_input not in inputs:
            raise TypeError(f"{type(self.module).__name__} needs {self.encoder_input}; got {sorted(inputs)}")
        arrays = {k: self._check_input(k, v) for k, v in inputs.items()}
        rngs = None
        if not deterministic:
            if dropout_rng is None:
                raise ValueError("deterministic=False (training-mode dropout) needs dropout_rng=jax.random.key(...)")
            rngs = {"dropout": dropout_rng}
        return self._apply({"params": self.params if params is None else params}, **arrays, cache=cache,
                           cache_index=cache_index, fill_cross_cache=fill_cross_cache, logits_to_keep=logits_to_keep,
                           deterministic=deterministic, output_attentions=output_attentions,
                           output_hidden_states=output_hidden_states, rngs=rngs)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return self.module.init_cache(batch_size, max_length, encoder_length)

    @property
    def encoder_input(self) -> str:
        """The encoder's main input: `input_ids`, or the config's `encoder_input` (Whisper:
        `input_features`)."""
        return getattr(self.config, "encoder_input", "input_ids")

    # -- generation -------------------------------------------------------------------------------
    def generate(self, input_ids=None, attention_mask=None, generation_config: Optional[GenerationConfig] = None,
                 seed: Optional[int] = None, prng_key=None, streamer=None, tokenizer=None, **kwargs) -> np.ndarray:
        """Decoder tokens for the encoder inputs `input_ids` (batch, length; padding either side,
        with its `attention_mask`). Options as `CausalLMModel.generate`, plus
        decoder_start_token_id, forced_bos_token_id, forced_eos_token_id (encoder_no_repeat_ngram_size
        bans the n-grams of the encoder input; `streamer` first receives the decoder start ids). Returns int64 numpy
        (batch * num_return_sequences, generated length), starting with decoder_start_token_id.

        Speech models (Whisper: `config.encoder_input == "input_features"`) take
        `input_features=` instead and Whisper's options; see `core.generation.whisper.generate`."""
        if self.encoder_input == "input_features":
            from core.generation import whisper
            if input_ids is not None:       # positional: the encoder input
                kwargs["input_features"] = input_ids
            return whisper.generate(self.config, self.generation_config, _WhisperBackend(self),
                                    attention_mask=attention_mask, generation_config=generation_config, seed=seed,
                                    prng_key=prng_key, streamer=streamer, tokenizer=tokenizer, **kwargs)
        if input_ids is None:
            raise TypeError("generate() needs input_ids (the encoder inputs)")
        cfg = self.generation_config.merged(generation_config, **kwargs)
        request, enc_ids, enc_mask = host.prepare_seq2seq(cfg, input_ids, attention_mask, self.config.vocab_size,
                                                          stop_table=False)
        expand = enc_ids.shape[0] // request.batch
        # Encode each source once, then repeat its states for the beams (as transformers expands
        # encoder_outputs): the encoder is most of a short generation's compute.
        encoder_hidden = self._encode(self.params, jnp.asarray(enc_ids[::expand]), jnp.asarray(enc_mask[::expand]))
        encoder_hidden = jnp.repeat(encoder_hidden, expand, axis=0) if expand > 1 else encoder_hidden
        prompt = np.asarray(request.ids[::expand])
        max_length, min_length, enc_mask = request.max_length, request.min_length, jnp.asarray(enc_mask)
        return self.generate_from_encoded(cfg, encoder_hidden, enc_mask, prompt, max_length, min_length, enc_ids,
                                          seed=seed, prng_key=prng_key, streamer=streamer, tokenizer=tokenizer)

    def generate_from_encoded(self, cfg: GenerationConfig, encoder_hidden, enc_mask, prompt, max_length: int,
                              min_length: int, encoder_ids, seed: Optional[int] = None, prng_key=None, streamer=None,
                              tokenizer=None) -> np.ndarray:
        """The decode loop once the encoder has run. `cfg` is merged; `encoder_hidden` / `enc_mask`
        are already expanded to batch * max(num_beams, num_return_sequences) rows; `prompt` (batch,
        P) are the decoder's first tokens (the start token; Whisper: its task prompt), every row
        the same length; `max_length` / `min_length` count decoder tokens, the prompt included;
        `encoder_ids` (expanded rows) feed encoder_no_repeat_ngram_size. Returns int64 numpy
        (batch * num_return_sequences, length) starting with the prompt."""
        eos = cfg.eos_token_ids
        pad = cfg.pad_token_id
        if pad is None and eos:
            pad = eos[0]
        batch, prompt_len = prompt.shape
        expand = max(cfg.num_beams, cfg.num_return_sequences)
        feature_plan, feature_knobs = generation_features(cfg, tokenizer, streamer, encoder_ids)
        suppress_plan, suppress_knobs = suppress_features(cfg, prompt_len)
        timestamp_plan, timestamp_knobs = timestamp_features(cfg, prompt_len)
        feature_plan = {**feature_plan, **suppress_plan, **timestamp_plan}
        feature_knobs = {**feature_knobs, **suppress_knobs, **timestamp_knobs}
        rows = batch * expand
        dec_ids = jnp.asarray(np.repeat(np.asarray(prompt, np.int32), expand, axis=0))
        dec_mask = jnp.ones((rows, prompt_len), jnp.int32)
        positions = jnp.broadcast_to(jnp.arange(prompt_len, dtype=jnp.int32), (rows, prompt_len))
        prompt_ignore = jnp.zeros((rows,), jnp.int32)

        if prng_key is None:
            prng_key = jax.random.key(secrets.randbits(32) if seed is None else seed)
        beam = cfg.num_beams > 1
        forced_eos = cfg.forced_eos_token_id
        forced_eos = [] if forced_eos is None else ([forced_eos] if isinstance(forced_eos, int) else list(forced_eos))
        knobs = search.Knobs(
            temperature=jnp.float32(cfg.temperature), top_p=jnp.float32(cfg.top_p),
            min_p=jnp.float32(cfg.min_p if cfg.min_p is not None else 0.0),
            repetition_penalty=jnp.float32(cfg.repetition_penalty), min_length=jnp.int32(min_length),
            pad_token_id=jnp.int32(0 if pad is None else pad),
            beam_fill=jnp.int32((pad if pad else eos[0]) if eos else -1),
            eos_token_ids=jnp.asarray(eos, jnp.int32),
            forced_bos_token_id=jnp.int32(cfg.forced_bos_token_id or 0),
            forced_eos_token_ids=jnp.asarray(forced_eos or [0], jnp.int32), **feature_knobs)
        plan = search.Plan(
            max_length=max_length, n_eos=len(eos), do_sample=bool(cfg.do_sample),
            top_k=int(cfg.top_k or 0) if cfg.do_sample else 0,
            use_temperature=bool(cfg.do_sample) and cfg.temperature != 1.0,
            use_top_p=bool(cfg.do_sample) and cfg.top_p < 1.0,
            use_min_p=bool(cfg.do_sample) and cfg.min_p is not None,
            use_repetition_penalty=cfg.repetition_penalty != 1.0, use_min_length=min_length > 0,
            min_tokens_to_keep=((len(eos) + 1 if eos else 2) if beam else 1), num_beams=cfg.num_beams,
            num_return_sequences=cfg.num_return_sequences, early_stopping=cfg.early_stopping,
            length_penalty_positive=cfg.length_penalty > 0.0, encoder_decoder=True,
            forced_bos=cfg.forced_bos_token_id is not None, forced_eos=bool(forced_eos), **feature_plan)
        context = (encoder_hidden, enc_mask)
        args = (dec_ids, dec_mask, positions, prompt_ignore, prng_key, knobs)
        if not beam:
            with streaming_session(streamer, knobs, dec_ids) as knobs:
                sequences, length = search.decode(self.module, plan, decode_params(self), *args[:-1], knobs, context=context)
                return np.asarray(sequences, np.int64)[:, :int(length)]
        table = np.array([float(g) ** cfg.length_penalty if g else 1.0 for g in range(max_length + 1)], np.float32)
        sequences, _, generated = search.beam_search(self.module, plan, decode_params(self), *args, jnp.asarray(table),
                                                     context=context)
        sequences = np.asarray(sequences, np.int64)[:, :cfg.num_return_sequences]
        generated = np.asarray(generated)[:, :cfg.num_return_sequences]
        sequences = sequences.reshape(batch * cfg.num_return_sequences, max_length)
        return sequences[:, :prompt_len + int(generated.max())]


class _WhisperBackend:
    """`core.generation.whisper.Backend` in JAX: the jitted encoder, one cache-free decoder step
    (language detection) and the jitted decode loop of `generate_from_encoded`."""

    def __init__(self, model: Seq2SeqLMModel):
        self.model = model

    def encode(self, features: np.ndarray):
        return self.model._encode(self.model.params, jnp.asarray(features), None)

    def first_logits(self, start_ids: np.ndarray, encoder_hidden) -> np.ndarray:
        model = self.model
        step = getattr(model, "_whisper_first_step", None)
        if step is None:
            module = model.module
            step = jax.jit(lambda params, ids, hidden: module.apply({"params": params}, ids, hidden,
                                                                    method="decode").logits[:, -1])
            model._whisper_first_step = step
        return np.asarray(step(model.params, jnp.asarray(start_ids), encoder_hidden), np.float32)

    def decode(self, cfg: GenerationConfig, encoder_hidden, prompt: np.ndarray, max_length: int, min_length: int,
               seed, prng_key, streamer, tokenizer) -> np.ndarray:
        expand = cfg.num_beams
        encoder_hidden = jnp.repeat(encoder_hidden, expand, axis=0) if expand > 1 else encoder_hidden
        enc_mask = jnp.ones(encoder_hidden.shape[:2], jnp.int32)
        rows = prompt.shape[0] * expand
        return self.model.generate_from_encoded(cfg, encoder_hidden, enc_mask, prompt, max_length, min_length,
                                                np.zeros((rows, 1), np.int32), seed=seed, prng_key=prng_key,
                                                streamer=streamer, tokenizer=tokenizer)
