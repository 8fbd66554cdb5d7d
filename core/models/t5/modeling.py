"""T5, mT5, UMT5 and LongT5: the encoder-decoder and its task heads, in the portable Flax subset.

LongT5 (`config.long_encoder`) swaps the encoder stack for `LongT5Stack` (blocked local or
transient-global attention, see there); its decoder and heads are T5's.

Submodule names follow `transformers` (shared, encoder/decoder, block, SelfAttention /
EncDecAttention with q/k/v/o, DenseReluDense with wi or wi_0/wi_1 and wo, layer_norm,
final_layer_norm, lm_head, classification_head, qa_outputs). `transformers`' `block.{i}.layer.{j}`
lists become the attributes `self_attention`, `cross_attention` and `feed_forward` of a block
(the key map renames them). Blocks run under `P.Repeat` with the scan carry `(hidden, layer,
cache)`.

Relative position bias: T5 / mT5 keep one table per stack (`transformers` stores it in the first
block, `block.0.layer.0.SelfAttention.relative_attention_bias`, and shares the bias it computes
with every later block); here it is the stack's `relative_attention_bias`, and the bias is
computed once and broadcast to every block. UMT5 has a table in every self-attention layer.
Attention is unscaled (the bias absorbs it) and the norm is T5's RMS norm without a mean.

The encoder-decoder interface (shared with BART): `__call__`, `encode`, `decode`, `init_cache`;
the cache is `(self_keys, self_values, cross_keys, cross_values)`, each (num_decoder_layers,
batch, length, heads, head_dim).
"""

import chex
import flax.linen as nn
import jax.numpy as jnp

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import positions as pos
from core.layers import prims as P
from core.layers.decoder import collect_hidden_states, keep_last, update_layer_cache
from core.models.t5.config import T5Config


def shift_right(input_ids, decoder_start_token_id, pad_token_id):
    """Labels → decoder inputs as `transformers`' `_shift_right`: the start token, then the
    labels without their last position, -100 replaced by the pad id."""
    batch = jnp.shape(input_ids)[0]
    start = jnp.full((batch, 1), decoder_start_token_id, jnp.int32)
    shifted = jnp.concatenate([start, jnp.asarray(input_ids[:, :-1], jnp.int32)], axis=1)
    return jnp.where(shifted == -100, pad_token_id, shifted)


def default_decoder_start(config: T5Config) -> int:
    if config.decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id has to be defined to build decoder inputs from labels or "
                         "input_ids (T5 usually sets it to the pad_token_id)")
    return config.decoder_start_token_id


def pool_last_eos(hidden, input_ids, eos_token_id):
    """Per row, the hidden state at the last `eos_token_id` of `input_ids` (T5ForSequenceClassification)."""
    batch, length = jnp.shape(input_ids)
    is_eos = jnp.asarray(jnp.equal(input_ids, eos_token_id), jnp.int32)
    last = jnp.max(jnp.expand_dims(jnp.arange(length), 0) * is_eos, axis=-1)
    index = jnp.broadcast_to(jnp.reshape(last, (batch, 1, 1)), (batch, 1, jnp.shape(hidden)[-1]))
    return jnp.take_along_axis(hidden, index, axis=1)[:, 0]


def init_seq2seq_cache(config: T5Config, batch_size: int, max_length: int, encoder_length: int, dtype):
    layers = config.decoder_layers
    self_kv = jnp.zeros((layers, batch_size, max_length, config.num_heads, config.d_kv), dtype)
    cross_kv = jnp.zeros((layers, batch_size, encoder_length, config.num_heads, config.d_kv), dtype)
    return (self_kv, self_kv, cross_kv, cross_kv)


# -- layers ------------------------------------------------------------------------------------

