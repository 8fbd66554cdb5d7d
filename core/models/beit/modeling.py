"""BEiT: patch embeddings (ViT's), [CLS], optional absolute position embeddings, a pre-norm
Transformer encoder with relative position biases (per layer and/or shared) and layer scale,
mean pooling, and the heads, in the portable Flax subset.

Inputs are `pixel_values` (batch, channels, height, width), channels-first as in
`transformers`. Only the configured resolution is supported: `transformers` resamples the
position tables for other sizes (bicubic absolute, bilinear relative); here another size, or
`interpolate_pos_encoding=True`, raises. Drop path is the identity (inference and training
without stochastic depth).

Submodule names follow the saved `transformers` layout (embeddings, encoder/layer,
attention/attention/{query,key,value,relative_position_bias}, attention/output/dense,
intermediate, output, layernorm_before/after, lambda_1/2, encoder/relative_position_bias), so
`params.py` is a table of renames.
"""
import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import mlp as M
from core.layers import positions as pos
from core.layers import prims as P
from core.models.beit.config import BeitConfig
from core.models.vit.modeling import ViTPatchEmbeddings, classification_loss


def relative_position_index(rows: int, cols: int) -> list:
    """(L, L) indices into the relative position table, L = rows * cols + 1 ([CLS] first), as
    `transformers`' BeitRelativePositionBias.generate_relative_position_index (static lists): the
    patch grid's offsets, then three extra entries for [CLS]→patch, patch→[CLS] and [CLS]→[CLS]."""
    num_relative_distance = (2 * rows - 1) * (2 * cols - 1) + 3
    index = [[num_relative_distance - 1] + [num_relative_distance - 3] * (rows * cols)]
    return index + [[num_relative_distance - 2] + row for row in pos.grid_relative_position_index(rows, cols)]


class BeitRelativePositionBias(nn.Module):
    """The learned (num_relative_distance, heads) table → an additive bias (1, heads, L, L)."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.relative_position_bias_table = self.param("relative_position_bias_table", P.zeros_init(),
                                                       (c.num_relative_distance, c.num_attention_heads),
                                                       self.param_dtype)

    def __call__(self):
        rows, cols = self.config.grid_hw
        return pos.gather_relative_bias(jnp.asarray(self.relative_position_bias_table, self.dtype),
                                        relative_position_index(rows, cols))


class BeitEmbeddings(nn.Module):
    """[CLS] + patch embeddings (mask token where masked) (+ absolute positions)."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.cls_token = self.param("cls_token", P.zeros_init(), (1, 1, c.hidden_size), self.param_dtype)
        if c.use_mask_token:
            self.mask_token = self.param("mask_token", P.zeros_init(), (1, 1, c.hidden_size), self.param_dtype)
        self.patch_embeddings = ViTPatchEmbeddings(c, self.dtype, self.param_dtype)
        if c.use_absolute_position_embeddings:
            self.position_embeddings = self.param("position_embeddings", P.zeros_init(),
                                                  (1, c.num_patches + 1, c.hidden_size), self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True):
        c = self.config
        batch, _, height, width = jnp.shape(pixel_values)
        if (height, width) != c.image_hw:
            raise ValueError(f"Input image size ({height}*{width}) doesn't match the model ({c.image_hw[0]}*"
                             f"{c.image_hw[1]}): Rosetta's BEiT runs at the configured image_size only (no "
                             "interpolation of its position tables); resize the images.")
        embeddings = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            if not c.use_mask_token:
                raise ValueError("bool_masked_pos needs a mask token: set use_mask_token=True in the config")
            mask = jnp.asarray(jnp.expand_dims(bool_masked_pos, -1), self.dtype)
            embeddings = embeddings * (1.0 - mask) + jnp.asarray(self.mask_token, self.dtype) * mask
        cls = jnp.broadcast_to(jnp.asarray(self.cls_token, self.dtype), (batch, 1, c.hidden_size))
        embeddings = jnp.concatenate([cls, embeddings], axis=1)
        if c.use_absolute_position_embeddings:
            embeddings = embeddings + jnp.asarray(self.position_embeddings, self.dtype)
        return self.dropout(embeddings, deterministic=deterministic)


