"""GPT-NeoX: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embed_in, layers, attention/query_key_value,
attention/dense, mlp, input_layernorm, post_attention_layernorm, final_layer_norm, score,
classifier, qa_outputs); the LM head is `embed_out`, the name checkpoints store it under
(transformers v5 renames it `lm_head` in memory and back on save). The MLP is the shared
`MLP` (up/down ⇄ dense_h_to_4h/dense_4h_to_h in the key map).

The fused `query_key_value` projection is laid out per head: its output reshapes to
(batch, length, heads, 3 * head_dim) and each head's slice is [q | k | v] — a reshape, no
transform of the weights. Rotary embeddings (rotate-half layout) cover the first
`rotary_dim = int(head_dim * partial_rotary_factor)` channels of every head; the rope scaling
types are `core.layers.positions.rope_inv_freq`'s, computed over `rotary_dim`.
Layers run under `P.Repeat` with the scan carry `(hidden, layer, cache)` (see
`core/layers/decoder.py`).
"""

import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import mlp as M
from core.layers import positions as pos
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token, update_layer_cache)
from core.models.gpt_neox.config import GPTNeoXConfig


def rotary_embedding(config: GPTNeoXConfig, position_ids):
    """cos and sin, (batch, length, rotary_dim/2) each, for the positions (batch, length)."""
    inv_freq, scaling = pos.rope_inv_freq(config.rope, config.rotary_dim, config.max_position_embeddings,
                                          position_ids)
    return pos.rotary_cos_sin(position_ids, inv_freq, scaling)


# -- GPT-NeoX --------------------------------------------------------------------------------------

class GPTNeoXAttention(nn.Module):
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        self.query_key_value = P.Dense(3 * c.hidden_size, c.hidden_size, c.attention_bias, std, self.dtype,
                                       self.param_dtype)
        self.dense = P.Dense(c.hidden_size, c.hidden_size, c.attention_bias, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, cos, sin, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        d = c.head_dim
        batch, length, _ = jnp.shape(hidden)
        qkv = jnp.reshape(self.query_key_value(hidden), (batch, length, c.num_attention_heads, 3 * d))
        q = pos.apply_rotary(qkv[..., :d], cos, sin)
        k = pos.apply_rotary(qkv[..., d:2 * d], cos, sin)
        v = qkv[..., 2 * d:]
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=d ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.dense(jnp.reshape(context, (batch, length, c.hidden_size)))
        return out, weights, cache


class GPTNeoXLayer(nn.Module):
    """One pre-LayerNorm block, parallel (attention and MLP both read the block input) or
    sequential residual; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.input_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                           param_dtype=self.param_dtype)
        self.post_attention_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                                    param_dtype=self.param_dtype)
        self.post_attention_dropout = P.Dropout(c.hidden_dropout)
        self.attention = GPTNeoXAttention(c, self.dtype, self.param_dtype)
        # The MLP's own dropout is the block's post_mlp_dropout (same rate, same place).
        self.mlp = M.MLP(c.hidden_size, c.intermediate_size, c.hidden_act, True, c.hidden_dropout,
                         c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, carry, cos, sin, mask, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.attention(self.input_layernorm(hidden), cos, sin, mask, layer, cache,
                                                  cache_index, deterministic, output_attentions)
        attended = self.post_attention_dropout(attended, deterministic=deterministic)
        if self.config.use_parallel_residual:
            mlp_out = self.mlp(self.post_attention_layernorm(hidden), deterministic=deterministic)
            hidden = mlp_out + attended + hidden
        else:
            attended = attended + hidden
            hidden = self.mlp(self.post_attention_layernorm(attended), deterministic=deterministic) + attended
        return (hidden, layer + 1, cache), (hidden, weights)


class GPTNeoXModule(nn.Module):
    """The bare decoder: embed_in → layers → final_layer_norm. `transformers.GPTNeoXModel`."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_in = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.emb_dropout = P.Dropout(c.hidden_dropout)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(GPTNeoXLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        self.final_layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                            param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        hidden = self.emb_dropout(self.embed_in(input_ids), deterministic=deterministic)
        cos, sin = rotary_embedding(self.config, position_ids)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), cos, sin, mask, cache_index,
                                       deterministic, output_attentions)
        hidden, _, cache = carry
        hidden = self.final_layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class GPTNeoXForCausalLM(nn.Module):
    """The decoder and a vocabulary projection (`embed_out`, or `embed_in` when tied)."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.gpt_neox = GPTNeoXModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.embed_out = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                     self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.gpt_neox(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                             output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.gpt_neox.embed_in.attend(hidden)
        else:
            logits = self.embed_out(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class GPTNeoXForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.gpt_neox = GPTNeoXModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.hidden_size, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.gpt_neox(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                             output_attentions, output_hidden_states)
        logits = pool_last_token(self.score(base.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                                        hidden_states=base.hidden_states,
                                                        attentions=base.attentions)


class GPTNeoXForTokenClassification(nn.Module):
    """A label per token: dropout (classifier_dropout) and a linear classifier."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.gpt_neox = GPTNeoXModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.gpt_neox(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                             output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class GPTNeoXForQuestionAnswering(nn.Module):
    """Extractive QA: start and end logits per token."""
    config: GPTNeoXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.gpt_neox = GPTNeoXModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, start_positions=None, end_positions=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.gpt_neox(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                             output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)
