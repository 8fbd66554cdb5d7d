"""Falcon: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (word_embeddings, h, self_attention/query_key_value,
self_attention/dense, mlp/dense_h_to_4h, mlp/dense_4h_to_h, input_layernorm,
post_attention_layernorm, ln_attn, ln_mlp, ln_f, lm_head, score, classifier, qa_outputs), so
the key map is a table of renames. Which LayerNorms a block has depends on the variant (see
`FalconConfig`); the fused `query_key_value` is split per variant in `split_qkv` (a reshape;
the weights keep the checkpoint layout). Keys and values stay at `kv_heads` heads (the cache
too); `AttentionCore` shares each among its group of query heads, which is what transformers'
broadcast copies compute.

Positions are rotary (rotate-half, whole heads; rope types of `positions.rope_inv_freq`) or,
with `alibi`, ALiBi as Falcon builds it: slopes rounded to bfloat16 and slope * position
rounded to bfloat16 again, then added to the scores before the 1/sqrt(head_dim) scaling —
(q k^T + alibi) / sqrt(head_dim). That is transformers' SDPA path and the original Falcon code;
transformers' eager path (and any call with output_attentions=True) adds the bias a second
time through its mask, which we do not copy (see tests/test_falcon.py).
"""

import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import positions as pos
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token, update_layer_cache)
from core.models.falcon.config import FalconConfig


def rotary_embedding(config: FalconConfig, position_ids):
    """cos and sin, (batch, length, head_dim/2) each, for the positions (batch, length)."""
    inv_freq, scaling = pos.rope_inv_freq(config.rope, config.head_dim, config.max_position_embeddings, position_ids)
    return pos.rotary_cos_sin(position_ids, inv_freq, scaling)


def falcon_alibi(attention_mask, num_heads: int):
    """(batch, heads, 1, kv_len) ALiBi bias in Falcon's precision: bfloat16 slopes times the
    positions counted over non-padded keys, the product rounded to bfloat16."""
    positions = (jnp.cumsum(attention_mask, axis=-1) - 1) * attention_mask
    slopes = jnp.asarray(jnp.asarray(pos.alibi_slopes(num_heads), jnp.bfloat16), jnp.float32)
    bias = jnp.einsum("h,bk->bhk", slopes, jnp.asarray(positions, jnp.float32))
    return jnp.expand_dims(jnp.asarray(jnp.asarray(bias, jnp.bfloat16), jnp.float32), 2)


def split_qkv(config: FalconConfig, fused):
    """q (batch, length, heads, head_dim) and k, v (batch, length, kv_heads, head_dim)."""
    c = config
    d = c.head_dim
    batch, length, _ = jnp.shape(fused)
    if c.new_decoder_architecture:
        groups = c.num_attention_heads // c.kv_heads
        qkv = jnp.reshape(fused, (batch, length, c.kv_heads, groups + 2, d))
        q = jnp.reshape(qkv[:, :, :, :groups], (batch, length, c.num_attention_heads, d))
        return q, qkv[:, :, :, groups], qkv[:, :, :, groups + 1]
    if c.multi_query:
        qkv = jnp.reshape(fused, (batch, length, c.num_attention_heads + 2, d))
        n = c.num_attention_heads
        return qkv[:, :, :n], qkv[:, :, n:n + 1], qkv[:, :, n + 1:]
    qkv = jnp.reshape(fused, (batch, length, c.num_attention_heads, 3 * d))
    return qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]


# -- Falcon ----------------------------------------------------------------------------------------

