"""Whisper (speech encoder-decoder), in the portable Flax subset.

Encoder: log-mel features (batch, num_mel_bins, 2 * max_source_positions), channels-first as
`transformers` takes them → two Conv1d (kernel 3, padding 1; the second stride 2) with exact
GELU → + `embed_positions` (a sinusoidal table stored as a weight) → pre-LN layers → final
`layer_norm`. Decoder: BART-like pre-LN layers (token + learned positions counted from the
cache index, causal self-attention, cross-attention), final `layer_norm`; the LM head
`proj_out` is tied to `embed_tokens` (or its own weight when untied). Projections have biases
except `k_proj`; queries are scaled before the product, as `transformers` does.

Encoder-decoder interface (see `core/models/bart/modeling.py`), with `input_features` as the
encoder input: `__call__(input_features, attention_mask=None, decoder_input_ids=None, ...)`,
`encode(input_features, attention_mask=None, ...)` (Whisper attends to every frame:
`attention_mask` is accepted and ignored, as in `transformers`), `decode(...)`,
`init_cache(batch_size, max_length, encoder_length)`.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import heads as H
from core.layers import prims as P
from core.layers.decoder import collect_hidden_states, decoder_inputs, keep_last, update_layer_cache
from core.models.bart.modeling import make_cache, shift_tokens_right
from core.models.whisper.config import WhisperConfig


class WhisperAttention(nn.Module):
    """Multi-head attention (k_proj without bias). Self-attention when `kv_states` is the query
    input, cross-attention when it is the encoder output; with a cache, `read_cache` takes this
    layer's keys/values from it, otherwise the new ones are written at `cache_index`."""
    config: WhisperConfig
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = c.d_model
        self.k_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.q_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, True, c.init_std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, kv_states, mask, layer, cache, cache_index, read_cache: bool = False,
                 deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        head_dim = c.d_model // self.num_heads
        batch, length, _ = jnp.shape(hidden)
        q = jnp.reshape(self.q_proj(hidden) * (head_dim ** -0.5), (batch, length, self.num_heads, head_dim))
        if read_cache:
            k = cache[0][layer]
            v = cache[1][layer]
        else:
            kv_length = jnp.shape(kv_states)[1]
            k = jnp.reshape(self.k_proj(kv_states), (batch, kv_length, self.num_heads, head_dim))
            v = jnp.reshape(self.v_proj(kv_states), (batch, kv_length, self.num_heads, head_dim))
            if cache is not None:
                cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=1.0, deterministic=deterministic,
                                     return_weights=output_attentions)
        out = self.out_proj(jnp.reshape(context, (batch, length, c.d_model)))
        return out, weights, cache


