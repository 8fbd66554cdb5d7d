"""GPT-Neo: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (wte, wpe, h, ln_1, attn, ln_2, mlp, ln_f, lm_head, score,
classifier, qa_outputs); `transformers` nests the projections one level deeper
(`attn.attention.{q,k,v,out}_proj`) and names the MLP `c_fc`/`c_proj` (the shared `MLP`'s
`up`/`down`): the key map renames both. Blocks run under `P.Repeat` with the scan carry
`(hidden, layer, cache)` (see `core/layers/decoder.py`).

GPT-Neo specifics: attention scores are NOT scaled by 1/sqrt(head_dim); layers alternate
global (causal) and local attention (causal, and at most `window_size` slots back) as
`attention_types` lists them, so each block picks its bias by its layer index. The bias
reproduces `transformers`' arithmetic exactly: the layer's causal/local mask puts the finite
minimum where it forbids, and the padding mask adds another minimum, so a key both forbid gets
-inf (a weight of exactly 0), one forbidden once keeps the minimum. That decides what rows with
no visible key (left padding) average over, which the hidden states of padded positions show.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import mlp as M
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, init_cache, keep_last, pool_last_token,
                                 update_layer_cache)
from core.models.gpt_neo.config import GPTNeoConfig


def attention_biases(config: GPTNeoConfig, input_ids, attention_mask, cache, cache_index, dtype):
    """Additive biases (batch, 1, q_len, kv_len) for global and for local layers, and the
    default position ids (`cache_index + arange(length)`), as `transformers` builds them."""
    batch, length = jnp.shape(input_ids)
    kv_length = length if cache is None else jnp.shape(cache[0])[2]
    if attention_mask is None:
        attention_mask = jnp.ones((batch, kv_length), jnp.int32)
    chex.assert_shape(attention_mask, (batch, kv_length))
    causal = A.causal_mask(length, kv_length, cache_index)
    allowed = jnp.logical_and(causal, A.padding_mask(attention_mask))
    minimum = P.mask_min(dtype)
    padding = jnp.where(allowed, 0.0, minimum)
    global_bias = jnp.asarray(jnp.where(causal, 0.0, minimum) + padding, dtype)
    local = A.sliding_window_mask(length, kv_length, config.window_size, cache_index)
    local_bias = jnp.asarray(jnp.where(local, 0.0, minimum) + padding, dtype)
    return global_bias, local_bias


class GPTNeoSelfAttention(nn.Module):
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d, std = c.hidden_size, c.initializer_range
        self.q_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
        self.k_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, True, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)
        self.resid_dropout = P.Dropout(c.resid_dropout)

    def __call__(self, hidden, bias, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_heads, c.head_dim)
        q = jnp.reshape(self.q_proj(hidden), heads_shape)
        k = jnp.reshape(self.k_proj(hidden), heads_shape)
        v = jnp.reshape(self.v_proj(hidden), heads_shape)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        # GPT-Neo does not scale the scores.
        context, weights = self.core(q, k, v, bias=bias, scale=1.0, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.out_proj(jnp.reshape(context, (batch, length, c.hidden_size)))
        return self.resid_dropout(out, deterministic=deterministic), weights, cache


class GPTNeoBlock(nn.Module):
    """One pre-norm block, global or local by `local_layers[layer]`; the `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.ln_1 = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attn = GPTNeoSelfAttention(c, self.dtype, self.param_dtype)
        self.ln_2 = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp = M.MLP(c.hidden_size, c.inner_dim, c.activation_function, True, c.resid_dropout,
                         c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, carry, global_bias, local_bias, local_layers, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, layer, cache = carry
        bias = jnp.where(local_layers[layer], local_bias, global_bias)
        attended, weights, cache = self.attn(self.ln_1(hidden), bias, layer, cache, cache_index, deterministic,
                                             output_attentions)
        hidden = hidden + attended
        hidden = hidden + self.mlp(self.ln_2(hidden), deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class GPTNeoModule(nn.Module):
    """The bare decoder: token + position embeddings → blocks → ln_f. `transformers.GPTNeoModel`."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.wte = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.wpe = P.Embed(c.max_position_embeddings, c.hidden_size, c.initializer_range, self.dtype,
                           self.param_dtype)
        self.drop = P.Dropout(c.embed_dropout)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(GPTNeoBlock, c.num_layers, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.hidden_size, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_layers, batch_size, max_length, c.num_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        global_bias, local_bias = attention_biases(c, input_ids, attention_mask, cache, cache_index, self.dtype)
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.expand_dims(jnp.arange(length) + cache_index, 0), (batch, length))
        hidden = self.drop(self.wte(input_ids) + self.wpe(position_ids), deterministic=deterministic)
        embedded = hidden
        local_layers = jnp.asarray(c.local_layers)
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), global_bias, local_bias,
                                  local_layers, cache_index, deterministic, output_attentions)
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


class GPTNeoForCausalLM(nn.Module):
    """The decoder and a vocabulary projection, tied to `wte` unless the config unties it."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTNeoModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                   self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_layers, batch_size, max_length, c.num_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                                output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.transformer.wte.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class GPTNeoForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTNeoModule(c, self.dtype, self.param_dtype, self.remat)
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


class GPTNeoForTokenClassification(nn.Module):
    """A label per position, after `classifier_dropout`."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTNeoModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout)
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


class GPTNeoForQuestionAnswering(nn.Module):
    """Start and end logits for every position (extractive QA)."""
    config: GPTNeoConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTNeoModule(c, self.dtype, self.param_dtype, self.remat)
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