class BeitSelfAttention(nn.Module):
    """query / key (no bias) / value, plus the layer's relative position bias (if configured)
    and the encoder's shared one (passed in)."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.query = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.key = P.Dense(c.hidden_size, c.hidden_size, False, c.initializer_range, self.dtype, self.param_dtype)
        self.value = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        if c.use_relative_position_bias:
            self.relative_position_bias = BeitRelativePositionBias(c, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)

    def __call__(self, hidden, shared_bias=None, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.query(hidden), heads_shape)
        k = jnp.reshape(self.key(hidden), heads_shape)
        v = jnp.reshape(self.value(hidden), heads_shape)
        bias = shared_bias
        if c.use_relative_position_bias:
            own = self.relative_position_bias()
            bias = own if bias is None else own + bias
        context, weights = self.core(q, k, v, bias=bias, deterministic=deterministic,
                                     return_weights=output_attentions)
        return jnp.reshape(context, (batch, length, c.hidden_size)), weights


class BeitAttention(nn.Module):
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.attention = BeitSelfAttention(self.config, self.dtype, self.param_dtype)
        c = self.config
        self.output = M.DenseDropout(c.hidden_size, c.hidden_size, c.hidden_dropout_prob, c.initializer_range,
                                     self.dtype, self.param_dtype)

    def __call__(self, hidden, shared_bias=None, deterministic: bool = True, output_attentions: bool = False):
        context, weights = self.attention(hidden, shared_bias, deterministic, output_attentions)
        return self.output(context, deterministic), weights


class BeitLayer(nn.Module):
    """Pre-norm block with layer scale (lambda_1, lambda_2 when layer_scale_init_value > 0);
    the `Repeat` body: (hidden, shared_bias, ...) → (hidden, (hidden, attentions))."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attention = BeitAttention(c, self.dtype, self.param_dtype)
        self.intermediate = M.DenseActivation(c.intermediate_size, c.hidden_size, c.hidden_act, c.initializer_range,
                                              self.dtype, self.param_dtype)
        self.output = M.DenseDropout(c.hidden_size, c.intermediate_size, c.hidden_dropout_prob, c.initializer_range,
                                     self.dtype, self.param_dtype)
        self.layernorm_before = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                            param_dtype=self.param_dtype)
        self.layernorm_after = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                           param_dtype=self.param_dtype)
        if c.layer_scale_init_value > 0:
            self.lambda_1 = self.param("lambda_1", P.ones_init(), (c.hidden_size,), self.param_dtype)
            self.lambda_2 = self.param("lambda_2", P.ones_init(), (c.hidden_size,), self.param_dtype)

    def __call__(self, hidden, shared_bias=None, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        attended, weights = self.attention(self.layernorm_before(hidden), shared_bias, deterministic,
                                           output_attentions)
        if c.layer_scale_init_value > 0:
            attended = jnp.asarray(self.lambda_1, self.dtype) * attended
        hidden = attended + hidden
        mlp = self.output(self.intermediate(self.layernorm_after(hidden)), deterministic)
        if c.layer_scale_init_value > 0:
            mlp = jnp.asarray(self.lambda_2, self.dtype) * mlp
        hidden = mlp + hidden
        return hidden, (hidden, weights)


class BeitEncoder(nn.Module):
    """The layers, and the relative position bias they share (use_shared_relative_position_bias)."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.use_shared_relative_position_bias:
            self.relative_position_bias = BeitRelativePositionBias(c, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layer = P.Repeat(BeitLayer, c.num_hidden_layers, kwargs, remat=self.remat)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        shared_bias = None
        if self.config.use_shared_relative_position_bias:
            shared_bias = self.relative_position_bias()
        embedded = hidden
        hidden, per_layer = self.layer(hidden, shared_bias, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (embedded,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


class BeitPooler(nn.Module):
    """Mean of the patch tokens + LayerNorm (use_mean_pooling), else the [CLS] state."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.use_mean_pooling:
            self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                         param_dtype=self.param_dtype)

    def __call__(self, hidden):
        if self.config.use_mean_pooling:
            return self.layernorm(jnp.mean(hidden[:, 1:], axis=1))
        return hidden[:, 0]