class WhisperEncoderLayer(nn.Module):
    """Pre-LN block: self-attention, MLP. The `Repeat` body."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = WhisperAttention(c, c.encoder_attention_heads, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.encoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.encoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        residual = hidden
        normed = self.self_attn_layer_norm(hidden)
        hidden, weights, _ = self.self_attn(normed, normed, None, None, None, 0, False, deterministic,
                                            output_attentions)
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        residual = hidden
        hidden = self.activation_dropout(P.act(self.fc1(self.final_layer_norm(hidden)), c.activation_function),
                                         deterministic=deterministic)
        hidden = residual + self.dropout(self.fc2(hidden), deterministic=deterministic)
        return hidden, (hidden, weights)


class WhisperDecoderLayer(nn.Module):
    """Pre-LN block: causal self-attention (cached), cross-attention, MLP. The `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, self weights, cross weights))."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = WhisperAttention(c, c.decoder_attention_heads, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder_attn = WhisperAttention(c, c.decoder_attention_heads, self.dtype, self.param_dtype)
        self.encoder_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.decoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.decoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def __call__(self, carry, mask, encoder_hidden_states, cache_index, fill_cross_cache: bool = True,
                 deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        hidden, layer, cache = carry
        self_cache = None
        cross_cache = None
        if cache is not None:
            self_cache = (cache[0], cache[1])
            cross_cache = (cache[2], cache[3])
        residual = hidden
        normed = self.self_attn_layer_norm(hidden)
        hidden, weights, self_cache = self.self_attn(normed, normed, mask, layer, self_cache, cache_index, False,
                                                     deterministic, output_attentions)
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        residual = hidden
        read_cache = cache is not None and not fill_cross_cache
        hidden, cross_weights, cross_cache = self.encoder_attn(self.encoder_attn_layer_norm(hidden),
                                                               encoder_hidden_states, None, layer, cross_cache, 0,
                                                               read_cache, deterministic, output_attentions)
        hidden = residual + self.dropout(hidden, deterministic=deterministic)
        residual = hidden
        hidden = self.activation_dropout(P.act(self.fc1(self.final_layer_norm(hidden)), c.activation_function),
                                         deterministic=deterministic)
        hidden = residual + self.dropout(self.fc2(hidden), deterministic=deterministic)
        if cache is not None:
            cache = (self_cache[0], self_cache[1], cross_cache[0], cross_cache[1])
        return (hidden, layer + 1, cache), (hidden, weights, cross_weights)


class WhisperEncoder(nn.Module):
    """conv1 → GELU → conv2 (stride 2) → GELU → + embed_positions → layers → layer_norm."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.conv1 = P.Conv(c.d_model, c.num_mel_bins, 3, 1, 1, init_std=c.init_std, dtype=self.dtype,
                            param_dtype=self.param_dtype)
        self.conv2 = P.Conv(c.d_model, c.d_model, 3, 2, 1, init_std=c.init_std, dtype=self.dtype,
                            param_dtype=self.param_dtype)
        self.embed_positions = P.Embed(c.max_source_positions, c.d_model, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(WhisperEncoderLayer, c.encoder_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_features, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_features, 3)
        batch = jnp.shape(input_features)[0]
        chex.assert_shape(input_features, (batch, c.num_mel_bins, c.num_frames))
        features = jnp.transpose(jnp.asarray(input_features, self.dtype), (0, 2, 1))
        hidden = P.act(self.conv1(features), "gelu")
        hidden = P.act(self.conv2(hidden), "gelu")
        hidden = hidden + self.embed_positions(jnp.arange(c.max_source_positions))
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        hidden, per_layer = self.layers(hidden, deterministic, output_attentions)
        hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


class WhisperDecoder(nn.Module):
    """Token + learned position embeddings (positions from the cache index) → layers → layer_norm."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_tokens = P.Embed(c.vocab_size, c.d_model, c.init_std, self.dtype, self.param_dtype)
        self.embed_positions = P.Embed(c.max_target_positions, c.d_model, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(WhisperDecoderLayer, c.decoder_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, attention_mask, encoder_hidden_states, cache, cache_index, fill_cross_cache: bool,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        mask, position_ids = decoder_inputs(input_ids, attention_mask, None, cache, cache_index)
        hidden = self.embed_tokens(input_ids) + self.embed_positions(position_ids)
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, encoder_hidden_states,
                                       cache_index, fill_cross_cache, deterministic, output_attentions)
        hidden, _, cache = carry
        hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        all_cross = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
            all_cross = tuple(jnp.unstack(per_layer[2], axis=0))
        return outputs.BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden, cache=cache, hidden_states=all_hidden, attentions=all_attentions,
            cross_attentions=all_cross)


class WhisperModule(nn.Module):
    """The bare encoder-decoder: `transformers.WhisperModel`."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.encoder = WhisperEncoder(self.config, self.dtype, self.param_dtype, self.remat)
        self.decoder = WhisperDecoder(self.config, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_features, attention_mask=None, deterministic: bool = True,
               output_attentions: bool = False, output_hidden_states: bool = False):
        return self.encoder(input_features, deterministic, output_attentions, output_hidden_states)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        out = self.decoder(decoder_input_ids, decoder_attention_mask, encoder_hidden_states, cache, cache_index,
                           fill_cross_cache, deterministic, output_attentions, output_hidden_states)
        return outputs.Seq2SeqModelOutput(last_hidden_state=keep_last(out.last_hidden_state, logits_to_keep),
                                          cache=out.cache, decoder_hidden_states=out.hidden_states,
                                          decoder_attentions=out.attentions, cross_attentions=out.cross_attentions)

    def __call__(self, input_features, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("WhisperModel needs decoder_input_ids (or labels to shift into them)")
            decoder_input_ids = shift_tokens_right(labels, c.pad_token_id, c.decoder_start_token_id)
        encoded = None
        if encoder_hidden_states is None:
            encoded = self.encode(input_features, attention_mask, deterministic, output_attentions,
                                  output_hidden_states)
            encoder_hidden_states = encoded.last_hidden_state
        out = self.decode(decoder_input_ids, encoder_hidden_states, None, decoder_attention_mask, cache, cache_index,
                          fill_cross_cache, logits_to_keep, deterministic, output_attentions, output_hidden_states)
        return outputs.Seq2SeqModelOutput(
            last_hidden_state=out.last_hidden_state, cache=out.cache, decoder_hidden_states=out.decoder_hidden_states,
            decoder_attentions=out.decoder_attentions, cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=None if encoded is None else encoded.hidden_states,
            encoder_attentions=None if encoded is None else encoded.attentions)


class WhisperForConditionalGeneration(nn.Module):
    """The encoder-decoder and the vocabulary projection `proj_out` (tied: `embed_tokens`)."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.model = WhisperModule(c, self.dtype, self.param_dtype, self.remat)
        if not c.tie_word_embeddings:
            self.proj_out = P.Dense(c.vocab_size, c.d_model, False, c.init_std, self.dtype, self.param_dtype)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_features, attention_mask=None, deterministic: bool = True,
               output_attentions: bool = False, output_hidden_states: bool = False):
        return self.model.encode(input_features, attention_mask, deterministic, output_attentions,
                                 output_hidden_states)

    def lm_logits(self, hidden):
        if self.config.tie_word_embeddings:
            return self.model.decoder.embed_tokens.attend(hidden)
        return self.proj_out(hidden)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        out = self.model.decode(decoder_input_ids, encoder_hidden_states, encoder_attention_mask,
                                decoder_attention_mask, cache, cache_index, fill_cross_cache, logits_to_keep,
                                deterministic, output_attentions, output_hidden_states)
        return outputs.Seq2SeqLMOutput(logits=self.lm_logits(out.last_hidden_state), cache=out.cache,
                                       decoder_hidden_states=out.decoder_hidden_states,
                                       decoder_attentions=out.decoder_attentions,
                                       cross_attentions=out.cross_attentions)

    def __call__(self, input_features, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.model(input_features, attention_mask, decoder_input_ids, decoder_attention_mask,
                          encoder_hidden_states, cache, cache_index, fill_cross_cache, labels, logits_to_keep,
                          deterministic, output_attentions, output_hidden_states)
        logits = self.lm_logits(base.last_hidden_state)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.Seq2SeqLMOutput(
            loss=loss, logits=logits, cache=base.cache, decoder_hidden_states=base.decoder_hidden_states,
            decoder_attentions=base.decoder_attentions, cross_attentions=base.cross_attentions,
            encoder_last_hidden_state=base.encoder_last_hidden_state, encoder_hidden_states=base.encoder_hidden_states,
            encoder_attentions=base.encoder_attentions)


class WhisperForAudioClassification(nn.Module):
    """The encoder (last hidden state, or a softmax-weighted sum of every hidden state with
    `use_weighted_layer_sum`) → projector → mean over frames → classifier."""
    config: WhisperConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.encoder = WhisperEncoder(c, self.dtype, self.param_dtype, self.remat)
        if c.use_weighted_layer_sum:
            self.layer_weights = self.param("layer_weights", P.zeros_init(), (c.encoder_layers + 1,),
                                            self.param_dtype)
        self.projector = P.Dense(c.classifier_proj_size, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.classifier = P.Dense(c.num_labels, c.classifier_proj_size, True, c.init_std, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_features, attention_mask=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        encoded = self.encoder(input_features, deterministic, output_attentions,
                               output_hidden_states or c.use_weighted_layer_sum)
        if c.use_weighted_layer_sum:
            hidden = H.weighted_layer_sum(encoded.hidden_states, self.layer_weights, self.dtype)
        else:
            hidden = encoded.last_hidden_state
        pooled = jnp.mean(self.projector(hidden), axis=1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states if output_hidden_states else None,
            attentions=encoded.attentions)
