"""BLOOM: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (word_embeddings, word_embeddings_layernorm, h,
input_layernorm, self_attention/query_key_value, self_attention/dense, post_attention_layernorm,
mlp/dense_h_to_4h, mlp/dense_4h_to_h, ln_f, lm_head, score, classifier, qa_outputs), so the key
map is a table of renames.

Positions are ALiBi: a per-head bias slope * (key position), positions counted over the
non-padded keys of each row (`positions.alibi_bias`; correct under left padding and with the
static cache, whose mask covers every slot). `transformers` computes the scores as
`alibi.baddbmm(q, k^T, beta=1, alpha=1/sqrt(head_dim))` = alibi + (q k^T) / sqrt(head_dim),
then adds the mask and takes a float32 softmax: `AttentionCore(bias=alibi, scale=...)` is that
order. The fused `query_key_value` is laid out per head: (heads, 3, head_dim).
Blocks run under `P.Repeat` with the scan carry `(hidden, layer, cache)`.
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
from core.models.bloom.config import BloomConfig


def bloom_gelu(x):
    """BLOOM's tanh GELU, with its own constants and order (transformers' bloom_gelu_forward)."""
    return x * 0.5 * (1.0 + jnp.tanh(0.79788456 * x * (1.0 + 0.044715 * x * x)))


def alibi_inputs(input_ids, attention_mask, cache):
    """The key mask ALiBi counts positions over: as given, or all ones over the keys (the
    cache's slots when decoding), as transformers uses arange(kv_length) without a mask."""
    batch, length = jnp.shape(input_ids)
    kv_length = length if cache is None else jnp.shape(cache[0])[2]
    if attention_mask is None:
        return jnp.ones((batch, kv_length), jnp.int32)
    return attention_mask


# -- BLOOM -----------------------------------------------------------------------------------------

class BloomAttention(nn.Module):
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        self.query_key_value = P.Dense(3 * c.hidden_size, c.hidden_size, True, std, self.dtype, self.param_dtype)
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)
        self.hidden_dropout = P.Dropout(c.hidden_dropout)

    def __call__(self, hidden, residual, alibi, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        d = c.head_dim
        batch, length, _ = jnp.shape(hidden)
        qkv = jnp.reshape(self.query_key_value(hidden), (batch, length, c.n_head, 3 * d))
        q = qkv[..., :d]
        k = qkv[..., d:2 * d]
        v = qkv[..., 2 * d:]
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, bias=alibi, scale=d ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.dense(jnp.reshape(context, (batch, length, c.hidden_size)))
        return residual + self.hidden_dropout(out, deterministic=deterministic), weights, cache


class BloomMLP(nn.Module):
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        self.dense_h_to_4h = P.Dense(4 * c.hidden_size, c.hidden_size, True, std, self.dtype, self.param_dtype)
        self.dense_4h_to_h = P.Dense(c.hidden_size, 4 * c.hidden_size, True, std, self.dtype, self.param_dtype)
        self.hidden_dropout = P.Dropout(c.hidden_dropout)

    def __call__(self, hidden, residual, deterministic: bool = True):
        out = self.dense_4h_to_h(bloom_gelu(self.dense_h_to_4h(hidden)))
        return residual + self.hidden_dropout(out, deterministic=deterministic)


class BloomBlock(nn.Module):
    """One pre-LayerNorm block whose residuals are the normed inputs when
    apply_residual_connection_post_layernorm; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.input_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype,
                                           param_dtype=self.param_dtype)
        self.self_attention = BloomAttention(c, self.dtype, self.param_dtype)
        self.post_attention_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype,
                                                    param_dtype=self.param_dtype)
        self.mlp = BloomMLP(c, self.dtype, self.param_dtype)

    def __call__(self, carry, alibi, mask, cache_index, deterministic: bool = True, output_attentions: bool = False):
        hidden, layer, cache = carry
        post_ln = self.config.apply_residual_connection_post_layernorm
        normed = self.input_layernorm(hidden)
        residual = normed if post_ln else hidden
        attended, weights, cache = self.self_attention(normed, residual, alibi, mask, layer, cache, cache_index,
                                                       deterministic, output_attentions)
        normed = self.post_attention_layernorm(attended)
        residual = normed if post_ln else attended
        hidden = self.mlp(normed, residual, deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class BloomModule(nn.Module):
    """The bare decoder: word_embeddings → word_embeddings_layernorm → blocks → ln_f.
    `transformers.BloomModel`."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype,
                                       self.param_dtype)
        self.word_embeddings_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype,
                                                     param_dtype=self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(BloomBlock, c.n_layer, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        """`position_ids` is accepted (the generation engine passes it) and unused: ALiBi
        positions come from the attention mask, as in transformers."""
        chex.assert_rank(input_ids, 2)
        attention_mask = alibi_inputs(input_ids, attention_mask, cache)
        mask, _ = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        alibi = jnp.asarray(pos.alibi_bias(attention_mask, self.config.n_head), self.dtype)
        hidden = self.word_embeddings_layernorm(self.word_embeddings(input_ids))
        embedded = hidden
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), alibi, mask, cache_index,
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


class BloomForCausalLM(nn.Module):
    """The decoder and a vocabulary projection, tied to `word_embeddings` unless the config unties it."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = BloomModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                   self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

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


class BloomForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = BloomModule(c, self.dtype, self.param_dtype, self.remat)
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


class BloomForTokenClassification(nn.Module):
    """A label per token: dropout (classifier_dropout, else hidden_dropout) and a linear classifier."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = BloomModule(c, self.dtype, self.param_dtype, self.remat)
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


class BloomForQuestionAnswering(nn.Module):
    """Extractive QA: start and end logits per token."""
    config: BloomConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = BloomModule(c, self.dtype, self.param_dtype, self.remat)
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