class BeitModule(nn.Module):
    """The bare encoder: embeddings → layers (→ layernorm unless use_mean_pooling) (→ pooler).
    `transformers.BeitModel`."""
    config: BeitConfig
    add_pooling_layer: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = BeitEmbeddings(c, self.dtype, self.param_dtype)
        self.encoder = BeitEncoder(c, self.dtype, self.param_dtype, self.remat)
        if not c.use_mean_pooling:
            self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                         param_dtype=self.param_dtype)
        if self.add_pooling_layer:
            self.pooler = BeitPooler(c, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, interpolate_pos_encoding: bool = False,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(pixel_values, 4)
        if interpolate_pos_encoding:
            raise ValueError("interpolate_pos_encoding=True is not supported by Rosetta's BEiT: it runs at the "
                             "configured image_size only; resize the images to it")
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden = self.embeddings(pixel_values, bool_masked_pos, deterministic)
        encoded = self.encoder(hidden, deterministic, output_attentions, output_hidden_states)
        sequence = encoded.last_hidden_state
        if not self.config.use_mean_pooling:
            sequence = self.layernorm(sequence)
        pooled = None
        if self.add_pooling_layer:
            pooled = self.pooler(sequence)
        return outputs.BaseModelOutput(last_hidden_state=sequence, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

def masked_patch_loss(logits, labels, bool_masked_pos):
    """Cross-entropy of the masked patches' logits (row-major over batch and patches, as torch's
    `logits[bool_masked_pos]`) against `labels` (one per masked patch; -100 ignored)."""
    batch, patches, vocab = jnp.shape(logits)
    mask = jnp.reshape(jnp.asarray(bool_masked_pos, jnp.int32), (batch * patches,))
    count = jnp.shape(labels)[0]
    order = jnp.clip(jnp.cumsum(mask) - 1, 0, max(count - 1, 0))
    gathered = jnp.take(jnp.reshape(labels, (count,)), order, axis=0)
    full = jnp.where(mask > 0, gathered, -100)
    return losses.cross_entropy(jnp.reshape(logits, (batch * patches, vocab)), full)


class BeitForImageClassification(nn.Module):
    """A linear classifier on the pooled output (mean of patch tokens + LayerNorm, or [CLS])."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.beit = BeitModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, labels=None, interpolate_pos_encoding: bool = False, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.beit(pixel_values, None, interpolate_pos_encoding, deterministic, output_attentions,
                         output_hidden_states)
        logits = self.classifier(base.pooler_output)
        return outputs.SequenceClassifierOutput(loss=classification_loss(self.config, logits, labels), logits=logits,
                                                hidden_states=base.hidden_states, attentions=base.attentions)


class BeitForMaskedImageModeling(nn.Module):
    """BEiT pre-training: LayerNorm + a linear head over the `vocab_size` visual tokens for every
    patch; the loss is over the masked patches (`labels`: one visual token per masked patch)."""
    config: BeitConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.beit = BeitModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.lm_head = P.Dense(c.vocab_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, labels=None, interpolate_pos_encoding: bool = False,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.beit(pixel_values, bool_masked_pos, interpolate_pos_encoding, deterministic, output_attentions,
                         output_hidden_states)
        logits = self.lm_head(self.layernorm(base.last_hidden_state)[:, 1:])
        loss = None
        if labels is not None:
            if bool_masked_pos is None:
                raise ValueError("labels (one visual token per masked patch) need bool_masked_pos")
            loss = masked_patch_loss(logits, labels, bool_masked_pos)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)