class FalconAttention(nn.Module):
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        qkv_features = (c.num_attention_heads + 2 * c.kv_heads) * c.head_dim
        self.query_key_value = P.Dense(qkv_features, c.hidden_size, c.bias, std, self.dtype, self.param_dtype)
        self.dense = P.Dense(c.hidden_size, c.hidden_size, c.bias, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, cos, sin, alibi, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        d = c.head_dim
        batch, length, _ = jnp.shape(hidden)
        q, k, v = split_qkv(c, self.query_key_value(hidden))
        bias = None
        if c.alibi:
            bias = alibi * (d ** -0.5)
        else:
            q = pos.apply_rotary(q, cos, sin)
            k = pos.apply_rotary(k, cos, sin)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, bias=bias, scale=d ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.dense(jnp.reshape(context, (batch, length, c.hidden_size)))
        return out, weights, cache


class FalconMLP(nn.Module):
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        self.dense_h_to_4h = P.Dense(c.ffn_size, c.hidden_size, c.bias, std, self.dtype, self.param_dtype)
        self.dense_4h_to_h = P.Dense(c.hidden_size, c.ffn_size, c.bias, std, self.dtype, self.param_dtype)

    def __call__(self, x):
        return self.dense_4h_to_h(P.act(self.dense_h_to_4h(x), self.config.activation))


class FalconDecoderLayer(nn.Module):
    """One block: parallel (attention and MLP read the same input, from one or two LayerNorms)
    or sequential; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        kwargs = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        self.self_attention = FalconAttention(c, self.dtype, self.param_dtype)
        self.mlp = FalconMLP(c, self.dtype, self.param_dtype)
        if c.two_layernorms:
            self.ln_attn = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, **kwargs)
            self.ln_mlp = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, **kwargs)
        else:
            self.input_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, **kwargs)
        if not c.parallel_attn:
            self.post_attention_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, **kwargs)
        self.attention_dropout = P.Dropout(c.attention_dropout)
        self.hidden_dropout = P.Dropout(c.hidden_dropout)

    def __call__(self, carry, cos, sin, alibi, mask, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        hidden, layer, cache = carry
        residual = hidden
        if c.two_layernorms:
            attention_in = self.ln_attn(hidden)
            mlp_in = self.ln_mlp(hidden)
        else:
            attention_in = self.input_layernorm(hidden)
            mlp_in = attention_in
        attended, weights, cache = self.self_attention(attention_in, cos, sin, alibi, mask, layer, cache,
                                                       cache_index, deterministic, output_attentions)
        if not c.parallel_attn:
            # transformers drops the attention output at the attention_dropout rate here.
            residual = residual + self.attention_dropout(attended, deterministic=deterministic)
            mlp_in = self.post_attention_layernorm(residual)
        mlp_out = self.mlp(mlp_in)
        if c.parallel_attn:
            mlp_out = mlp_out + attended
        hidden = residual + self.hidden_dropout(mlp_out, deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class FalconModule(nn.Module):
    """The bare decoder: word_embeddings → blocks → ln_f. `transformers.FalconModel`."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype,
                                       self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(FalconDecoderLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.kv_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        if attention_mask is None:
            # ALiBi counts positions over every key (transformers: a mask of ones).
            kv_length = length if cache is None else jnp.shape(cache[0])[2]
            attention_mask = jnp.ones((batch, kv_length), jnp.int32)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        alibi = None
        cos = None
        sin = None
        if c.alibi:
            alibi = jnp.asarray(falcon_alibi(attention_mask, c.num_attention_heads), self.dtype)
        else:
            cos, sin = rotary_embedding(c, position_ids)
        hidden = self.word_embeddings(input_ids)
        embedded = hidden
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), cos, sin, alibi, mask, cache_index,
                                  deterministic, output_attentions)
        hidden, _, cache = carry
        hidden = self.ln_f(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class FalconForCausalLM(nn.Module):
    """The decoder and a vocabulary projection, tied to `word_embeddings` unless the config unties it."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = FalconModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                   self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.kv_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                                output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.transformer.word_embeddings.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class FalconForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = FalconModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.hidden_size, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                                output_attentions, output_hidden_states)
        logits = pool_last_token(self.score(base.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                                        hidden_states=base.hidden_states,
                                                        attentions=base.attentions)


class FalconForTokenClassification(nn.Module):
    """A label per token: dropout (classifier_dropout, else hidden_dropout) and a linear classifier."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = FalconModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                                output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class FalconForQuestionAnswering(nn.Module):
    """Extractive QA: start and end logits per token."""
    config: FalconConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = FalconModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, start_positions=None, end_positions=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                                output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)
