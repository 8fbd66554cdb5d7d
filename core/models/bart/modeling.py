"""The BART family of encoder-decoders (BART, mBART, PLBart, Marian, Pegasus, M2M100,
Blenderbot, BlenderbotSmall, MVP, FSMT), in the portable Flax subset.

One set of modules; the model types differ by configuration (see `config.py`): pre- or
post-norm blocks, the embedding LayerNorm, learned (offset) or sinusoidal positions, and how
labels are shifted into decoder inputs. Submodule names follow `transformers` (shared,
encoder/decoder, embed_tokens, embed_positions, layers, self_attn, encoder_attn, fc1, fc2,
*_layer_norm, layernorm_embedding, layer_norm, lm_head, final_logits_bias,
classification_head, qa_outputs), so the key map is a table of renames.

Encoder-decoder interface: every seq2seq module has `__call__`, `encode`, `decode` and
`init_cache(batch_size, max_length, encoder_length)`; the cache is
(self_keys, self_values, cross_keys, cross_values), each (layers, batch, length, heads,
head_dim). Decoder layers run under `P.Repeat` with the carry (hidden, layer, cache).
"""
import math

import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.layers.decoder import collect_hidden_states, decoder_inputs, init_cache, keep_last, update_layer_cache
from core.models.bart.config import BartConfig


# -- inputs ----------------------------------------------------------------------------------------

def shift_tokens_right(labels, pad_token_id: int, decoder_start_token_id: int):
    """Decoder inputs from labels: the start token, then labels[:, :-1]; -100 becomes the pad."""
    batch = jnp.shape(labels)[0]
    labels = jnp.asarray(labels, jnp.int32)
    start = jnp.ones((batch, 1), jnp.int32) * decoder_start_token_id
    shifted = jnp.concatenate([start, labels[:, :-1]], axis=1)
    return jnp.where(shifted == -100, pad_token_id, shifted)


def shift_tokens_right_last_token(labels, pad_token_id: int):
    """mBART/PLBart: the last non-pad token of each row (the language id) starts it."""
    labels = jnp.asarray(labels, jnp.int32)
    labels = jnp.where(labels == -100, pad_token_id, labels)
    last = jnp.sum(jnp.asarray(jnp.not_equal(labels, pad_token_id), jnp.int32), axis=1) - 1
    start = jnp.take_along_axis(labels, jnp.expand_dims(last, 1), axis=1)
    return jnp.concatenate([start, labels[:, :-1]], axis=1)


def decoder_inputs_from(config: BartConfig, ids):
    if config.shift_style == "last-token":
        return shift_tokens_right_last_token(ids, config.pad_token_id)
    return shift_tokens_right(ids, config.pad_token_id, config.decoder_start_token_id)


def sequential_positions(input_ids, start):
    batch, length = jnp.shape(input_ids)
    return jnp.broadcast_to(jnp.expand_dims(jnp.arange(length) + start, 0), (batch, length))


def padded_positions(input_ids, padding_idx: int, start):
    """M2M100 (fairseq): non-pad tokens count from padding_idx + 1 (+ the cached length); pads
    get padding_idx."""
    not_pad = jnp.asarray(jnp.not_equal(input_ids, padding_idx), jnp.int32)
    return (jnp.cumsum(not_pad, axis=1) + start) * not_pad + padding_idx


def sinusoidal_halves(position_ids, dim: int, dtype):
    """Marian/Pegasus: sin(pos / 10000^(2k/dim)) in the first ceil(dim/2) channels, cos in the rest."""
    pos = jnp.expand_dims(jnp.asarray(position_ids, jnp.float32), -1)
    sin_k = jnp.arange((dim + 1) // 2, dtype=jnp.float32)
    cos_k = jnp.arange(dim // 2, dtype=jnp.float32)
    sin_part = jnp.sin(pos / jnp.power(10000.0, 2.0 * sin_k / dim))
    cos_part = jnp.cos(pos / jnp.power(10000.0, 2.0 * cos_k / dim))
    return jnp.asarray(jnp.concatenate([sin_part, cos_part], axis=-1), dtype)


def fsmt_positions(input_ids, padding_idx: int, start):
    """FSMT (fairseq): non-pad tokens count from padding_idx + 1; pads get padding_idx; the
    cached length is added to both (transformers' `make_positions(...) + cache_length`)."""
    not_pad = jnp.asarray(jnp.not_equal(input_ids, padding_idx), jnp.int32)
    return jnp.cumsum(not_pad, axis=1) * not_pad + padding_idx + start


def sinusoidal_fairseq(position_ids, dim: int, padding_idx: int, dtype):
    """M2M100 (tensor2tensor layout): sin | cos halves of exp(-k log(10000) / (half - 1)), a zero
    channel for odd dims, and zeros at the padding position."""
    half = dim // 2
    freq = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / (half - 1)))
    angle = jnp.expand_dims(jnp.asarray(position_ids, jnp.float32), -1) * freq
    table = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)
    if dim % 2 == 1:
        table = jnp.concatenate([table, jnp.zeros(jnp.shape(table)[:-1] + (1,), jnp.float32)], axis=-1)
    table = jnp.where(jnp.expand_dims(position_ids == padding_idx, -1), 0.0, table)
    return jnp.asarray(table, dtype)


