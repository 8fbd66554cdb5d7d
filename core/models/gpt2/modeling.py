"""GPT-2: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (wte, wpe, h, ln_1, attn/c_attn, mlp/c_fc, ln_f, lm_head,
score), so the key map in `params.py` is a table of renames. `transformers` writes GPT-2's
projections as `Conv1D`, whose weight is already stored (in, out) like a Flax kernel.

The blocks run under `P.Repeat` (lax.scan with stacked params). The scan carry is
`(hidden, layer, cache)`: `layer` is the index of the running block (GPT-2's
`scale_attn_by_inverse_layer_idx` needs it, and each block writes its own rows of the cache),
and `cache` is the explicit KV cache, a pair of stacked arrays
(num_layers, batch, max_length, kv_heads, head_dim) passed in and returned by every call.
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
from core.models.gpt2.config import GPT2Config


# -- GPT-2 -----------------------------------------------------------------------------------------

class GPT2Attention(nn.Module):
    config: GPT2Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.c_attn = P.Dense(3 * c.n_embd, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)
        self.c_proj = P.Dense(c.n_embd, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attn_pdrop, self.dtype)
        self.resid_dropout = P.Dropout(c.resid_pdrop)

    def __call__(self, hidden, mask, layer, cache, cache_index, deterministic: bool = True,
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
        scale = c.head_dim ** -0.5 if c.scale_attn_weights else 1.0
        if c.scale_attn_by_inverse_layer_idx:
            scale = scale / jnp.asarray(layer + 1, jnp.float32)
        context, weights = self.core(q, k, v, mask=mask, scale=scale, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.c_proj(jnp.reshape(context, (batch, length, c.n_embd)))
        return self.resid_dropout(out, deterministic=deterministic), weights, cache


class GPT2Block(nn.Module):
    """One pre-norm block; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: GPT2Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.ln_1 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attn = GPT2Attention(c, self.dtype, self.param_dtype)
        self.ln_2 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp = M.MLP(c.n_embd, c.inner_dim, c.activation_function, True, c.resid_pdrop, c.initializer_range,
                         self.dtype, self.param_dtype)

    def __call__(self, carry, mask, cache_index, deterministic: bool = True, output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.attn(self.ln_1(hidden), mask, layer, cache, cache_index, deterministic,
                                             output_attentions)
        hidden = hidden + attended
        hidden = hidden + self.mlp(self.ln_2(hidden), deterministic=deterministic)
        return (hidden, layer + 1, cache), (hidden, weights)


class GPT2Module(nn.Module):
    """The bare decoder: token + position embeddings → blocks → ln_f. `transformers.GPT2Model`."""
    config: GPT2Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.wte = P.Embed(c.vocab_size, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.wpe = P.Embed(c.n_positions, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.drop = P.Dropout(c.embd_pdrop)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(GPT2Block, c.n_layer, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

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


class GPT2LMHeadModel(nn.Module):
    """The decoder and a vocabulary projection, tied to `wte` unless the config unties it."""
    config: GPT2Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPT2Module(c, self.dtype, self.param_dtype, self.remat)
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
            logits = self.transformer.wte.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class GPT2ForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: GPT2Config
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPT2Module(c, self.dtype, self.param_dtype, self.remat)
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