class T5Attention(nn.Module):
    config: T5Config
    has_relative_attention_bias: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_factor * c.d_model ** -0.5
        self.q = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.k = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.v = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.o = P.Dense(c.d_model, c.inner_dim, False, std, self.dtype, self.param_dtype)
        if self.has_relative_attention_bias:
            self.relative_attention_bias = P.Embed(c.relative_attention_num_buckets, c.num_heads, std, self.dtype,
                                                   self.param_dtype)
        self.core = P.AttentionCore(c.dropout_rate, self.dtype)

    def key_value(self, states):
        c = self.config
        batch, length, _ = jnp.shape(states)
        k = jnp.reshape(self.k(states), (batch, length, c.num_heads, c.d_kv))
        v = jnp.reshape(self.v(states), (batch, length, c.num_heads, c.d_kv))
        return k, v

    def position_bias(self, buckets):
        """(1, heads, q_len, kv_len) from the (q_len, kv_len) bucket ids."""
        values = self.relative_attention_bias(buckets)
        return jnp.expand_dims(jnp.transpose(values, (2, 0, 1)), 0)

    def __call__(self, hidden, key, value, mask, position_bias, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        q = jnp.reshape(self.q(hidden), (batch, length, c.num_heads, c.d_kv))
        context, weights = self.core(q, key, value, mask=mask, bias=position_bias, scale=1.0,
                                     deterministic=deterministic, return_weights=output_attentions)
        return self.o(jnp.reshape(context, (batch, length, c.inner_dim))), weights


class T5LayerSelfAttention(nn.Module):
    config: T5Config
    has_relative_attention_bias: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.SelfAttention = T5Attention(c, self.has_relative_attention_bias, self.dtype, self.param_dtype)
        self.layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, mask, position_bias, buckets, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        normed = self.layer_norm(hidden)
        key, value = self.SelfAttention.key_value(normed)
        if cache is not None:
            self_cache, key, value = update_layer_cache((cache[0], cache[1]), layer, key, value, cache_index)
            cache = (self_cache[0], self_cache[1], cache[2], cache[3])
        if self.has_relative_attention_bias:
            position_bias = self.SelfAttention.position_bias(buckets)
        attended, weights = self.SelfAttention(normed, key, value, mask, position_bias, deterministic,
                                               output_attentions)
        return hidden + self.dropout(attended, deterministic=deterministic), weights, cache


class T5LayerCrossAttention(nn.Module):
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.EncDecAttention = T5Attention(c, False, self.dtype, self.param_dtype)
        self.layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, encoder_hidden, mask, layer, cache, fill_cross_cache: bool = True,
                 deterministic: bool = True, output_attentions: bool = False):
        normed = self.layer_norm(hidden)
        if cache is None:
            key, value = self.EncDecAttention.key_value(encoder_hidden)
        elif fill_cross_cache:
            key, value = self.EncDecAttention.key_value(encoder_hidden)
            cross_cache, key, value = update_layer_cache((cache[2], cache[3]), layer, key, value, 0)
            cache = (cache[0], cache[1], cross_cache[0], cross_cache[1])
        else:
            key = cache[2][layer]
            value = cache[3][layer]
        attended, weights = self.EncDecAttention(normed, key, value, mask, None, deterministic, output_attentions)
        return hidden + self.dropout(attended, deterministic=deterministic), weights, cache


