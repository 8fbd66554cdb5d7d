"""LLaMA: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embed_tokens, layers, self_attn/{q,k,v,o}_proj,
input_layernorm, post_attention_layernorm, norm, lm_head, score); the MLP is the shared
`GatedMLP` (gate/up/down ⇄ gate_proj/up_proj/down_proj in the key map). Layers run under
`P.Repeat` with the scan carry `(hidden, layer, cache)` (see `core/layers/decoder.py`).

Rotary embeddings use the rotate-half layout; the inverse frequencies follow
`transformers`' `modeling_rope_utils.py` for the rope types `default`, `linear`, `dynamic`,
`yarn` and `llama3` (see `core.layers.positions.rope_inv_freq`).
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
from core.models.llama.config import LlamaConfig


def rotary_embedding(config: LlamaConfig, position_ids):
    """cos and sin, (batch, length, head_dim/2) each, for the positions (batch, length)."""
    inv_freq, scaling = pos.rope_inv_freq(config.rope, config.attention_head_dim, config.max_position_embeddings,
                                      position_ids)
    return pos.rotary_cos_sin(position_ids, inv_freq, scaling)


# -- LLaMA -----------------------------------------------------------------------------------------

class LlamaAttention(nn.Module):
    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = c.attention_head_dim
        std = c.initializer_range
        self.q_proj = P.Dense(c.num_attention_heads * d, c.hidden_size, c.attention_bias, std, self.dtype,
                              self.param_dtype)
        self.k_proj = P.Dense(c.kv_heads * d, c.hidden_size, c.attention_bias, std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(c.kv_heads * d, c.hidden_size, c.attention_bias, std, self.dtype, self.param_dtype)
        self.o_proj = P.Dense(c.hidden_size, c.num_attention_heads * d, c.attention_bias, std, self.dtype,
                              self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, cos, sin, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        d = c.attention_head_dim
        batch, length, _ = jnp.shape(hidden)
        q = jnp.reshape(self.q_proj(hidden), (batch, length, c.num_attention_heads, d))
        k = jnp.reshape(self.k_proj(hidden), (batch, length, c.kv_heads, d))
        v = jnp.reshape(self.v_proj(hidden), (batch, length, c.kv_heads, d))
        q = pos.apply_rotary(q, cos, sin)
        k = pos.apply_rotary(k, cos, sin)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=d ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.o_proj(jnp.reshape(context, (batch, length, c.num_attention_heads * d)))
        return out, weights, cache


class LlamaDecoderLayer(nn.Module):
    """One pre-RMSNorm block; the `Repeat` body: ((hidden, layer, cache), ...) →
    ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = LlamaAttention(c, self.dtype, self.param_dtype)
        self.mlp = M.GatedMLP(c.hidden_size, c.intermediate_size, c.hidden_act, c.mlp_bias, c.initializer_range,
                              self.dtype, self.param_dtype)
        self.input_layernorm = P.RMSNorm(c.hidden_size, c.rms_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.post_attention_layernorm = P.RMSNorm(c.hidden_size, c.rms_norm_eps, dtype=self.dtype,
                                                  param_dtype=self.param_dtype)

    def __call__(self, carry, cos, sin, mask, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, layer, cache = carry
        attended, weights, cache = self.self_attn(self.input_layernorm(hidden), cos, sin, mask, layer, cache,
                                                  cache_index, deterministic, output_attentions)
        hidden = hidden + attended
        hidden = hidden + self.mlp(self.post_attention_layernorm(hidden))
        return (hidden, layer + 1, cache), (hidden, weights)


class LlamaModule(nn.Module):
    """The bare decoder: embeddings → layers → norm. `transformers.LlamaModel`."""
    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_tokens = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(LlamaDecoderLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        self.norm = P.RMSNorm(c.hidden_size, c.rms_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.kv_heads, c.attention_head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        hidden = self.embed_tokens(input_ids)
        cos, sin = rotary_embedding(self.config, position_ids)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), cos, sin, mask, cache_index,
                                       deterministic, output_attentions)
        hidden, _, cache = carry
        hidden = self.norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class LlamaForCausalLM(nn.Module):
    """The decoder and a vocabulary projection (`lm_head`, or `embed_tokens` when tied)."""
    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = LlamaModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                   self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.kv_heads, c.attention_head_dim, self.dtype)

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


class LlamaForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = LlamaModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.hidden_size, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                          output_attentions, output_hidden_states)
        logits = pool_last_token(self.score(base.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                                        hidden_states=base.hidden_states,
                                                        attentions=base.attentions)
