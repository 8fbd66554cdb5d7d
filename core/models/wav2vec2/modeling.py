"""Wav2Vec2, HuBERT and WavLM: a 1-D convolutional feature encoder over raw audio, a feature
projection, a convolutional relative position embedding, a Transformer encoder (post-norm, or
pre-norm with a final LayerNorm: `do_stable_layer_norm`), and the CTC, sequence-classification,
audio-frame-classification and x-vector (TDNN + statistics pooling + AMSoftmax) heads, in the
portable Flax subset.

WavLM adds a gated relative position bias: bidirectional T5-style buckets of (key - query)
offsets look up a (heads,) vector in a table that transformers keeps in the first layer's
attention (`encoder.layers.0.attention.rel_attn_embed`; here `encoder/rel_attn_embed`, the
same tensor); the (heads, frames, frames) bias is computed once and every layer scales it per
(head, query) by a gate from the query's head slice (`gru_rel_pos_linear`, `gru_rel_pos_const`).
transformers returns WavLM's attention weights averaged over heads (torch's
multi_head_attention_forward), broadcast to every head; so do we.

Inputs are `input_values` (batch, samples) float and an optional `attention_mask` over
samples; the frame mask is derived with the conv output-length formula
(`transformers`' `_get_feat_extract_output_lengths`). SpecAugment masking (`mask_time_prob`)
is training-time data augmentation in `transformers` and is not applied (as in eval mode);
the `masked_spec_embed` vector is kept so checkpoints load and save unchanged.

Submodule names follow the `transformers` checkpoint layout (feature_extractor/conv_layers.N,
feature_projection, encoder/pos_conv_embed/conv, encoder/layers.N/attention/{q,k,v,out}_proj,
feed_forward/{intermediate,output}_dense, layer_norm, final_layer_norm), so `params.py` is a
table of renames. The weight-normed positional conv keeps torch's (g, v) parametrisation as
params (`weight_g` (1, 1, kernel), `weight_v` (out, in/groups, kernel)); the effective kernel
g·v/‖v‖ (norm over all axes but the kernel axis) is computed here, so saving writes back the
same two tensors.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import conv
from core.layers import heads as H
from core.layers import losses
from core.layers import positions
from core.layers import prims as P
from core.models.wav2vec2.config import SpeechEncoderConfig

def frame_lengths(config, lengths):
    """Samples → frames, per example: the conv output-length formula of every feature layer."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        lengths = (lengths - kernel) // stride + 1
    return lengths


def frame_mask(config, attention_mask, num_frames: int):
    """(batch, samples) mask → (batch, frames) bool: frames before each example's length."""
    lengths = frame_lengths(config, jnp.sum(jnp.asarray(attention_mask, jnp.int32), axis=-1))
    return jnp.expand_dims(jnp.arange(num_frames), 0) < jnp.expand_dims(lengths, -1)


class Wav2Vec2ConvLayer(nn.Module):
    """conv → (GroupNorm with one group per channel | LayerNorm over channels | nothing) → act,
    channels-last (batch, time, channels)."""
    config: SpeechEncoderConfig
    layer_id: int = 0
    norm: str = ""
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        in_dim = c.conv_dim[self.layer_id - 1] if self.layer_id > 0 else 1
        out_dim = c.conv_dim[self.layer_id]
        self.conv = P.Conv(out_dim, in_dim, (c.conv_kernel[self.layer_id],), c.conv_stride[self.layer_id], "VALID",
                           1, 1, c.conv_bias, c.initializer_range, self.dtype, self.param_dtype)
        if self.norm == "group":
            self.layer_norm = P.GroupNorm(out_dim, out_dim, 1e-5, True, self.dtype, self.param_dtype)
        elif self.norm == "layer":
            self.layer_norm = P.LayerNorm(out_dim, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, hidden):
        hidden = self.conv(hidden)
        if self.norm:
            hidden = self.layer_norm(hidden)
        return P.act(hidden, self.config.feat_extract_activation)