class T5DenseActDense(nn.Module):
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.wi = P.Dense(c.d_ff, c.d_model, False, c.initializer_factor * c.d_model ** -0.5, self.dtype,
                          self.param_dtype)
        self.wo = P.Dense(c.d_model, c.d_ff, False, c.initializer_factor * c.d_ff ** -0.5, self.dtype,
                          self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = P.act(self.wi(hidden), self.config.dense_act_fn)
        return self.wo(self.dropout(hidden, deterministic=deterministic))


class T5DenseGatedActDense(nn.Module):
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_factor * c.d_model ** -0.5
        self.wi_0 = P.Dense(c.d_ff, c.d_model, False, std, self.dtype, self.param_dtype)
        self.wi_1 = P.Dense(c.d_ff, c.d_model, False, std, self.dtype, self.param_dtype)
        self.wo = P.Dense(c.d_model, c.d_ff, False, c.initializer_factor * c.d_ff ** -0.5, self.dtype,
                          self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = P.act(self.wi_0(hidden), self.config.dense_act_fn) * self.wi_1(hidden)
        return self.wo(self.dropout(hidden, deterministic=deterministic))


class T5LayerFF(nn.Module):
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.is_gated_act:
            self.DenseReluDense = T5DenseGatedActDense(c, self.dtype, self.param_dtype)
        else:
            self.DenseReluDense = T5DenseActDense(c, self.dtype, self.param_dtype)
        self.layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, deterministic: bool = True):
        forwarded = self.DenseReluDense(self.layer_norm(hidden), deterministic)
        return hidden + self.dropout(forwarded, deterministic=deterministic)


class T5Block(nn.Module):
    """One block (`transformers`' `block.{i}`); the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, self-attention weights, cross-attention weights))."""
    config: T5Config
    is_decoder: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attention = T5LayerSelfAttention(c, c.bias_in_every_layer, self.dtype, self.param_dtype)
        if self.is_decoder:
            self.cross_attention = T5LayerCrossAttention(c, self.dtype, self.param_dtype)
        self.feed_forward = T5LayerFF(c, self.dtype, self.param_dtype)

    def __call__(self, carry, mask, position_bias, buckets, encoder_hidden, cross_mask, cache_index,
                 fill_cross_cache: bool = True, deterministic: bool = True, output_attentions: bool = False):
        hidden, layer, cache = carry
        hidden, self_weights, cache = self.self_attention(hidden, mask, position_bias, buckets, layer, cache,
                                                          cache_index, deterministic, output_attentions)
        cross_weights = None
        if self.is_decoder:
            hidden, cross_weights, cache = self.cross_attention(hidden, encoder_hidden, cross_mask, layer, cache,
                                                                fill_cross_cache, deterministic, output_attentions)
        hidden = self.feed_forward(hidden, deterministic)
        return (hidden, layer + 1, cache), (hidden, self_weights, cross_weights)


class T5Stack(nn.Module):
    """The encoder or the decoder: blocks → final RMS norm, from token embeddings."""
    config: T5Config
    is_decoder: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if not c.bias_in_every_layer:
            self.relative_attention_bias = P.Embed(c.relative_attention_num_buckets, c.num_heads,
                                                   c.initializer_factor * c.d_model ** -0.5, self.dtype,
                                                   self.param_dtype)
        kwargs = {"config": c, "is_decoder": self.is_decoder, "dtype": self.dtype, "param_dtype": self.param_dtype}
        layers = c.decoder_layers if self.is_decoder else c.num_layers
        self.block = P.Repeat(T5Block, layers, kwargs, remat=self.remat)
        self.final_layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype,
                                          param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, inputs_embeds, attention_mask=None, encoder_hidden=None, encoder_attention_mask=None,
                 cache=None, cache_index=0, fill_cross_cache: bool = True, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(inputs_embeds)
        kv_length = length if cache is None else jnp.shape(cache[0])[2]
        mask = None
        if attention_mask is not None:
            chex.assert_shape(attention_mask, (batch, kv_length))
            mask = A.padding_mask(attention_mask)
        if self.is_decoder:
            mask = A.combine_masks(A.causal_mask(length, kv_length, cache_index), mask)
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = A.padding_mask(encoder_attention_mask)
        buckets = pos.relative_position_bucket(pos.relative_positions(length, kv_length, cache_index),
                                               not self.is_decoder, c.relative_attention_num_buckets,
                                               c.relative_attention_max_distance)
        position_bias = None
        if not c.bias_in_every_layer:
            position_bias = jnp.expand_dims(jnp.transpose(self.relative_attention_bias(buckets), (2, 0, 1)), 0)
        hidden = self.dropout(inputs_embeds, deterministic=deterministic)
        carry, per_layer = self.block((hidden, jnp.asarray(0, jnp.int32), cache), mask, position_bias, buckets,
                                      encoder_hidden, cross_mask, cache_index, fill_cross_cache, deterministic,
                                      output_attentions)
        hidden, _, cache = carry
        hidden = self.dropout(self.final_layer_norm(hidden), deterministic=deterministic)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(inputs_embeds, per_layer[0], hidden)
        all_attentions = None
        cross_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
            if self.is_decoder:
                cross_attentions = tuple(jnp.unstack(per_layer[2], axis=0))
        return outputs.BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden, cache=cache, hidden_states=all_hidden, attentions=all_attentions,
            cross_attentions=cross_attentions)


# -- LongT5: the blocked local / transient-global encoder ---------------------------------------

# transformers' additive bias for masked positions of LongT5's blocked attention (the original's value).
LONG_MASKED = -1e10


def pad_to_multiple(x, multiple: int, axis: int, dtype):
    """`x` with zeros appended along `axis` up to a multiple of `multiple`."""
    shape = jnp.shape(x)
    extra = (-shape[axis]) % multiple
    if extra == 0:
        return x
    return jnp.concatenate([x, jnp.zeros(shape[:axis] + (extra,) + shape[axis + 1:], dtype)], axis=axis)