def pool_eos(hidden, input_ids, eos_token_id: int):
    """Per row, the hidden state at the last `eos_token_id` of `input_ids` (BART's sentence
    representation; transformers requires every row to hold the same number of EOS tokens)."""
    batch, length = jnp.shape(input_ids)
    is_eos = jnp.asarray(input_ids == eos_token_id, jnp.int32)
    last = jnp.max(jnp.expand_dims(jnp.arange(length), 0) * is_eos, axis=-1)
    index = jnp.broadcast_to(jnp.reshape(last, (batch, 1, 1)), (batch, 1, jnp.shape(hidden)[-1]))
    return jnp.take_along_axis(hidden, index, axis=1)[:, 0]


# -- blocks ----------------------------------------------------------------------------------------

class BartAttention(nn.Module):
    """Multi-head attention; self-attention when `kv_states` is the query input, cross-attention
    when it is the encoder output. With a cache: `read_cache` takes this layer's keys/values from
    it; otherwise the new keys/values are written at `cache_index`."""
    config: BartConfig
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = c.d_model
        self.k_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.q_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, kv_states, mask, layer, cache, cache_index, read_cache: bool = False,
                 deterministic: bool = True, output_attentions: bool = False, prompt=None):
        c = self.config
        head_dim = c.d_model // self.num_heads
        batch, length, _ = jnp.shape(hidden)
        q = jnp.reshape(self.q_proj(hidden), (batch, length, self.num_heads, head_dim))
        if read_cache:
            k = cache[0][layer]
            v = cache[1][layer]
        else:
            kv_length = jnp.shape(kv_states)[1]
            k = jnp.reshape(self.k_proj(kv_states), (batch, kv_length, self.num_heads, head_dim))
            v = jnp.reshape(self.v_proj(kv_states), (batch, kv_length, self.num_heads, head_dim))
            if cache is not None:
                cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        if prompt is not None:
            # MVP: (2, prompt_length, heads, head_dim) keys/values in front of every row's own
            # (never cached), always attended to.
            prompt_length = jnp.shape(prompt)[1]
            shape = (batch, prompt_length, self.num_heads, head_dim)
            k = jnp.concatenate([jnp.broadcast_to(jnp.expand_dims(jnp.asarray(prompt[0], k.dtype), 0), shape), k],
                                axis=1)
            v = jnp.concatenate([jnp.broadcast_to(jnp.expand_dims(jnp.asarray(prompt[1], v.dtype), 0), shape), v],
                                axis=1)
            if mask is not None:
                mask_shape = jnp.shape(mask)
                mask = jnp.concatenate([jnp.ones(mask_shape[:-1] + (prompt_length,), jnp.bool_), mask], axis=-1)
        context, weights = self.core(q, k, v, mask=mask, scale=head_dim ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.out_proj(jnp.reshape(context, (batch, length, c.d_model)))
        return out, weights, cache


class MvpPrompt(nn.Module):
    """MVP's layer-wise prompt: `prompt_length` learned rows → Linear → GELU → Linear to
    (layers, 2, prompt_length, heads, head_dim) key (0) / value (1) prefixes."""
    config: BartConfig
    num_layers: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.prompt_embedding = P.Embed(c.prompt_length, c.d_model, c.init_std, self.dtype, self.param_dtype)
        self.prompt_trans = [P.Dense(c.prompt_mid_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype),
                             P.Dense(self.num_layers * 2 * c.d_model, c.prompt_mid_dim, True, c.init_std, self.dtype,
                                     self.param_dtype)]
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, deterministic: bool = True):
        c = self.config
        head_dim = c.d_model // self.num_heads
        hidden = self.prompt_trans[0](self.prompt_embedding(jnp.arange(c.prompt_length)))
        hidden = self.prompt_trans[1](P.act(hidden, "gelu"))
        prompt = jnp.reshape(hidden, (c.prompt_length, self.num_layers, 2, self.num_heads, head_dim))
        prompt = self.dropout(prompt, deterministic=deterministic)
        return jnp.transpose(prompt, (1, 2, 0, 3, 4))


