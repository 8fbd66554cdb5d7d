"""BioGPT: the decoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (biogpt, embed_tokens, embed_positions, layers/self_attn/
q_proj, fc1, fc2, self_attn_layer_norm, final_layer_norm, layer_norm, output_projection, score,
classifier), so the key map in `params.py` is a table of renames. The layers are XGLM's generic
pre-norm `FairseqDecoderLayer` (scores scaled after the product); BioGPT differs in its learned
position table, offset by 2, and its heads.
"""
import math

import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import prims as P
from core.layers.decoder import (causal_lm_loss, collect_hidden_states, decoder_inputs, init_cache, keep_last,
                                 pool_last_token)
from core.models.biogpt.config import BioGptConfig
from core.models.xglm.modeling import FairseqDecoderLayer

POSITION_OFFSET = 2


class BioGptModule(nn.Module):
    """The bare decoder: scaled token embeddings + learned positions → layers → layer_norm.
    `transformers.BioGptModel`."""
    config: BioGptConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_tokens = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.embed_positions = P.Embed(c.max_position_embeddings + POSITION_OFFSET, c.hidden_size,
                                       c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)
        kwargs = {"embed_dim": c.hidden_size, "num_heads": c.num_attention_heads, "ffn_dim": c.intermediate_size,
                  "activation": c.hidden_act, "dropout_rate": c.hidden_dropout_prob,
                  "attention_dropout_rate": c.attention_probs_dropout_prob,
                  "activation_dropout_rate": c.activation_dropout, "prescale_query": False,
                  "init_std": c.initializer_range, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(FairseqDecoderLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.hidden_size, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index)
        embed_scale = math.sqrt(c.hidden_size) if c.scale_embedding else 1.0
        hidden = self.embed_tokens(input_ids) * embed_scale + self.embed_positions(position_ids + POSITION_OFFSET)
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, cache_index, deterministic,
                                       output_attentions)
        hidden, _, cache = carry
        hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden,
                                               attentions=all_attentions)


class BioGptForCausalLM(nn.Module):
    """The decoder and a vocabulary projection (`output_projection`), tied to `embed_tokens`
    (unscaled) unless the config unties it."""
    config: BioGptConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.biogpt = BioGptModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.output_projection = P.Dense(c.vocab_size, c.hidden_size, False, c.initializer_range, self.dtype,
                                             self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int):
        c = self.config
        return init_cache(c.num_hidden_layers, batch_size, max_length, c.num_attention_heads, c.head_dim, self.dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.biogpt(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                           output_attentions, output_hidden_states)
        hidden = keep_last(base.last_hidden_state, logits_to_keep)
        if self.config.tie_word_embeddings:
            logits = self.biogpt.embed_tokens.attend(hidden)
        else:
            logits = self.output_projection(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return outputs.CausalLMOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                              hidden_states=base.hidden_states, attentions=base.attentions)


class BioGptForSequenceClassification(nn.Module):
    """Scores every position, then keeps the last non-pad token's (the row's summary)."""
    config: BioGptConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.biogpt = BioGptModule(c, self.dtype, self.param_dtype, self.remat)
        self.score = P.Dense(c.num_labels, c.hidden_size, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, cache=None, cache_index=0, labels=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.biogpt(input_ids, attention_mask, position_ids, cache, cache_index, deterministic,
                           output_attentions, output_hidden_states)
        logits = pool_last_token(self.score(base.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutputWithPast(loss=loss, logits=logits, cache=base.cache,
                                                        hidden_states=base.hidden_states,
                                                        attentions=base.attentions)


class BioGptForTokenClassification(nn.Module):
    """A label per token. As `transformers`, the loss skips positions the attention mask hides."""
    config: BioGptConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.biogpt = BioGptModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.biogpt(input_ids, attention_mask, position_ids, None, 0, deterministic, output_attentions,
                           output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            if attention_mask is not None:
                labels = jnp.where(attention_mask == 1, labels, -100)
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)
