"""GPTBigCode (SantaCoder/StarCoder): the decoder and its task heads, in the portable Flax subset.

GPT-2's architecture with torch `Linear` projections and multi-query attention. Submodule
names follow `transformers` (wte, wpe, h, ln_1, attn/c_attn, attn/c_proj, ln_2, mlp, ln_f,
lm_head, score, classifier); the MLP is the shared `MLP` (up/down ⇄ c_fc/c_proj in the key map).
The fused `c_attn` holds, with multi_query, all query heads then one key and one value head
([q (n_embd) | k (head_dim) | v (head_dim)]); without, per head [q | k | v]. Keys and values
stay at `kv_heads` heads (the cache too); `AttentionCore` shares them among the query heads.
Blocks run under `P.Repeat` with the scan carry `(hidden, layer, cache)`.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import mlp as M
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token, update_layer_cache)
from core.models.gpt_bigcode.config import GPTBigCodeConfig


# -- GPTBigCode ------------------------------------------------------------------------------------

class GPTBigCodeAttention(nn.Module):
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        std = c.initializer_range
        self.c_attn = P.Dense(c.n_embd + 2 * c.kv_heads * c.head_dim, c.n_embd, True, std, self.dtype,
                              self.param_dtype)
        self.c_proj = P.Dense(c.n_embd, c.n_embd, True, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attn_pdrop, self.dtype)
        self.resid_dropout = P.Dropout(c.resid_pdrop)

    def __call__(self, hidden, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        d = c.head_dim
        batch, length, _ = jnp.shape(hidden)
        fused = self.c_attn(hidden)
        if c.multi_query:
            q = jnp.reshape(fused[..., :c.n_embd], (batch, length, c.n_head, d))
            k = jnp.reshape(fused[..., c.n_embd:c.n_embd + d], (batch, length, 1, d))
            v = jnp.reshape(fused[..., c.n_embd + d:], (batch, length, 1, d))
        else:
            qkv = jnp.reshape(fused, (batch, length, c.n_head, 3 * d))
            q = qkv[..., :d]
            k = qkv[..., d:2 * d]
            v = qkv[..., 2 * d:]
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        scale = d ** -0.5 if c.scale_attn_weights else 1.0
        context, weights = self.core(q, k, v, mask=mask, scale=scale, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.c_proj(jnp.reshape(context, (batch, length, c.n_embd)))
        return self.resid_dropout(out, deterministic=deterministic), weights, cache


class GPTBigCodeBlock(nn.Module):
    """One pre-norm block; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.ln_1 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attn = GPTBigCodeAttention(c, self.dtype, self.param_dtype)
        self.ln_2 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp = M.MLP(c.n_embd, c.inner_dim, c.activation_function, True, c.resid_pdrop, c.initializer_range,
                         self.dtype, self.param_dtype)

    def __call__(self, carry, mask, cache_index, deterministic: bool = True, output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.attn(self.ln_1(hidden), mask, layer, cache, cache_index, deterministic,
                                             output_attentions)
        hidden = attended + hidden
        hidden = hidden + self.mlp(self.ln_2(hidden), deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class GPTBigCodeModule(nn.Module):
    """The bare decoder: token + position embeddings → blocks → ln_f. `transformers.GPTBigCodeModel`."""
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.wte = P.Embed(c.vocab_size, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.wpe = P.Embed(c.n_positions, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.drop = P.Dropout(c.embd_pdrop)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(GPTBigCodeBlock, c.n_layer, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.kv_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cache=None,
                 cache_index=0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        hidden = self.wte(input_ids) + self.wpe(position_ids)
        if token_type_ids is not None:
            hidden = hidden + self.wte(token_type_ids)
        hidden = self.drop(hidden, deterministic=deterministic)
        embedded = hidden
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), mask, cache_index, deterministic,
                                  output_attentions)
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


class GPTBigCodeForCausalLM(nn.Module):
    """The decoder and a vocabulary projection, tied to `wte` unless the config unties it."""
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTBigCodeModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.n_embd, False, c.initializer_range, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.kv_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cache=None,
                 cache_index=0, labels=None, logits_to_keep: int = 0, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, token_type_ids, position_ids, cache, cache_index,
                                deterministic, output_attentions, output_hidden_states)
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


class GPTBigCodeForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTBigCodeModule(c, self.dtype, self.param_dtype, self.remat)
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


class GPTBigCodeForTokenClassification(nn.Module):
    """A label per token: dropout (see `classifier_dropout_rate`) and a linear classifier."""
    config: GPTBigCodeConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTBigCodeModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.transformer(input_ids, attention_mask, token_type_ids, position_ids, None, 0, deterministic,
                                output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)