def split_into_blocks(x, block_len: int, axis: int, dtype):
    """Axis `axis` (zero-padded to a multiple of `block_len`) → (num_blocks, block_len)."""
    x = pad_to_multiple(x, block_len, axis, dtype)
    shape = jnp.shape(x)
    return jnp.reshape(x, shape[:axis] + (shape[axis] // block_len, block_len) + shape[axis + 1:])


def concatenate_3_blocks(x, dtype):
    """(batch, blocks, block_len, ...) → (batch, blocks, 3 * block_len, ...): every block with the
    one before and the one after it (zeros past either end)."""
    shape = jnp.shape(x)
    blocks = shape[1]
    zeros = jnp.zeros((shape[0], 1) + shape[2:], dtype)
    padded = jnp.concatenate([zeros, x, zeros], axis=1)
    return jnp.concatenate([padded[:, 0:blocks], padded[:, 1:blocks + 1], padded[:, 2:blocks + 2]], axis=2)


def three_block_relative_positions(block_len: int):
    """(block_len, 3 * block_len): key minus query position, queries in the middle block."""
    positions = jnp.arange(3 * block_len)
    return jnp.expand_dims(positions, 0) - jnp.expand_dims(positions[block_len:2 * block_len], 1)


def local_attention_mask(attention_mask, block_len: int):
    """(batch, blocks, block_len, 3 * block_len) bool: both tokens real and at most
    block_len - 1 apart."""
    blocked = split_into_blocks(jnp.asarray(attention_mask, jnp.int32), block_len, 1, jnp.int32)
    both = jnp.expand_dims(blocked, -1) * jnp.expand_dims(concatenate_3_blocks(blocked, jnp.int32), -2)
    near = jnp.abs(three_block_relative_positions(block_len)) < block_len
    return jnp.logical_and(both > 0, jnp.expand_dims(jnp.expand_dims(near, 0), 0))


def global_block_ids(attention_mask, global_block_size: int):
    """`transformers`' `_make_global_fixed_block_ids`: per token its global block (-1 for
    padding; the tokens of a trailing incomplete block join the last full one, or -1 when there
    is none), and per global block (length // global_block_size of them) 1 when it holds a token."""
    length = jnp.shape(attention_mask)[1]
    positions = jnp.expand_dims(jnp.arange(length), 0)
    ids = jnp.where(jnp.not_equal(attention_mask, 0), positions // global_block_size, -1)
    ends = jnp.logical_and(jnp.equal(positions % global_block_size, global_block_size - 1), ids >= 0)
    full = jnp.sum(jnp.asarray(ends, jnp.int32), axis=-1, keepdims=True) - 1
    ids = jnp.where(ids < full, ids, full)
    globals_ = jnp.expand_dims(jnp.arange(length // global_block_size), 0)
    segments = jnp.asarray(globals_ <= jnp.max(ids, axis=-1, keepdims=True), jnp.int32)
    return ids, segments


class LongT5LocalAttention(nn.Module):
    """Blocked self-attention (`transformers`' LongT5LocalAttention, or with `transient_global`
    LongT5TransientGlobalAttention): queries of a block see the 3 blocks around it, and (transient
    global) every global token: the RMS-normed sum of each `global_block_size` tokens, through
    the same k/v. Unscaled; `position_bias` (batch, blocks, heads, block_len, keys) holds the
    relative biases and the masks (see `LongT5Stack`); blocks run as batch rows of one AttentionCore."""
    config: T5Config
    transient_global: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_factor * c.d_model ** -0.5
        self.q = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.k = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.v = P.Dense(c.inner_dim, c.d_model, False, std, self.dtype, self.param_dtype)
        self.o = P.Dense(c.d_model, c.inner_dim, False, std, self.dtype, self.param_dtype)
        if self.transient_global:
            self.global_input_layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype,
                                                     param_dtype=self.param_dtype)
        self.core = P.AttentionCore(c.dropout_rate, self.dtype)

    def blocked(self, states, block_len: int):
        c = self.config
        batch, length, _ = jnp.shape(states)
        return split_into_blocks(jnp.reshape(states, (batch, length, c.num_heads, c.d_kv)), block_len, 1, self.dtype)

    def __call__(self, hidden, position_bias, global_one_hot=None, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        block_len = c.local_radius + 1
        query = self.blocked(self.q(hidden), block_len)
        key = concatenate_3_blocks(self.blocked(self.k(hidden), block_len), self.dtype)
        value = concatenate_3_blocks(self.blocked(self.v(hidden), block_len), self.dtype)
        blocks = jnp.shape(query)[1]
        keys = 3 * block_len
        if self.transient_global:
            globals_ = jnp.shape(global_one_hot)[2]
            global_inputs = self.global_input_layer_norm(jnp.einsum("bnd,bng->bgd", hidden, global_one_hot))
            shape = (batch, blocks, globals_, c.num_heads, c.d_kv)
            side_key = jnp.broadcast_to(jnp.reshape(self.k(global_inputs), (batch, 1, globals_, c.num_heads, c.d_kv)),
                                        shape)
            side_value = jnp.broadcast_to(
                jnp.reshape(self.v(global_inputs), (batch, 1, globals_, c.num_heads, c.d_kv)), shape)
            key = jnp.concatenate([key, side_key], axis=2)
            value = jnp.concatenate([value, side_value], axis=2)
            keys = keys + globals_
        rows = batch * blocks
        context, weights = self.core(jnp.reshape(query, (rows, block_len, c.num_heads, c.d_kv)),
                                     jnp.reshape(key, (rows, keys, c.num_heads, c.d_kv)),
                                     jnp.reshape(value, (rows, keys, c.num_heads, c.d_kv)), mask=None,
                                     bias=jnp.reshape(position_bias, (rows, c.num_heads, block_len, keys)),
                                     scale=1.0, deterministic=deterministic, return_weights=output_attentions)
        context = jnp.reshape(context, (batch, blocks * block_len, c.inner_dim))[:, :length]
        if output_attentions:
            weights = jnp.reshape(weights, (batch, blocks, c.num_heads, block_len, keys))
        return self.o(context), weights


class LongT5LayerLocalSelfAttention(nn.Module):
    """The encoder's `layer.0`: RMS norm → blocked attention (`LocalSelfAttention` or
    `TransientGlobalSelfAttention`, as the config says) → residual."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.encoder_attention_type == "local":
            self.LocalSelfAttention = LongT5LocalAttention(c, False, self.dtype, self.param_dtype)
        else:
            self.TransientGlobalSelfAttention = LongT5LocalAttention(c, True, self.dtype, self.param_dtype)
        self.layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def __call__(self, hidden, position_bias, global_one_hot=None, deterministic: bool = True,
                 output_attentions: bool = False):
        normed = self.layer_norm(hidden)
        if self.config.encoder_attention_type == "local":
            attended, weights = self.LocalSelfAttention(normed, position_bias, global_one_hot, deterministic,
                                                        output_attentions)
        else:
            attended, weights = self.TransientGlobalSelfAttention(normed, position_bias, global_one_hot,
                                                                  deterministic, output_attentions)
        return hidden + self.dropout(attended, deterministic=deterministic), weights


class LongT5EncoderBlock(nn.Module):
    """One encoder block; the `Repeat` body: (hidden, ...) → (hidden, (hidden, attention weights))."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.self_attention = LongT5LayerLocalSelfAttention(self.config, self.dtype, self.param_dtype)
        self.feed_forward = T5LayerFF(self.config, self.dtype, self.param_dtype)

    def __call__(self, hidden, position_bias, global_one_hot=None, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, weights = self.self_attention(hidden, position_bias, global_one_hot, deterministic,
                                              output_attentions)
        hidden = self.feed_forward(hidden, deterministic)
        return hidden, (hidden, weights)


class LongT5Stack(nn.Module):
    """LongT5's encoder (the decoder is `T5Stack`): its tables (`transformers` keeps them in
    block 0) give the bias once, as in T5, broadcast to every block together with the masks:
    (batch, blocks, heads, block_len, 3 * block_len [+ globals]), -1e10 where masked (a padded
    query sees nothing: uniform weights, as there). Same call signature as `T5Stack`."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        std = c.initializer_factor * c.d_model ** -0.5
        self.relative_attention_bias = P.Embed(c.relative_attention_num_buckets, c.num_heads, std, self.dtype,
                                               self.param_dtype)
        if c.encoder_attention_type == "transient-global":
            self.global_relative_attention_bias = P.Embed(c.relative_attention_num_buckets, c.num_heads, std,
                                                          self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.block = P.Repeat(LongT5EncoderBlock, c.num_layers, kwargs, remat=self.remat)
        self.final_layer_norm = P.RMSNorm(c.d_model, c.layer_norm_epsilon, dtype=self.dtype,
                                          param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout_rate)

    def position_bias(self, attention_mask):
        """The blocks' additive bias, and (transient global) the token → global block one-hot."""
        c = self.config
        block_len = c.local_radius + 1
        buckets = pos.relative_position_bucket(three_block_relative_positions(block_len), True,
                                               c.relative_attention_num_buckets, c.relative_attention_max_distance)
        local = jnp.reshape(jnp.transpose(self.relative_attention_bias(buckets), (2, 0, 1)),
                            (1, 1, c.num_heads, block_len, 3 * block_len))
        masked = jnp.asarray(jnp.where(local_attention_mask(attention_mask, block_len), 0.0, LONG_MASKED), self.dtype)
        bias = local + jnp.expand_dims(masked, 2)
        if c.encoder_attention_type == "local":
            return bias, None
        ids, segments = global_block_ids(attention_mask, c.global_block_size)
        globals_ = jnp.shape(segments)[1]
        offsets = jnp.reshape(jnp.arange(globals_), (1, 1, globals_)) - jnp.expand_dims(ids, -1)
        one_hot = jnp.asarray(jnp.equal(offsets, 0), self.dtype)
        side_buckets = pos.relative_position_bucket(offsets, True, c.relative_attention_num_buckets,
                                                    c.relative_attention_max_distance)
        # A real token sees the real global blocks; a padding token the empty ones (as transformers).
        side_masked = jnp.where(jnp.equal(jnp.expand_dims(attention_mask, -1), jnp.expand_dims(segments, 1)), 0.0,
                                LONG_MASKED)
        side = jnp.expand_dims(jnp.asarray(side_masked, self.dtype), -1) + self.global_relative_attention_bias(
            side_buckets)
        side = jnp.transpose(split_into_blocks(side, block_len, 1, self.dtype), (0, 1, 4, 2, 3))
        return jnp.concatenate([bias, side], axis=-1), one_hot

    def __call__(self, inputs_embeds, attention_mask=None, encoder_hidden=None, encoder_attention_mask=None,
                 cache=None, cache_index=0, fill_cross_cache: bool = True, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        batch, length, _ = jnp.shape(inputs_embeds)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, length), jnp.int32)
        chex.assert_shape(attention_mask, (batch, length))
        position_bias, global_one_hot = self.position_bias(jnp.asarray(attention_mask, jnp.int32))
        hidden = self.dropout(inputs_embeds, deterministic=deterministic)
        hidden, per_layer = self.block(hidden, position_bias, global_one_hot, deterministic, output_attentions)
        hidden = self.dropout(self.final_layer_norm(hidden), deterministic=deterministic)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(inputs_embeds, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden, hidden_states=all_hidden,
                                                                 attentions=all_attentions)


# -- shared encoder / decoder runs (the heads hold shared / encoder / decoder themselves) ---------

def run_encoder(shared, encoder, input_ids, attention_mask, deterministic, output_attentions, output_hidden_states):
    chex.assert_rank(input_ids, 2)
    out = encoder(shared(input_ids), attention_mask, None, None, None, 0, True, deterministic, output_attentions,
                  output_hidden_states)
    return outputs.BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states,
                                   attentions=out.attentions)


def run_decoder(shared, decoder, decoder_input_ids, encoder_hidden_states, encoder_attention_mask,
                decoder_attention_mask, cache, cache_index, fill_cross_cache, deterministic, output_attentions,
                output_hidden_states):
    chex.assert_rank(decoder_input_ids, 2)
    return decoder(shared(decoder_input_ids), decoder_attention_mask, encoder_hidden_states, encoder_attention_mask,
                   cache, cache_index, fill_cross_cache, deterministic, output_attentions, output_hidden_states)


def encoder_output_or_run(shared, encoder, input_ids, attention_mask, encoder_hidden_states, deterministic,
                          output_attentions, output_hidden_states):
    """The encoder pass, or (encoder_hidden_states given) its last hidden state as it is."""
    if encoder_hidden_states is not None:
        return outputs.BaseModelOutput(last_hidden_state=encoder_hidden_states)
    return run_encoder(shared, encoder, input_ids, attention_mask, deterministic, output_attentions,
                       output_hidden_states)


def seq2seq_output(decoded, encoded, cls):
    return cls(last_hidden_state=decoded.last_hidden_state, cache=decoded.cache,
               decoder_hidden_states=decoded.hidden_states, decoder_attentions=decoded.attentions,
               cross_attentions=decoded.cross_attentions, encoder_last_hidden_state=encoded.last_hidden_state,
               encoder_hidden_states=encoded.hidden_states, encoder_attentions=encoded.attentions)


# -- models --------------------------------------------------------------------------------------

class T5Module(nn.Module):
    """The bare encoder-decoder (`transformers.T5Model`)."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.shared = P.Embed(c.vocab_size, c.d_model, c.initializer_factor, self.dtype, self.param_dtype)
        if c.long_encoder:
            self.encoder = LongT5Stack(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.encoder = T5Stack(c, False, self.dtype, self.param_dtype, self.remat)
        self.decoder = T5Stack(c, True, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return init_seq2seq_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return run_encoder(self.shared, self.encoder, input_ids, attention_mask, deterministic, output_attentions,
                           output_hidden_states)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        decoded = run_decoder(self.shared, self.decoder, decoder_input_ids, encoder_hidden_states,
                              encoder_attention_mask, decoder_attention_mask, cache, cache_index, fill_cross_cache,
                              deterministic, output_attentions, output_hidden_states)
        return seq2seq_output(decoded, outputs.BaseModelOutput(), outputs.Seq2SeqModelOutput)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_right(input_ids if labels is None else labels, default_decoder_start(c),
                                            c.pad_token_id)
        encoded = encoder_output_or_run(self.shared, self.encoder, input_ids, attention_mask, encoder_hidden_states,
                                        deterministic, output_attentions, output_hidden_states)
        decoded = run_decoder(self.shared, self.decoder, decoder_input_ids, encoded.last_hidden_state,
                              attention_mask, decoder_attention_mask, cache, cache_index, fill_cross_cache,
                              deterministic, output_attentions, output_hidden_states)
        return seq2seq_output(decoded, encoded, outputs.Seq2SeqModelOutput)


class T5ForConditionalGeneration(nn.Module):
    """The encoder-decoder and the LM head: `shared` (tied; decoder outputs scaled by d_model**-0.5
    first) or `lm_head`."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.shared = P.Embed(c.vocab_size, c.d_model, c.initializer_factor, self.dtype, self.param_dtype)
        if c.long_encoder:
            self.encoder = LongT5Stack(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.encoder = T5Stack(c, False, self.dtype, self.param_dtype, self.remat)
        self.decoder = T5Stack(c, True, self.dtype, self.param_dtype, self.remat)
        if not c.ties_lm_head:
            self.lm_head = P.Dense(c.vocab_size, c.d_model, False, c.initializer_factor, self.dtype,
                                   self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return init_seq2seq_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return run_encoder(self.shared, self.encoder, input_ids, attention_mask, deterministic, output_attentions,
                           output_hidden_states)

    def logits(self, hidden):
        c = self.config
        if c.scales_decoder_outputs:
            hidden = hidden * (c.d_model ** -0.5)
        if c.ties_lm_head:
            return self.shared.attend(hidden)
        return self.lm_head(hidden)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        decoded = run_decoder(self.shared, self.decoder, decoder_input_ids, encoder_hidden_states,
                              encoder_attention_mask, decoder_attention_mask, cache, cache_index, fill_cross_cache,
                              deterministic, output_attentions, output_hidden_states)
        logits = self.logits(keep_last(decoded.last_hidden_state, logits_to_keep))
        return outputs.Seq2SeqLMOutput(logits=logits, cache=decoded.cache, decoder_hidden_states=decoded.hidden_states,
                                       decoder_attentions=decoded.attentions,
                                       cross_attentions=decoded.cross_attentions)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_right(input_ids if labels is None else labels, default_decoder_start(c),
                                            c.pad_token_id)
        encoded = encoder_output_or_run(self.shared, self.encoder, input_ids, attention_mask, encoder_hidden_states,
                                        deterministic, output_attentions, output_hidden_states)
        decoded = run_decoder(self.shared, self.decoder, decoder_input_ids, encoded.last_hidden_state,
                              attention_mask, decoder_attention_mask, cache, cache_index, fill_cross_cache,
                              deterministic, output_attentions, output_hidden_states)
        logits = self.logits(keep_last(decoded.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.Seq2SeqLMOutput(loss=loss, logits=logits, cache=decoded.cache,
                                       decoder_hidden_states=decoded.hidden_states,
                                       decoder_attentions=decoded.attentions, cross_attentions=decoded.cross_attentions,
                                       encoder_last_hidden_state=encoded.last_hidden_state,
                                       encoder_hidden_states=encoded.hidden_states,
                                       encoder_attentions=encoded.attentions)


class T5EncoderModel(nn.Module):
    """The encoder alone (`transformers.T5EncoderModel`)."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.shared = P.Embed(c.vocab_size, c.d_model, c.initializer_factor, self.dtype, self.param_dtype)
        if c.long_encoder:
            self.encoder = LongT5Stack(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.encoder = T5Stack(c, False, self.dtype, self.param_dtype, self.remat)

    def __call__(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        return run_encoder(self.shared, self.encoder, input_ids, attention_mask, deterministic, output_attentions,
                           output_hidden_states)


class T5ClassificationHead(nn.Module):
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_factor * c.d_model ** -0.5
        self.dense = P.Dense(c.d_model, c.d_model, True, std, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.classifier_dropout)
        self.out_proj = P.Dense(c.num_labels, c.d_model, True, std, self.dtype, self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = jnp.tanh(self.dense(self.dropout(hidden, deterministic=deterministic)))
        return self.out_proj(self.dropout(hidden, deterministic=deterministic))


class T5ForSequenceClassification(nn.Module):
    """The bare model (`transformer`) on input_ids and their shifted copy; the decoder state at each
    row's last EOS of input_ids goes through `classification_head`."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.transformer = T5Module(self.config, self.dtype, self.param_dtype, self.remat)
        self.classification_head = T5ClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_right(input_ids, default_decoder_start(c), c.pad_token_id)
        base = self.transformer(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, None, None, 0,
                                True, None, 0, deterministic, output_attentions, output_hidden_states)
        eos = c.eos_token_id if isinstance(c.eos_token_id, int) else c.eos_token_id[0]
        pooled = pool_last_eos(base.last_hidden_state, input_ids, eos)
        logits = self.classification_head(pooled, deterministic)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, c.problem_type, c.num_labels)
        return outputs.Seq2SeqSequenceClassifierOutput(
            loss=loss, logits=logits, decoder_hidden_states=base.decoder_hidden_states,
            decoder_attentions=base.decoder_attentions, cross_attentions=base.cross_attentions,
            encoder_last_hidden_state=base.encoder_last_hidden_state, encoder_hidden_states=base.encoder_hidden_states,
            encoder_attentions=base.encoder_attentions)


class T5ForQuestionAnswering(nn.Module):
    """Span logits (`qa_outputs`) on the decoder states; decoder inputs default to the shifted input_ids."""
    config: T5Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.shared = P.Embed(c.vocab_size, c.d_model, c.initializer_factor, self.dtype, self.param_dtype)
        self.encoder = T5Stack(c, False, self.dtype, self.param_dtype, self.remat)
        self.decoder = T5Stack(c, True, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(c.num_labels, c.d_model, True, c.initializer_factor * c.d_model ** -0.5,
                                  self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_right(input_ids, default_decoder_start(c), c.pad_token_id)
        encoded = run_encoder(self.shared, self.encoder, input_ids, attention_mask, deterministic, output_attentions,
                              output_hidden_states)
        decoded = run_decoder(self.shared, self.decoder, decoder_input_ids, encoded.last_hidden_state,
                              attention_mask, decoder_attention_mask, None, 0, True, deterministic,
                              output_attentions, output_hidden_states)
        logits = self.qa_outputs(decoded.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.Seq2SeqQuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            decoder_hidden_states=decoded.hidden_states, decoder_attentions=decoded.attentions,
            cross_attentions=decoded.cross_attentions, encoder_last_hidden_state=encoded.last_hidden_state,
            encoder_hidden_states=encoded.hidden_states, encoder_attentions=encoded.attentions)
