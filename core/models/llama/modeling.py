"""LLaMA: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embed_tokens, layers, self_attn/{q,k,v,o}_proj,
input_layernorm, post_attention_layernorm, norm, lm_head, score); the MLP is the shared
`GatedMLP` (gate/up/down ⇄ gate_proj/up_proj/down_proj in the key map). Layers run under
`P.Repeat` with the scan carry `(hidden, layer, cache)` (see `core/models/gpt2/modeling.py`,
whose decoder building blocks this file reuses).

Rotary embeddings use the rotate-half layout; the inverse frequencies follow
`transformers`' `modeling_rope_utils.py` for the rope types `default`, `linear`, `dynamic`,
`yarn` and `llama3` (see `rope_inv_freq`).
"""
import math

import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import mlp as M
from core.layers import positions as pos
from core.layers import prims as P
from core.models.gpt2.modeling import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache,
                                       keep_last, pool_last_token, update_layer_cache)
from core.models.llama.config import LlamaConfig


# -- rotary frequencies (rope scaling types of transformers' modeling_rope_utils.py) --------------

def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq(rope, head_dim: int, max_position_embeddings: int, position_ids):
    """(inverse frequencies (head_dim/2,), attention scaling of cos/sin) for the rope settings
    `rope` (LlamaConfig.rope). `dynamic` depends on the longest position in `position_ids`:
    past max_position_embeddings the base grows (NTK), as `transformers` recomputes it."""
    rope_type = rope["rope_type"]
    base = rope["rope_theta"]
    dim = head_dim
    exponents = jnp.arange(0, dim, 2, dtype=jnp.float32) / dim
    if rope_type == "default":
        return pos.rotary_inv_freq(dim, base), 1.0
    factor = rope["factor"]
    if rope_type == "linear":
        return pos.rotary_inv_freq(dim, base) / factor, 1.0
    if rope_type == "dynamic":
        # At or below max_position_embeddings `transformers` keeps the frequencies computed at
        # init (in Python floats); beyond, it recomputes them from the current length in float32.
        initial_base = base * ((factor * max_position_embeddings / max_position_embeddings) - (factor - 1)) ** (
            dim / (dim - 2))
        initial = 1.0 / jnp.power(initial_base, exponents)
        seq_len = jnp.asarray(jnp.max(position_ids) + 1, jnp.float32)
        grown_base = base * jnp.power(factor * seq_len / max_position_embeddings - (factor - 1), dim / (dim - 2))
        grown = 1.0 / jnp.power(grown_base, exponents)
        return jnp.where(seq_len > max_position_embeddings, grown, initial), 1.0
    if rope_type == "yarn":
        original = rope["original_max_position_embeddings"]
        attention_factor = rope.get("attention_factor")
        mscale = rope.get("mscale")
        mscale_all_dim = rope.get("mscale_all_dim")
        if attention_factor is None:
            if mscale and mscale_all_dim:
                attention_factor = float(_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim))
            else:
                attention_factor = _yarn_mscale(factor)
        beta_fast = rope.get("beta_fast") or 32
        beta_slow = rope.get("beta_slow") or 1

        def correction_dim(rotations):
            return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

        low = correction_dim(beta_fast)
        high = correction_dim(beta_slow)
        if rope.get("truncate", True):
            low = math.floor(low)
            high = math.ceil(high)
        low = max(low, 0)
        high = min(high, dim - 1)
        if low == high:
            high += 0.001  # as transformers: no division by zero in the ramp
        pos_freqs = jnp.power(base, exponents)
        inv_extrapolation = 1.0 / pos_freqs
        inv_interpolation = 1.0 / (factor * pos_freqs)
        ramp = jnp.clip((jnp.arange(dim // 2, dtype=jnp.float32) - low) / (high - low), 0.0, 1.0)
        extrapolation_factor = 1.0 - ramp
        inv = inv_interpolation * (1.0 - extrapolation_factor) + inv_extrapolation * extrapolation_factor
        return inv, attention_factor
    if rope_type == "llama3":
        inv = pos.rotary_inv_freq(dim, base)
        low_freq_factor = rope["low_freq_factor"]
        high_freq_factor = rope["high_freq_factor"]
        old_context = rope["original_max_position_embeddings"]
        low_freq_wavelen = old_context / low_freq_factor
        high_freq_wavelen = old_context / high_freq_factor
        wavelen = 2 * math.pi / inv
        inv_llama = jnp.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
        is_medium = jnp.logical_and(jnp.logical_not(wavelen < high_freq_wavelen),
                                    jnp.logical_not(wavelen > low_freq_wavelen))
        return jnp.where(is_medium, smoothed, inv_llama), 1.0
    raise ValueError(f"rope_type {rope_type!r} is not supported")


def rotary_embedding(config: LlamaConfig, position_ids):
    """cos and sin, (batch, length, head_dim/2) each, for the positions (batch, length)."""
    inv_freq, scaling = rope_inv_freq(config.rope, config.attention_head_dim, config.max_position_embeddings,
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