class Wav2Vec2FeatureEncoder(nn.Module):
    """(batch, samples) → (batch, frames, conv_dim[-1])."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.feat_extract_norm == "group":
            norms = ["group"] + [""] * (len(c.conv_dim) - 1)
        else:
            norms = ["layer"] * len(c.conv_dim)
        self.conv_layers = [Wav2Vec2ConvLayer(c, i, norms[i], self.dtype, self.param_dtype)
                            for i in range(len(c.conv_dim))]

    def __call__(self, input_values):
        hidden = jnp.expand_dims(jnp.asarray(input_values, self.dtype), -1)
        for layer in self.conv_layers:
            hidden = layer(hidden)
        return hidden


class Wav2Vec2FeatureProjection(nn.Module):
    """LayerNorm (optional in HuBERT) → Dense → dropout; also returns the normed features."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.projection_layer_norm:
            self.layer_norm = P.LayerNorm(c.conv_dim[-1], c.layer_norm_eps, dtype=self.dtype,
                                          param_dtype=self.param_dtype)
        self.projection = P.Dense(c.hidden_size, c.conv_dim[-1], True, c.initializer_range, self.dtype,
                                  self.param_dtype)
        self.dropout = P.Dropout(c.feat_proj_dropout)

    def __call__(self, features, deterministic: bool = True):
        normed = features
        if self.config.projection_layer_norm:
            normed = self.layer_norm(features)
        return self.dropout(self.projection(normed), deterministic=deterministic), normed


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    """(HuBERT: BatchNorm →) weight-normed grouped conv → activation."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.pos_batch_norm:
            self.batch_norm = P.BatchNorm(c.hidden_size, 1e-5, 0.1, True, self.dtype, self.param_dtype)
        self.conv = conv.GroupedConv1D(c.hidden_size, c.num_conv_pos_embeddings, c.num_conv_pos_embedding_groups,
                                  not c.pos_batch_norm, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        if self.config.pos_batch_norm:
            hidden, _ = self.batch_norm(hidden, True)
        return P.act(self.conv(hidden), self.config.feat_extract_activation)


class Wav2Vec2Attention(nn.Module):
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        h = c.hidden_size
        self.q_proj = P.Dense(h, h, True, c.initializer_range, self.dtype, self.param_dtype)
        self.k_proj = P.Dense(h, h, True, c.initializer_range, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(h, h, True, c.initializer_range, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(h, h, True, c.initializer_range, self.dtype, self.param_dtype)
        if c.relative_position_bias:
            self.gru_rel_pos_const = self.param("gru_rel_pos_const", P.ones_init(), (1, c.num_attention_heads, 1, 1),
                                                self.param_dtype)
            self.gru_rel_pos_linear = P.Dense(8, c.head_dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def gated_bias(self, hidden, position_bias):
        """WavLM: (heads, q, k) position bias → (batch, heads, q, k), scaled per (batch, head,
        query) by gate_a·(gate_b·const − 1) + 2, where (gate_a, gate_b) are the sigmoids of the
        two 4-wide sums of `gru_rel_pos_linear` on the query's slice of each head."""
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads = c.num_attention_heads
        proj = self.gru_rel_pos_linear(jnp.reshape(hidden, (batch, length, heads, c.head_dim)))
        gates = P.act(jnp.sum(jnp.reshape(proj, (batch, length, heads, 2, 4)), axis=-1), "sigmoid")
        const = jnp.reshape(jnp.asarray(self.gru_rel_pos_const, self.dtype), (1, 1, heads))
        gate = gates[:, :, :, 0] * (gates[:, :, :, 1] * const - 1.0) + 2.0
        return jnp.expand_dims(jnp.transpose(gate, (0, 2, 1)), -1) * jnp.expand_dims(position_bias, 0)

    def __call__(self, hidden, mask=None, position_bias=None, deterministic: bool = True,
                 output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        bias = None
        if c.relative_position_bias:
            bias = self.gated_bias(hidden, position_bias)
        q = jnp.reshape(self.q_proj(hidden), heads_shape)
        k = jnp.reshape(self.k_proj(hidden), heads_shape)
        v = jnp.reshape(self.v_proj(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, bias=bias, deterministic=deterministic,
                                     return_weights=output_attentions)
        if output_attentions and c.relative_position_bias:
            weights = jnp.broadcast_to(jnp.mean(weights, axis=1, keepdims=True), jnp.shape(weights))
        return self.out_proj(jnp.reshape(context, (batch, length, c.hidden_size))), weights


class Wav2Vec2FeedForward(nn.Module):
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.intermediate_dense = P.Dense(c.intermediate_size, c.hidden_size, True, c.initializer_range, self.dtype,
                                          self.param_dtype)
        self.intermediate_dropout = P.Dropout(c.activation_dropout)
        self.output_dense = P.Dense(c.hidden_size, c.intermediate_size, True, c.initializer_range, self.dtype,
                                    self.param_dtype)
        self.output_dropout = P.Dropout(c.hidden_dropout)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = self.intermediate_dropout(P.act(self.intermediate_dense(hidden), self.config.hidden_act),
                                           deterministic=deterministic)
        return self.output_dropout(self.output_dense(hidden), deterministic=deterministic)


class Wav2Vec2EncoderLayer(nn.Module):
    """Post-norm (Wav2Vec2EncoderLayer) or pre-norm (…StableLayerNorm, `do_stable_layer_norm`);
    the `Repeat` body: (hidden, mask, position_bias, ...) → (hidden, (hidden, attentions))."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attention = Wav2Vec2Attention(c, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout)
        self.layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.feed_forward = Wav2Vec2FeedForward(c, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                            param_dtype=self.param_dtype)

    def __call__(self, hidden, mask=None, position_bias=None, deterministic: bool = True,
                 output_attentions: bool = False):
        if self.config.do_stable_layer_norm:
            attended, weights = self.attention(self.layer_norm(hidden), mask, position_bias, deterministic,
                                               output_attentions)
            hidden = hidden + self.dropout(attended, deterministic=deterministic)
            hidden = hidden + self.feed_forward(self.final_layer_norm(hidden), deterministic)
        else:
            attended, weights = self.attention(hidden, mask, position_bias, deterministic, output_attentions)
            hidden = self.layer_norm(hidden + self.dropout(attended, deterministic=deterministic))
            hidden = self.final_layer_norm(hidden + self.feed_forward(hidden, deterministic))
        return hidden, (hidden, weights)


class Wav2Vec2Encoder(nn.Module):
    """Zero the padded frames, add the conv position embedding, (post-norm: LayerNorm,) the
    layers (pre-norm: a final LayerNorm). hidden_states: the first layer's input, then every
    layer's output (transformers v5: before the pre-norm variant's final LayerNorm). WavLM: the
    relative position bias table (`rel_attn_embed`) and the (heads, frames, frames) bias every
    layer gates."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(c, self.dtype, self.param_dtype)
        self.layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout)
        if c.relative_position_bias:
            self.rel_attn_embed = P.Embed(c.num_buckets, c.num_attention_heads, c.initializer_range, self.dtype,
                                          self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(Wav2Vec2EncoderLayer, c.num_hidden_layers, kwargs, remat=self.remat)

    def __call__(self, hidden, frames=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        mask = None
        if frames is not None:
            hidden = jnp.where(jnp.expand_dims(frames, -1), hidden, jnp.zeros_like(hidden))
            mask = jnp.expand_dims(jnp.expand_dims(frames, 1), 1)
        hidden = hidden + self.pos_conv_embed(hidden)
        if not self.config.do_stable_layer_norm:
            hidden = self.layer_norm(hidden)
        hidden = self.dropout(hidden, deterministic=deterministic)
        first = hidden
        position_bias = None
        if self.config.relative_position_bias:
            length = jnp.shape(hidden)[1]
            buckets = positions.relative_position_bucket(positions.relative_positions(length, length), True,
                                                         self.config.num_buckets, self.config.max_bucket_distance)
            position_bias = jnp.transpose(self.rel_attn_embed(buckets), (2, 0, 1))
        hidden, per_layer = self.layers(hidden, mask, position_bias, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (first,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        if self.config.do_stable_layer_norm:
            hidden = self.layer_norm(hidden)
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


class Wav2Vec2Module(nn.Module):
    """The bare encoder (`transformers.Wav2Vec2Model` / `HubertModel` / `WavLMModel`):
    `extract_features` (Wav2Vec2 and WavLM, as in transformers) are the LayerNorm-ed conv features."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.feature_extractor = Wav2Vec2FeatureEncoder(c, self.dtype, self.param_dtype)
        self.feature_projection = Wav2Vec2FeatureProjection(c, self.dtype, self.param_dtype)
        if c.has_masked_spec_embed:
            self.masked_spec_embed = self.param("masked_spec_embed", P.zeros_init(), (c.hidden_size,),
                                                self.param_dtype)
        self.encoder = Wav2Vec2Encoder(c, self.dtype, self.param_dtype, self.remat)

    def __call__(self, input_values, attention_mask=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_values, 2)
        features = self.feature_extractor(input_values)
        frames = None
        if attention_mask is not None:
            frames = frame_mask(self.config, attention_mask, jnp.shape(features)[1])
        hidden, normed = self.feature_projection(features, deterministic)
        encoded = self.encoder(hidden, frames, deterministic, output_attentions, output_hidden_states)
        extract_features = None if self.config.model_type == "hubert" else normed
        return outputs.Wav2Vec2BaseModelOutput(last_hidden_state=encoded.last_hidden_state,
                                               extract_features=extract_features,
                                               hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

class Wav2Vec2ForCTC(nn.Module):
    """dropout → lm_head over every frame; CTC loss with labels (blank = pad_token_id)."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.model_type == "hubert":
            self.hubert = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        elif c.model_type == "wavlm":
            self.wavlm = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.wav2vec2 = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.final_dropout)
        self.lm_head = P.Dense(c.vocab_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def base(self, input_values, attention_mask, deterministic: bool, output_attentions: bool,
             output_hidden_states: bool):
        if self.config.model_type == "hubert":
            return self.hubert(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        if self.config.model_type == "wavlm":
            return self.wavlm(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        return self.wav2vec2(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)

    def __call__(self, input_values, attention_mask=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        base = self.base(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        logits = self.lm_head(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            if attention_mask is None:
                samples = jnp.full((jnp.shape(input_values)[0],), jnp.shape(input_values)[1], jnp.int32)
            else:
                samples = jnp.sum(jnp.asarray(attention_mask, jnp.int32), axis=-1)
            loss = losses.ctc_loss(logits, labels, frame_lengths(c, samples), c.pad_token_id, c.ctc_loss_reduction,
                            c.ctc_zero_infinity)
        return outputs.CausalLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class Wav2Vec2ForSequenceClassification(nn.Module):
    """projector → mean over the non-padded frames → classifier (optionally on a softmax-
    weighted sum of every layer's hidden states: `use_weighted_layer_sum`)."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.model_type == "hubert":
            self.hubert = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        elif c.model_type == "wavlm":
            self.wavlm = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.wav2vec2 = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        if c.use_weighted_layer_sum:
            self.layer_weights = self.param("layer_weights", P.ones_init(), (c.num_hidden_layers + 1,),
                                            self.param_dtype)
        self.projector = P.Dense(c.classifier_proj_size, c.hidden_size, True, c.initializer_range, self.dtype,
                                 self.param_dtype)
        self.classifier = P.Dense(c.num_labels, c.classifier_proj_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def base(self, input_values, attention_mask, deterministic: bool, output_attentions: bool,
             output_hidden_states: bool):
        if self.config.model_type == "hubert":
            return self.hubert(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        if self.config.model_type == "wavlm":
            return self.wavlm(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        return self.wav2vec2(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)

    def __call__(self, input_values, attention_mask=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        weighted = c.use_weighted_layer_sum
        base = self.base(input_values, attention_mask, deterministic, output_attentions,
                         output_hidden_states or weighted)
        if weighted:
            hidden = H.weighted_layer_sum(base.hidden_states, self.layer_weights, self.dtype)
        else:
            hidden = base.last_hidden_state
        hidden = self.projector(hidden)
        if attention_mask is None:
            pooled = jnp.mean(hidden, axis=1)
        else:
            frames = frame_mask(c, attention_mask, jnp.shape(hidden)[1])
            hidden = jnp.where(jnp.expand_dims(frames, -1), hidden, jnp.zeros_like(hidden))
            count = jnp.sum(jnp.asarray(frames, self.dtype), axis=1, keepdims=True)
            pooled = jnp.sum(hidden, axis=1) / count
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        # The weighted sum needs every layer's states; they are returned only on request.
        all_hidden = base.hidden_states if output_hidden_states else None
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=all_hidden,
                                                attentions=base.attentions)


class Wav2Vec2ForAudioFrameClassification(nn.Module):
    """classifier over every frame (optionally on the weighted layer sum); with labels
    (batch, frames, num_labels) (one- or multi-hot), cross-entropy against each frame's first
    maximal label over all frames, padded ones included (transformers ignores the mask here)."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.model_type == "hubert":
            self.hubert = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        elif c.model_type == "wavlm":
            self.wavlm = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.wav2vec2 = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        if c.use_weighted_layer_sum:
            self.layer_weights = self.param("layer_weights", P.ones_init(), (c.num_hidden_layers + 1,),
                                            self.param_dtype)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def base(self, input_values, attention_mask, deterministic: bool, output_attentions: bool,
             output_hidden_states: bool):
        if self.config.model_type == "hubert":
            return self.hubert(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        if self.config.model_type == "wavlm":
            return self.wavlm(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        return self.wav2vec2(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)

    def __call__(self, input_values, attention_mask=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        weighted = c.use_weighted_layer_sum
        base = self.base(input_values, attention_mask, deterministic, output_attentions,
                         output_hidden_states or weighted)
        if weighted:
            hidden = H.weighted_layer_sum(base.hidden_states, self.layer_weights, self.dtype)
        else:
            hidden = base.last_hidden_state
        logits = self.classifier(hidden)
        loss = None
        if labels is not None:
            targets = H.first_max_index(jnp.reshape(labels, (-1, c.num_labels)))
            loss = losses.cross_entropy(jnp.reshape(logits, (-1, c.num_labels)), targets)
        all_hidden = base.hidden_states if output_hidden_states else None
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=all_hidden,
                                             attentions=base.attentions)


class TDNNLayer(nn.Module):
    """transformers' TDNNLayer: a dilated 1-D conv without padding, then ReLU, its weight kept as
    an nn.Linear `kernel` (in·k → out, input index j·in + c for tap j and channel c); here the k
    dilated taps are concatenated along the channels and go through that Dense."""
    config: SpeechEncoderConfig
    layer_id: int = 0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        in_dim = c.tdnn_dim[self.layer_id - 1] if self.layer_id > 0 else c.tdnn_dim[0]
        self.kernel = P.Dense(c.tdnn_dim[self.layer_id], in_dim * c.tdnn_kernel[self.layer_id], True,
                              c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        c = self.config
        taps = c.tdnn_kernel[self.layer_id]
        dilation = c.tdnn_dilation[self.layer_id]
        # Too few frames give no output frame (an empty axis; transformers' conv1d would raise).
        steps = max(jnp.shape(hidden)[1] - dilation * (taps - 1), 0)
        stacked = jnp.concatenate([hidden[:, j * dilation:j * dilation + steps] for j in range(taps)], axis=-1)
        return P.act(self.kernel(stacked), "relu")


class Wav2Vec2ForXVector(nn.Module):
    """projector → TDNN layers → statistics pooling (mean and unbiased std over each example's
    frames) → feature_extractor (the x-vector `embeddings`) → classifier (`logits`, of size
    xvector_output_dim); the AMSoftmax loss (`objective`, (xvector_output_dim, num_labels),
    scale 30, margin 0.4) with integer labels (batch,).

    The pooled length of an example is transformers': its frame count minus Σ(kernel - 1), the
    dilations left out, then cut as torch slices `[:length]` with the TDNN output's frame count
    (at most that many; a negative length counts from the end)."""
    config: SpeechEncoderConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.model_type == "hubert":
            self.hubert = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        elif c.model_type == "wavlm":
            self.wavlm = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        else:
            self.wav2vec2 = Wav2Vec2Module(c, self.dtype, self.param_dtype, self.remat)
        if c.use_weighted_layer_sum:
            self.layer_weights = self.param("layer_weights", P.ones_init(), (c.num_hidden_layers + 1,),
                                            self.param_dtype)
        self.projector = P.Dense(c.tdnn_dim[0], c.hidden_size, True, c.initializer_range, self.dtype,
                                 self.param_dtype)
        self.tdnn = [TDNNLayer(c, i, self.dtype, self.param_dtype) for i in range(len(c.tdnn_dim))]
        self.feature_extractor = P.Dense(c.xvector_output_dim, 2 * c.tdnn_dim[-1], True, c.initializer_range,
                                         self.dtype, self.param_dtype)
        self.classifier = P.Dense(c.xvector_output_dim, c.xvector_output_dim, True, c.initializer_range,
                                  self.dtype, self.param_dtype)
        self.objective = self.param("objective", P.normal_init(1.0), (c.xvector_output_dim, c.num_labels),
                                    self.param_dtype)

    def base(self, input_values, attention_mask, deterministic: bool, output_attentions: bool,
             output_hidden_states: bool):
        if self.config.model_type == "hubert":
            return self.hubert(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        if self.config.model_type == "wavlm":
            return self.wavlm(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)
        return self.wav2vec2(input_values, attention_mask, deterministic, output_attentions, output_hidden_states)

    def __call__(self, input_values, attention_mask=None, labels=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        c = self.config
        weighted = c.use_weighted_layer_sum
        base = self.base(input_values, attention_mask, deterministic, output_attentions,
                         output_hidden_states or weighted)
        if weighted:
            hidden = H.weighted_layer_sum(base.hidden_states, self.layer_weights, self.dtype)
        else:
            hidden = base.last_hidden_state
        hidden = self.projector(hidden)
        for layer in self.tdnn:
            hidden = layer(hidden)
        steps = jnp.shape(hidden)[1]
        if attention_mask is None:
            mean = jnp.mean(hidden, axis=1)
            count = jnp.full((jnp.shape(hidden)[0], 1), steps, self.dtype)
            valid = jnp.ones((jnp.shape(hidden)[0], steps), jnp.bool_)
        else:
            lengths = frame_lengths(c, jnp.sum(jnp.asarray(attention_mask, jnp.int32), axis=-1))
            for kernel in c.tdnn_kernel:
                lengths = lengths - (kernel - 1)
            lengths = jnp.where(lengths < 0, jnp.maximum(lengths + steps, 0), jnp.minimum(lengths, steps))
            valid = jnp.expand_dims(jnp.arange(steps), 0) < jnp.expand_dims(lengths, -1)
            count = jnp.asarray(jnp.expand_dims(lengths, -1), self.dtype)
            kept = jnp.where(jnp.expand_dims(valid, -1), hidden, jnp.zeros_like(hidden))
            mean = jnp.sum(kept, axis=1) / count
        deviation = jnp.where(jnp.expand_dims(valid, -1), hidden - jnp.expand_dims(mean, 1), jnp.zeros_like(hidden))
        std = jnp.power(jnp.sum(jnp.square(deviation), axis=1) / (count - 1.0), 0.5)
        embeddings = self.feature_extractor(jnp.concatenate([mean, std], axis=-1))
        logits = self.classifier(embeddings)
        loss = None
        if labels is not None:
            loss = losses.am_softmax_loss(logits, jnp.asarray(self.objective, self.dtype), labels)
        all_hidden = base.hidden_states if output_hidden_states else None
        return outputs.XVectorOutput(loss=loss, logits=logits, embeddings=embeddings, hidden_states=all_hidden,
                                     attentions=base.attentions)
