"""OPT: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (decoder/embed_tokens, embed_positions, project_in,
project_out, layers, self_attn/{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2,
final_layer_norm, lm_head, score, qa_outputs), so the key map is a table of renames. Layers
run under `P.Repeat` with the scan carry `(hidden, layer, cache)` (see `core/layers/decoder.py`).

OPT specifics: learned positions with an offset of 2, counted over the attention mask
(`cumsum(mask) * mask - 1`, so left padding does not shift them; padding gets -1 + 2 = 1);
optional down/up projections around the decoder when `word_embed_proj_dim != hidden_size`
(OPT-350m); post-LayerNorm blocks when `do_layer_norm_before` is false (OPT-350m again), in
which case there is no final LayerNorm; LayerNorms without parameters when
`layer_norm_elementwise_affine` is false; queries scaled before the dot product.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token, update_layer_cache)
from core.models.opt.config import OPTConfig

POSITION_OFFSET = 2  # OPT's learned position table starts 2 rows in (fairseq's padding rows).


def opt_position_ids(input_ids, attention_mask, cache_index):
    """`transformers`' OPT positions: non-padding tokens counted from 0 along the mask, -1 for
    padding; with a cache, the mask covers every slot and the rows at `cache_index` are kept."""
    batch, length = jnp.shape(input_ids)
    positions = jnp.cumsum(attention_mask, axis=1) * attention_mask - 1
    index = jnp.broadcast_to(jnp.expand_dims(jnp.arange(length) + cache_index, 0), (batch, length))
    return jnp.take_along_axis(positions, index, axis=1)


def layer_norm(config: OPTConfig, features: int, dtype, param_dtype):
    affine = config.layer_norm_elementwise_affine
    return P.LayerNorm(features, 1e-5, use_bias=affine, use_scale=affine, dtype=dtype, param_dtype=param_dtype)


class OPTAttention(nn.Module):
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d, bias, std = c.hidden_size, c.enable_bias, c.init_std
        self.q_proj = P.Dense(d, d, bias, std, self.dtype, self.param_dtype)
        self.k_proj = P.Dense(d, d, bias, std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, bias, std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, bias, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        # As transformers: the projected queries are scaled, then the scores are not.
        q = jnp.reshape(self.q_proj(hidden) * (c.head_dim ** -0.5), heads_shape)
        k = jnp.reshape(self.k_proj(hidden), heads_shape)
        v = jnp.reshape(self.v_proj(hidden), heads_shape)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=1.0, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.out_proj(jnp.reshape(context, (batch, length, c.hidden_size)))
        return out, weights, cache


class OPTDecoderLayer(nn.Module):
    """One block, pre- or post-LayerNorm (`do_layer_norm_before`); the `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = OPTAttention(c, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = layer_norm(c, c.hidden_size, self.dtype, self.param_dtype)
        self.fc1 = P.Dense(c.ffn_dim, c.hidden_size, c.enable_bias, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.hidden_size, c.ffn_dim, c.enable_bias, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = layer_norm(c, c.hidden_size, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, carry, mask, cache_index, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        hidden, layer, cache = carry
        residual = hidden
        if c.do_layer_norm_before:
            hidden = self.self_attn_layer_norm(hidden)
        attended, weights, cache = self.self_attn(hidden, mask, layer, cache, cache_index, deterministic,
                                                  output_attentions)
        hidden = residual + self.dropout(attended, deterministic=deterministic)
        if not c.do_layer_norm_before:
            hidden = self.self_attn_layer_norm(hidden)
        residual = hidden
        if c.do_layer_norm_before:
            hidden = self.final_layer_norm(hidden)
        hidden = self.fc2(P.act(self.fc1(hidden), c.activation_function))
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        if not c.do_layer_norm_before:
            hidden = self.final_layer_norm(hidden)
        return (hidden, layer + 1, cache), (hidden, weights)


class OPTDecoder(nn.Module):
    """Embeddings (+ project_in) → layers → final LayerNorm (pre-norm only) (+ project_out)."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_tokens = P.Embed(c.vocab_size, c.proj_dim, c.init_std, self.dtype, self.param_dtype)
        self.embed_positions = P.Embed(c.max_position_embeddings + POSITION_OFFSET, c.hidden_size, c.init_std,
                                       self.dtype, self.param_dtype)
        if c.proj_dim != c.hidden_size:
            self.project_in = P.Dense(c.hidden_size, c.proj_dim, False, c.init_std, self.dtype, self.param_dtype)
            self.project_out = P.Dense(c.proj_dim, c.hidden_size, False, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(OPTDecoderLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        if c.has_final_layer_norm:
            self.final_layer_norm = layer_norm(c, c.hidden_size, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        if position_ids is None and attention_mask is not None:
            position_ids = opt_position_ids(input_ids, attention_mask, cache_index)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        hidden = self.embed_tokens(input_ids)
        if c.proj_dim != c.hidden_size:
            hidden = self.project_in(hidden)
        hidden = hidden + self.embed_positions(position_ids + POSITION_OFFSET)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, cache_index,
                                       deterministic, output_attentions)
        hidden, _, cache = carry
        if c.has_final_layer_norm:
            hidden = self.final_layer_norm(hidden)
        if c.proj_dim != c.hidden_size:
            hidden = self.project_out(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class OPTModule(nn.Module):
    """The bare decoder. `transformers.OPTModel` (which holds it as `decoder`)."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.decoder = OPTDecoder(self.config, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        return self.decoder(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                            output_attentions, output_hidden_states)


class OPTForCausalLM(nn.Module):
    """The decoder and a vocabulary projection (`lm_head`, or `embed_tokens` when tied)."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = OPTModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.lm_head = P.Dense(c.vocab_size, c.proj_dim, False, c.init_std, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                          output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.model.decoder.embed_tokens.attend(hidden)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class OPTForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = OPTModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.proj_dim, False, c.init_std, self.dtype, self.param_dtype)

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


class OPTForQuestionAnswering(nn.Module):
    """Start and end logits for every position (extractive QA)."""
    config: OPTConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = OPTModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.proj_dim, True, c.init_std, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, start_positions=None, end_positions=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.model(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                          output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)
