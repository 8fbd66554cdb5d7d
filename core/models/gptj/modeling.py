"""GPT-J (and CodeGen): the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (wte, h, ln_1, attn/{q,k,v,out}_proj — CodeGen:
attn/qkv_proj —, mlp, ln_f, lm_head, score, qa_outputs); the MLP is the shared `MLP` (`up`/`down`
⇄ `fc_in`/`fc_out` in the key map). Blocks run under `P.Repeat` with the scan carry
`(hidden, layer, cache)` (see `core/layers/decoder.py`).

GPT-J specifics: rotary embeddings in the interleaved layout (pairs of adjacent channels) over
the first `rotary_dim` channels of each head, the rest pass through; one LayerNorm per block
feeding attention and MLP in parallel (`h + attn(ln(h)) + mlp(ln(h))`); an LM head with a bias
(kept when the weight is tied to `wte`).

CodeGen: the same blocks with one fused projection. `transformers` lays its output out in 4
groups of (q, v, k); the key map un-permutes it on load (`core.models.codegen.params`), so
`qkv_proj` here yields plain [q | k | v], each head-major like GPT-J's projections.
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
from core.models.gptj.config import GPTJConfig


def rotary_embedding(config: GPTJConfig, position_ids):
    """cos and sin, (batch, length, rotary_dim/2) each, for the positions (batch, length)."""
    inv_freq = pos.rotary_inv_freq(config.head_dim, 10000.0, config.rotary_dim)
    return pos.rotary_cos_sin(position_ids, inv_freq)


class GPTJAttention(nn.Module):
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d, std = c.n_embd, c.initializer_range
        if c.fused_qkv:
            self.qkv_proj = P.Dense(3 * d, d, False, std, self.dtype, self.param_dtype)
        else:
            self.q_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
            self.k_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
            self.v_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, False, std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attn_pdrop, self.dtype)
        self.resid_dropout = P.Dropout(c.resid_pdrop)

    def __call__(self, hidden, cos, sin, mask, layer, cache, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.n_head, c.head_dim)
        if c.fused_qkv:
            qkv = self.qkv_proj(hidden)
            q = qkv[..., :c.n_embd]
            k = qkv[..., c.n_embd:2 * c.n_embd]
            v = qkv[..., 2 * c.n_embd:]
        else:
            q = self.q_proj(hidden)
            k = self.k_proj(hidden)
            v = self.v_proj(hidden)
        q = pos.apply_rotary(jnp.reshape(q, heads_shape), cos, sin, interleaved=True)
        k = pos.apply_rotary(jnp.reshape(k, heads_shape), cos, sin, interleaved=True)
        v = jnp.reshape(v, heads_shape)
        if cache is not None:
            cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=c.head_dim ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.out_proj(jnp.reshape(context, (batch, length, c.n_embd)))
        return self.resid_dropout(out, deterministic=deterministic), weights, cache


class GPTJBlock(nn.Module):
    """One block, attention and MLP in parallel off one LayerNorm; the `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, attentions))."""
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.ln_1 = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attn = GPTJAttention(c, self.dtype, self.param_dtype)
        self.mlp = M.MLP(c.n_embd, c.inner_dim, c.activation_function, True, c.resid_pdrop, c.initializer_range,
                         self.dtype, self.param_dtype)

    def __call__(self, carry, cos, sin, mask, cache_index, deterministic: bool = True,
                 output_attentions: bool = False):
        hidden, layer, cache = carry
        normed = self.ln_1(hidden)
        attended, weights, cache = self.attn(normed, cos, sin, mask, layer, cache, cache_index, deterministic,
                                             output_attentions)
        hidden = attended + self.mlp(normed, deterministic=deterministic) + hidden
        return (hidden, layer + 1, cache), (hidden, weights)


class GPTJModule(nn.Module):
    """The bare decoder: token embeddings → blocks → ln_f. `transformers.GPTJModel` /
    `CodeGenModel`."""
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.wte = P.Embed(c.vocab_size, c.n_embd, c.initializer_range, self.dtype, self.param_dtype)
        self.drop = P.Dropout(c.embd_pdrop)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.h = P.Repeat(GPTJBlock, c.n_layer, kwargs, remat=self.remat)
        self.ln_f = P.LayerNorm(c.n_embd, c.layer_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.n_layer, batch_size, max_length, c.n_head, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        hidden = self.drop(self.wte(input_ids), deterministic=deterministic)
        cos, sin = rotary_embedding(self.config, position_ids)
        embedded = hidden
        carry, per_layer = self.h((hidden, jnp.asarray(0, jnp.int32), cache), cos, sin, mask, cache_index,
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


class GPTJForCausalLM(nn.Module):
    """The decoder and a vocabulary projection with a bias; its weight is `wte` when tied."""
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTJModule(c, self.dtype, self.param_dtype, self.remat)
        if c.tie_word_embeddings:
            self.lm_head_bias = self.param("lm_head_bias", P.zeros_init(), (c.vocab_size,), self.param_dtype)
        else:
            self.lm_head = P.Dense(c.vocab_size, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)

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
            logits = self.transformer.wte.attend(hidden) + jnp.asarray(self.lm_head_bias, self.dtype)
        else:
            logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class GPTJForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTJModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.n_embd, False, c.initializer_range, self.dtype, self.param_dtype)

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


class GPTJForQuestionAnswering(nn.Module):
    """Start and end logits for every position (extractive QA)."""
    config: GPTJConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.transformer = GPTJModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.n_embd, True, c.initializer_range, self.dtype, self.param_dtype)

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
