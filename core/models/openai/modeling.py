"""OpenAI GPT: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (tokens_embed, positions_embed, h, attn/c_attn, ln_1,
mlp/c_fc, ln_2, lm_head, score), so the key map in `params.py` is a table of renames. The
projections are `transformers` `Conv1D`s, stored (in, out) like a Flax kernel.

Unlike GPT-2, a block is post-norm (`ln_1(x + attn(x))`, then `ln_2(n + mlp(n))`) and there is
no final LayerNorm. Attention masks as `transformers`' OpenAI GPT does: a causally hidden key
scores exactly -1e4 (not the dtype's minimum), a padding key the dtype's minimum. For every
real token that is the usual masked softmax; a query that sees only padding (left padding)
then attends evenly to the later real tokens, as in `transformers` — so the scores are built
here rather than in `P.AttentionCore`.

`transformers` has no KV cache for OpenAI GPT; this one has Rosetta's explicit cache (a pair of
stacked arrays (num_layers, batch, max_length, heads, head_dim), carried through the `P.Repeat`
scan as `(hidden, layer, cache)`), so generation runs incrementally.
"""
import math

import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import mlp as M
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token, update_layer_cache)
from core.models.openai.config import OpenAIGPTConfig

# What `transformers`' OpenAI GPT writes into causally hidden scores.
CAUSAL_MASK_VALUE = -1e4


class OpenAIGPTAttention(nn.Module):
    config: OpenAIGPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.c_attn = P.Dense(3 * c.n_embd, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)
        self.c_proj = P.Dense(c.n_embd, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)
        self.attn_dropout = P.Dropout(c.attn_pdrop)
        self.resid_dropout = P.Dropout(c.resid_pdrop)

    def __call__(self, hidden, causal, padding, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.n_head, c.head_dim)
        qkv = self.c_attn(hidden)
        q = jnp.reshape(qkv[..., :c.n_embd], heads_shape)
        k = jnp.reshape(qkv[..., c.n_embd:2 * c.n_embd], heads_shape)
        v = jnp.reshape(qkv[..., 2 * c.n_embd:], heads_shape)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(c.head_dim)
        scores = jnp.where(causal, scores, CAUSAL_MASK_VALUE)
        scores = jnp.where(padding, scores, P.mask_min(self.dtype))
        weights = jnp.asarray(jax.nn.softmax(jnp.asarray(scores, jnp.float32), axis=-1), self.dtype)
        probs = self.attn_dropout(weights, deterministic=deterministic)
        context = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
        out = self.c_proj(jnp.reshape(context, (batch, length, c.n_embd)))
        if not output_attentions:
            weights = None
        return self.resid_dropout(out, deterministic=deterministic), weights, cache


class OpenAIGPTBlock(nn.Module):
    """One post-norm block; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: OpenAIGPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attn = OpenAIGPTAttention(c, self.dtype, self.param_dtype)
        self.ln_1 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp = M.MLP(c.n_embd, 4 * c.n_embd, c.activation, True, c.resid_pdrop, c.initializer_range,
                         self.dtype, self.param_dtype)
        self.ln_2 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, carry, causal, padding, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.attn(hidden, causal, padding, layer, cache, cache_index, deterministic,
                                             output_attentions)
        normed = self.ln_1(hidden + attended)
        hidden = self.ln_2(normed + self.mlp(normed, deterministic=deterministic))
        return (hidden, layer + 1, cache), (hidden, weights)


class OpenAIGPTModule(nn.Module):
    """The bare decoder: token + position embeddings → post-norm blocks (no final norm).
    `transformers.OpenAIGPTModel`."""
    config: OpenAIGPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.tokens_embed = P.Embed(c.vocab_size, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.positions_embed = P.Embed(c.n_positions, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.drop = P.Dropout(c.embd_pdrop)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(OpenAIGPTBlock, c.n_layer, kwargs, remat=self.remat)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cache=None,
                 cache_index=0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        kv_length = length if cache is None else jnp.shape(cache[0])[2]
        if attention_mask is None:
            attention_mask = jnp.ones((batch, kv_length), jnp.int32)
        _, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        causal = A.causal_mask(length, kv_length, cache_index)
        padding = A.padding_mask(attention_mask)
        hidden = self.tokens_embed(input_ids) + self.positions_embed(position_ids)
        if token_type_ids is not None:
            hidden = hidden + self.tokens_embed(token_type_ids)
        hidden = self.drop(hidden, deterministic=deterministic)
        embedded = hidden
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), causal, padding, cache_index,
                                  deterministic, output_attentions)
        hidden, _, cache = carry
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class OpenAIGPTLMHeadModel(nn.Module):
    """The decoder and a vocabulary projection, tied to `tokens_embed` unless the config unties it."""
    config: OpenAIGPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = OpenAIGPTModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.n_embd, False, c.initializer_range, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cache=None,
                 cache_index=0, labels=None, logits_to_keep: int = 0, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, token_type_ids, position_ids, cache, cache_index,
                                deterministic, output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.transformer.tokens_embed.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class OpenAIGPTForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: OpenAIGPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = OpenAIGPTModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.n_embd, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cache=None,
                 cache_index=0, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, token_type_ids, position_ids, cache, cache_index,
                                deterministic, output_attentions, output_hidden_states)
        logits = pool_last_token(self.score(base.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                                        hidden_states=base.hidden_states,
                                                        attentions=base.attentions)
