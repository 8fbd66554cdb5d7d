"""XGLM: the decoder and its LM head, in the portable Flax subset.

Submodule names follow `transformers` (embed_tokens, layers/self_attn/q_proj, fc1, fc2,
self_attn_layer_norm, final_layer_norm, layer_norm, lm_head), so the key map in `params.py` is a
table of renames. A fairseq-style pre-norm decoder: token embeddings scaled by sqrt(d_model)
(`scale_embedding`), fixed sinusoidal positions offset by 2 ([sin | cos] halves, the row of
`pad_token_id` zero), LayerNorms with torch's default epsilon (the config has none).

`FairseqDecoderLayer` (and its `FairseqAttention`) is generic — sizes, activation and dropout
rates are fields, not config keys — and BioGPT reuses it; `fairseq_sinusoidal_positions` is the
fairseq/tensor2tensor table (also M2M100's, Speech2Text's, ...).

The blocks run under `P.Repeat` with the scan carry `(hidden, layer, cache)`; the cache is the
explicit stacked KV cache of `core.layers.decoder`.
"""
import math

import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 update_layer_cache)
from core.models.xglm.config import XGLMConfig

POSITION_OFFSET = 2


def fairseq_sinusoidal_positions(position_ids, dim: int, padding_idx=None, dtype=jnp.float32):
    """(batch, length, dim) sinusoidal embeddings of `position_ids` (offset already applied), as
    fairseq's / `transformers`' `get_embedding`: frequencies exp(-i * log(10000) / (dim/2 - 1)),
    sin on the first half of the channels and cos on the second, a zero channel for odd `dim`,
    and the embedding of position `padding_idx` all zero."""
    half = dim // 2
    step = math.log(10000.0) / (half - 1)
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -step)
    angles = jnp.expand_dims(jnp.asarray(position_ids, jnp.float32), -1) * freqs
    table = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    if dim % 2 == 1:
        table = jnp.concatenate([table, jnp.zeros(jnp.shape(table)[:-1] + (1,), jnp.float32)], axis=-1)
    if padding_idx is not None:
        table = jnp.where(jnp.expand_dims(position_ids == padding_idx, -1), 0.0, table)
    return jnp.asarray(table, dtype)


class FairseqAttention(nn.Module):
    """Multi-head self-attention with biased q/k/v/out projections. `prescale_query`: the query
    is multiplied by head_dim**-0.5 before the product (XGLM), else the scores after (BioGPT)."""
    embed_dim: int
    num_heads: int
    dropout_rate: float = 0.0
    prescale_query: bool = False
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        d = self.embed_dim
        self.k_proj = P.Dense(d, d, True, self.init_std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, True, self.init_std, self.dtype, self.param_dtype)
        self.q_proj = P.Dense(d, d, True, self.init_std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, True, self.init_std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(self.dropout_rate, self.dtype)

    def __call__(self, hidden, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        batch, length, _ = jnp.shape(hidden)
        head_dim = self.embed_dim // self.num_heads
        heads_shape = (batch, length, self.num_heads, head_dim)
        scaling = head_dim ** -0.5
        q = self.q_proj(hidden)
        scale = scaling
        if self.prescale_query:
            q = q * scaling
            scale = 1.0
        q = jnp.reshape(q, heads_shape)
        k = jnp.reshape(self.k_proj(hidden), heads_shape)
        v = jnp.reshape(self.v_proj(hidden), heads_shape)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=scale, deterministic=deterministic,
                                     return_weights=output_attentions)
        return self.out_proj(jnp.reshape(context, (batch, length, self.embed_dim))), weights, cache


class FairseqDecoderLayer(nn.Module):
    """One pre-norm fairseq decoder layer; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    embed_dim: int
    num_heads: int
    ffn_dim: int
    activation: str
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    activation_dropout_rate: float = 0.0
    layer_norm_eps: float = 1e-5
    prescale_query: bool = False
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        d = self.embed_dim
        self.self_attn = FairseqAttention(d, self.num_heads, self.attention_dropout_rate, self.prescale_query,
                                          self.init_std, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(d, self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(self.ffn_dim, d, True, self.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(d, self.ffn_dim, True, self.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(d, self.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(self.dropout_rate)
        self.activation_dropout = P.Dropout(self.activation_dropout_rate)

    def __call__(self, carry, mask, cache_index, deterministic: bool = True, output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.self_attn(self.self_attn_layer_norm(hidden), mask, layer, cache, cache_index,
                                                  deterministic, output_attentions)
        hidden = hidden + self.dropout(attended, deterministic=deterministic)
        inner = P.act(self.fc1(self.final_layer_norm(hidden)), self.activation)
        inner = self.activation_dropout(inner, deterministic=deterministic)
        hidden = hidden + self.dropout(self.fc2(inner), deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class XGLMModule(nn.Module):
    """The bare decoder: scaled token embeddings + sinusoidal positions → layers → layer_norm.
    `transformers.XGLMModel`."""
    config: XGLMConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_tokens = P.Embed(c.vocab_size, c.d_model, c.init_std, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        kwargs = {"embed_dim": c.d_model, "num_heads": c.attention_heads, "ffn_dim": c.ffn_dim,
                  "activation": c.activation_function, "dropout_rate": c.dropout,
                  "attention_dropout_rate": c.attention_dropout, "activation_dropout_rate": c.activation_dropout,
                  "prescale_query": True, "init_std": c.init_std, "dtype": self.dtype,
                  "param_dtype": self.param_dtype}
        self.layers = P.Repeat(FairseqDecoderLayer, c.num_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_layers, batch_size, max_length, c.attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        embed_scale = math.sqrt(c.d_model) if c.scale_embedding else 1.0
        positions = fairseq_sinusoidal_positions(position_ids + POSITION_OFFSET, c.d_model, c.pad_token_id, self.dtype)
        hidden = self.embed_tokens(input_ids) * embed_scale + positions
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, cache_index, deterministic,
                                       output_attentions)
        hidden, _, cache = carry
        hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class XGLMForCausalLM(nn.Module):
    """The decoder and a vocabulary projection, tied to `embed_tokens` (unscaled) unless the
    config unties it."""
    config: XGLMConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = XGLMModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.d_model, False, c.init_std, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_layers, batch_size, max_length, c.attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                          output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.model.embed_tokens.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)