class BartEncoderLayer(nn.Module):
    """One encoder block (post-norm, or pre-norm with `normalize_before`); the `Repeat` body."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = BartAttention(c, c.encoder_attention_heads, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.encoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.encoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        residual = hidden
        if c.normalize_before:
            hidden = self.self_attn_layer_norm(hidden)
        hidden, weights, _ = self.self_attn(hidden, hidden, mask, None, None, 0, False, deterministic,
                                            output_attentions)
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        if not c.normalize_before:
            hidden = self.self_attn_layer_norm(hidden)
        residual = hidden
        if c.normalize_before:
            hidden = self.final_layer_norm(hidden)
        hidden = self.activation_dropout(P.act(self.fc1(hidden), c.activation_function), deterministic=deterministic)
        hidden = residual + self.dropout(self.fc2(hidden), deterministic=deterministic)
        if not c.normalize_before:
            hidden = self.final_layer_norm(hidden)
        return hidden, (hidden, weights)


class BartDecoderLayer(nn.Module):
    """One decoder block: self-attention (cached), cross-attention, MLP. The `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, self weights, cross weights))."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = BartAttention(c, c.decoder_attention_heads, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder_attn = BartAttention(c, c.decoder_attention_heads, self.dtype, self.param_dtype)
        self.encoder_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.decoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.decoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def __call__(self, carry, mask, encoder_hidden_states, cross_mask, cache_index, use_cross: bool = True,
                 fill_cross_cache: bool = True, self_prompts=None, cross_prompts=None, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        hidden, layer, cache = carry
        self_prompt = None
        cross_prompt = None
        if self_prompts is not None:
            self_prompt = self_prompts[layer]
            cross_prompt = cross_prompts[layer]
        self_cache = None
        cross_cache = None
        if cache is not None:
            self_cache = (cache[0], cache[1])
            cross_cache = (cache[2], cache[3])
        residual = hidden
        if c.normalize_before:
            hidden = self.self_attn_layer_norm(hidden)
        hidden, weights, self_cache = self.self_attn(hidden, hidden, mask, layer, self_cache, cache_index, False,
                                                     deterministic, output_attentions, self_prompt)
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        if not c.normalize_before:
            hidden = self.self_attn_layer_norm(hidden)
        cross_weights = None
        if use_cross:
            residual = hidden
            if c.normalize_before:
                hidden = self.encoder_attn_layer_norm(hidden)
            read_cache = cache is not None and not fill_cross_cache
            hidden, cross_weights, cross_cache = self.encoder_attn(hidden, encoder_hidden_states, cross_mask, layer,
                                                                   cross_cache, 0, read_cache, deterministic,
                                                                   output_attentions, cross_prompt)
            hidden = residual + self.dropout(hidden, deterministic=deterministic)
            if not c.normalize_before:
                hidden = self.encoder_attn_layer_norm(hidden)
        else:
            # A decoder without an encoder (causal-lm) still owns the cross-attention weights;
            # this unused call creates them (XLA drops it; it is never read).
            self.encoder_attn(self.encoder_attn_layer_norm(hidden), hidden, None, layer, None, 0, False, True, False)
        residual = hidden
        if c.normalize_before:
            hidden = self.final_layer_norm(hidden)
        hidden = self.activation_dropout(P.act(self.fc1(hidden), c.activation_function), deterministic=deterministic)
        hidden = residual + self.dropout(self.fc2(hidden), deterministic=deterministic)
        if not c.normalize_before:
            hidden = self.final_layer_norm(hidden)
        if cache is not None:
            cache = (self_cache[0], self_cache[1], cross_cache[0], cross_cache[1])
        return (hidden, layer + 1, cache), (hidden, weights, cross_weights)


class BartEncoder(nn.Module):
    """Token + position embeddings → layers (→ final layer_norm when pre-norm). Tied
    embeddings: the token table is the parent's `shared`, passed in."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if not c.tie_word_embeddings:
            self.embed_tokens = P.Embed(c.source_vocab, c.d_model, c.init_std, self.dtype, self.param_dtype)
        if c.position_kind == "learned":
            self.embed_positions = P.Embed(c.num_positions, c.d_model, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(BartEncoderLayer, c.encoder_layers, kwargs, remat=self.remat)
        if c.has_layernorm_embedding:
            self.layernorm_embedding = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        if c.normalize_before:
            self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, attention_mask, shared, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, length), jnp.int32)
        if c.tie_word_embeddings:
            embeds = shared(input_ids) * c.embed_scale
        else:
            embeds = self.embed_tokens(input_ids) * c.embed_scale
        hidden = embeds + position_embeddings(self, c, input_ids, 0, self.dtype)
        if c.has_layernorm_embedding:
            hidden = self.layernorm_embedding(hidden)
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        hidden, per_layer = self.layers(hidden, A.padding_mask(attention_mask), deterministic, output_attentions)
        if c.normalize_before:
            hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


def position_embeddings(module, config: BartConfig, input_ids, start, dtype):
    """Position embeddings of `input_ids` whose first position is `start` (the cache index)."""
    if config.position_kind == "learned":
        return module.embed_positions(sequential_positions(input_ids, start) + config.position_offset)
    if config.position_kind == "sinusoidal":
        return sinusoidal_halves(sequential_positions(input_ids, start), config.d_model, dtype)
    if config.position_kind == "sinusoidal-fsmt":
        return sinusoidal_fairseq(fsmt_positions(input_ids, config.pad_token_id, start), config.d_model,
                                  config.pad_token_id, dtype)
    return sinusoidal_fairseq(padded_positions(input_ids, config.pad_token_id, start), config.d_model,
                              config.pad_token_id, dtype)


class BartDecoder(nn.Module):
    """Causal self-attention over the decoder inputs and cross-attention to the encoder output.
    `standalone` (causal-lm): the decoder owns its token table whatever the tie setting."""
    config: BartConfig
    standalone: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if self.standalone or not c.tie_word_embeddings:
            self.embed_tokens = P.Embed(c.target_vocab, c.d_model, c.init_std, self.dtype, self.param_dtype)
        if c.position_kind == "learned":
            self.embed_positions = P.Embed(c.num_positions, c.d_model, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(BartDecoderLayer, c.decoder_layers, kwargs, remat=self.remat)
        if c.uses_prompts and not self.standalone:
            self.self_attn_prompt = MvpPrompt(c, c.decoder_layers, c.decoder_attention_heads, self.dtype,
                                              self.param_dtype)
            self.cross_attn_prompt = MvpPrompt(c, c.decoder_layers, c.decoder_attention_heads, self.dtype,
                                               self.param_dtype)
        if not c.shared_table and not c.tie_word_embeddings:
            self.output_projection = P.Dense(c.target_vocab, c.d_model, False, c.init_std, self.dtype,
                                             self.param_dtype)
        if c.has_layernorm_embedding:
            self.layernorm_embedding = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        if c.normalize_before:
            self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_index,
                 fill_cross_cache: bool, shared, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        if c.mask_decoder_pads and attention_mask is None and cache is None:
            # FSMT (fairseq): without a mask, pad tokens of the decoder inputs are not attended to.
            attention_mask = jnp.asarray(jnp.not_equal(input_ids, c.pad_token_id), jnp.int32)
        mask, _ = decoder_inputs(input_ids, attention_mask, None, cache, cache_index)
        if self.standalone or not c.tie_word_embeddings:
            embeds = self.embed_tokens(input_ids) * c.embed_scale
        else:
            embeds = shared(input_ids) * c.embed_scale
        positions = position_embeddings(self, c, input_ids, cache_index, self.dtype)
        if c.decoder_layernorm_embedding_first:
            hidden = self.layernorm_embedding(embeds) + positions
        else:
            hidden = embeds + positions
            if c.has_layernorm_embedding:
                hidden = self.layernorm_embedding(hidden)
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        use_cross = encoder_hidden_states is not None or (cache is not None and not fill_cross_cache)
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = A.padding_mask(encoder_attention_mask)
        self_prompts = None
        cross_prompts = None
        if c.uses_prompts and not self.standalone:
            self_prompts = self.self_attn_prompt(deterministic)
            cross_prompts = self.cross_attn_prompt(deterministic)
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, encoder_hidden_states,
                                       cross_mask, cache_index, use_cross, fill_cross_cache, self_prompts,
                                       cross_prompts, deterministic, output_attentions)
        hidden, _, cache = carry
        if c.normalize_before:
            hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        if not c.shared_table:
            # FSMT: the decoder ends in the vocabulary projection (tied: the shared target table).
            if c.tie_word_embeddings:
                hidden = shared.attend(hidden)
            else:
                hidden = self.output_projection(hidden)
        all_attentions = None
        all_cross = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
            all_cross = ()      # no encoder: none, as transformers reports it
            if use_cross:
                all_cross = tuple(jnp.unstack(per_layer[2], axis=0))
        return outputs.BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden, cache=cache, hidden_states=all_hidden, attentions=all_attentions,
            cross_attentions=all_cross)


def make_cache(config: BartConfig, batch_size: int, max_length: int, encoder_length: int, dtype):
    """(self_keys, self_values, cross_keys, cross_values), zeros."""
    c = config
    self_k, self_v = init_cache(c.decoder_layers, batch_size, max_length, c.decoder_attention_heads, c.head_dim, dtype)
    cross_k, cross_v = init_cache(c.decoder_layers, batch_size, encoder_length, c.decoder_attention_heads, c.head_dim,
                                  dtype)
    return (self_k, self_v, cross_k, cross_v)


class BartModule(nn.Module):
    """The bare encoder-decoder: `transformers.BartModel` (and its siblings)."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.has_shared:
            self.shared = P.Embed(c.target_vocab, c.d_model, c.init_std, self.dtype, self.param_dtype)
        self.encoder = BartEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.decoder = BartDecoder(c, False, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return self.encoder(input_ids, attention_mask, self.shared_table(), deterministic, output_attentions,
                            output_hidden_states)

    def shared_table(self):
        """`shared`, or None where the model has none (FSMT untied)."""
        if self.config.has_shared:
            return self.shared
        return None

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        out = self.decoder(decoder_input_ids, decoder_attention_mask, encoder_hidden_states, encoder_attention_mask,
                           cache, cache_index, fill_cross_cache, self.shared_table(), deterministic,
                           output_attentions, output_hidden_states)
        return outputs.Seq2SeqModelOutput(last_hidden_state=keep_last(out.last_hidden_state, logits_to_keep),
                                          cache=out.cache, decoder_hidden_states=out.hidden_states,
                                          decoder_attentions=out.attentions, cross_attentions=out.cross_attentions)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        if decoder_input_ids is None:
            # FSMT shifts the encoder inputs even when labels are given (as transformers does).
            source = labels is None or self.config.shift_source
            decoder_input_ids = decoder_inputs_from(self.config, input_ids if source else labels)
        if self.config.has_shared and not self.config.tie_word_embeddings:
            # Untied, `shared` is read by nothing, yet transformers keeps (and saves) it: one
            # lookup makes it a parameter here too.
            self.shared(jnp.zeros((1, 1), jnp.int32))
        encoded = None
        if encoder_hidden_states is None:
            encoded = self.encode(input_ids, attention_mask, deterministic, output_attentions, output_hidden_states)
            encoder_hidden_states = encoded.last_hidden_state
        out = self.decode(decoder_input_ids, encoder_hidden_states, attention_mask, decoder_attention_mask, cache,
                          cache_index, fill_cross_cache, logits_to_keep, deterministic, output_attentions,
                          output_hidden_states)
        return outputs.Seq2SeqModelOutput(
            last_hidden_state=out.last_hidden_state, cache=out.cache, decoder_hidden_states=out.decoder_hidden_states,
            decoder_attentions=out.decoder_attentions, cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=None if encoded is None else encoded.hidden_states,
            encoder_attentions=None if encoded is None else encoded.attentions)


# -- heads -----------------------------------------------------------------------------------------

class BartForConditionalGeneration(nn.Module):
    """The encoder-decoder and a vocabulary projection (`lm_head`, or `shared` when tied) plus
    `final_logits_bias` (a zero buffer in transformers, kept so checkpoints round-trip)."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = BartModule(c, self.dtype, self.param_dtype, self.remat)
        if c.shared_table and not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.d_model, False, c.init_std, self.dtype, self.param_dtype)
        if c.has_final_logits_bias:
            self.final_logits_bias = self.param("final_logits_bias", P.zeros_init(), (1, c.vocab_size),
                                                self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return self.model.encode(input_ids, attention_mask, deterministic, output_attentions, output_hidden_states)

    def lm_logits(self, hidden):
        c = self.config
        if not c.shared_table:
            return hidden       # FSMT: the decoder already projected onto the vocabulary
        if c.tie_word_embeddings:
            logits = self.model.shared.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        if c.has_final_logits_bias:
            logits = logits + jnp.asarray(self.final_logits_bias, self.dtype)
        return logits

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        out = self.model.decode(decoder_input_ids, encoder_hidden_states, encoder_attention_mask,
                                decoder_attention_mask, cache, cache_index, fill_cross_cache, logits_to_keep,
                                deterministic, output_attentions, output_hidden_states)
        return outputs.Seq2SeqLMOutput(logits=self.lm_logits(out.last_hidden_state), cache=out.cache,
                                       decoder_hidden_states=out.decoder_hidden_states,
                                       decoder_attentions=out.decoder_attentions,
                                       cross_attentions=out.cross_attentions)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_hidden_states,
                          cache, cache_index, fill_cross_cache, labels, logits_to_keep, deterministic,
                          output_attentions, output_hidden_states)
        logits = self.lm_logits(base.last_hidden_state)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.Seq2SeqLMOutput(
            loss=loss, logits=logits, cache=base.cache, decoder_hidden_states=base.decoder_hidden_states,
            decoder_attentions=base.decoder_attentions, cross_attentions=base.cross_attentions,
            encoder_last_hidden_state=base.encoder_last_hidden_state, encoder_hidden_states=base.encoder_hidden_states,
            encoder_attentions=base.encoder_attentions)


class BartClassificationHead(nn.Module):
    """dropout → dense → tanh → dropout → out_proj."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.d_model, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.out_proj = P.Dense(c.num_labels, c.d_model, True, c.init_std, self.dtype, self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = jnp.tanh(self.dense(self.dropout(hidden, deterministic=deterministic)))
        return self.out_proj(self.dropout(hidden, deterministic=deterministic))


class BartForSequenceClassification(nn.Module):
    """Classifies the decoder's hidden state at the last EOS token of `input_ids`."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.model = BartModule(self.config, self.dtype, self.param_dtype, self.remat)
        self.classification_head = BartClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        base = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, None, None, 0, True,
                          None, 0, deterministic, output_attentions, output_hidden_states)
        pooled = pool_eos(base.last_hidden_state, input_ids, c.eos_id)
        logits = self.classification_head(pooled, deterministic)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, c.problem_type, c.num_labels)
        return outputs.Seq2SeqSequenceClassifierOutput(
            loss=loss, logits=logits, decoder_hidden_states=base.decoder_hidden_states,
            decoder_attentions=base.decoder_attentions, cross_attentions=base.cross_attentions,
            encoder_last_hidden_state=base.encoder_last_hidden_state, encoder_hidden_states=base.encoder_hidden_states,
            encoder_attentions=base.encoder_attentions)


class BartForQuestionAnswering(nn.Module):
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = BartModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.d_model, True, c.init_std, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, None, None, 0, True,
                          None, 0, deterministic, output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.Seq2SeqQuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            decoder_hidden_states=base.decoder_hidden_states, decoder_attentions=base.decoder_attentions,
            cross_attentions=base.cross_attentions, encoder_last_hidden_state=base.encoder_last_hidden_state,
            encoder_hidden_states=base.encoder_hidden_states, encoder_attentions=base.encoder_attentions)


class BartDecoderWrapper(nn.Module):
    """`model` of the causal-lm head: holds the decoder (key names `model.decoder.*`)."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.decoder = BartDecoder(self.config, True, self.dtype, self.param_dtype, self.remat)

    def __call__(self, input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_index,
                 fill_cross_cache: bool, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        return self.decoder(input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask, cache,
                            cache_index, fill_cross_cache, None, deterministic, output_attentions, output_hidden_states)


class BartForCausalLM(nn.Module):
    """The decoder alone (cross-attention only when `encoder_hidden_states` is given) and a
    vocabulary projection. As in transformers v5, `labels` are not shifted: labels[:, t] is
    the target of logits[:, t]."""
    config: BartConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = BartDecoderWrapper(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.d_model, False, c.init_std, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int = 0):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def __call__(self, input_ids, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None, logits_to_keep: int = 0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_index,
                          fill_cross_cache, deterministic, output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.model.decoder.embed_tokens.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, cache=base.cache, hidden_states=base.hidden_states, attentions=base.attentions,
            cross_attentions=base.cross_attentions)
