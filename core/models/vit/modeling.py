"""ViT, DeiT and ViT-MSN: patch embeddings (a strided `P.Conv`), [CLS] (and DeiT's distillation
token), learned position embeddings, a pre-norm Transformer encoder, and the heads, in the
portable Flax subset.

Inputs are `pixel_values` (batch, channels, height, width), channels-first as in
`transformers`; the patch embedding transposes them to channels-last for `P.Conv`. At the
configured `image_size` the position table is added as it is; at any other resolution it is
resized with torch's bicubic rule (align_corners=False, A=-0.75), as `transformers` does with
`interpolate_pos_encoding=True` (here the resolution alone decides: no flag to pass).

Submodule names follow the `transformers` checkpoint layout (embeddings, encoder/layer,
attention/attention/{query,key,value}, attention/output/dense, intermediate, output,
layernorm_before/after), so `params.py` is a table of renames.
"""
import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import mlp as M
from core.layers import prims as P
from core.models.vit.config import ViTMSNConfig


def bicubic_matrix(in_size: int, out_size: int) -> list:
    """(out_size, in_size) weights of torch's 1-D bicubic resize (align_corners=False,
    A=-0.75, border indices clamped), as nested Python lists (static, built at trace time)."""
    a = -0.75
    scale = in_size / out_size
    rows = []
    for i in range(out_size):
        real = scale * (i + 0.5) - 0.5
        base = int(real // 1)
        t = real - base
        weights = [((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a,
                   ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
                   ((a + 2.0) * (1.0 - t) - (a + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0,
                   ((a * (2.0 - t) - 5.0 * a) * (2.0 - t) + 8.0 * a) * (2.0 - t) - 4.0 * a]
        row = [0.0] * in_size
        for k in range(4):
            index = min(max(base - 1 + k, 0), in_size - 1)
            row[index] = row[index] + weights[k]
        rows.append(row)
    return rows


class ViTPatchEmbeddings(nn.Module):
    """(batch, channels, height, width) → (batch, patches, hidden): a Conv with stride = kernel
    = patch size over the channels-last image, patches in row-major order."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.projection = P.Conv(c.hidden_size, c.num_channels, c.patch_hw, c.patch_hw, "VALID", 1, 1, True,
                                 c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values):
        chex.assert_rank(pixel_values, 4)
        batch, channels, _, _ = jnp.shape(pixel_values)
        if channels != self.config.num_channels:
            raise ValueError("Make sure that the channel dimension of the pixel values match with the one set in "
                             f"the configuration. Expected {self.config.num_channels} but got {channels}.")
        patches = self.projection(jnp.transpose(pixel_values, (0, 2, 3, 1)))
        _, rows, cols, hidden = jnp.shape(patches)
        return jnp.reshape(patches, (batch, rows * cols, hidden))


class ViTEmbeddings(nn.Module):
    """[CLS] (+ distillation token) + patch embeddings (+ mask token where masked) + positions."""
    config: ViTMSNConfig
    use_mask_token: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.cls_token = self.param("cls_token", P.zeros_init(), (1, 1, c.hidden_size), self.param_dtype)
        if self.use_mask_token:
            self.mask_token = self.param("mask_token", P.zeros_init(), (1, 1, c.hidden_size), self.param_dtype)
        if c.num_special_tokens == 2:
            self.distillation_token = self.param("distillation_token", P.zeros_init(), (1, 1, c.hidden_size),
                                                 self.param_dtype)
        self.patch_embeddings = ViTPatchEmbeddings(c, self.dtype, self.param_dtype)
        self.position_embeddings = self.param("position_embeddings", P.zeros_init(),
                                              (1, c.num_patches + c.num_special_tokens, c.hidden_size),
                                              self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def positions(self, height: int, width: int):
        """The position table for a (height, width) image: as stored at the configured size,
        else its patch rows resized bicubically to the new patch grid."""
        c = self.config
        table = jnp.asarray(self.position_embeddings, self.dtype)
        if (height, width) == c.image_hw:
            return table
        special = c.num_special_tokens
        num_positions = c.num_patches
        side = int(num_positions ** 0.5)
        new_rows = height // c.patch_hw[0]
        new_cols = width // c.patch_hw[1]
        grid = jnp.reshape(table[:, special:], (side, side, c.hidden_size))
        rows = jnp.asarray(bicubic_matrix(side, new_rows), jnp.float32)
        cols = jnp.asarray(bicubic_matrix(side, new_cols), jnp.float32)
        resized = jnp.einsum("ij,jkd,lk->ild", rows, jnp.asarray(grid, jnp.float32), cols)
        resized = jnp.asarray(jnp.reshape(resized, (1, new_rows * new_cols, c.hidden_size)), self.dtype)
        return jnp.concatenate([table[:, :special], resized], axis=1)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True):
        c = self.config
        batch, _, height, width = jnp.shape(pixel_values)
        embeddings = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            mask = jnp.asarray(jnp.expand_dims(bool_masked_pos, -1), self.dtype)
            embeddings = embeddings * (1.0 - mask) + jnp.asarray(self.mask_token, self.dtype) * mask
        tokens = [jnp.broadcast_to(jnp.asarray(self.cls_token, self.dtype), (batch, 1, c.hidden_size))]
        if c.num_special_tokens == 2:
            tokens.append(jnp.broadcast_to(jnp.asarray(self.distillation_token, self.dtype), (batch, 1, c.hidden_size)))
        embeddings = jnp.concatenate(tokens + [embeddings], axis=1)
        embeddings = embeddings + self.positions(height, width)
        return self.dropout(embeddings, deterministic=deterministic)


class ViTSelfAttention(nn.Module):
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.query = P.Dense(c.hidden_size, c.hidden_size, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        self.key = P.Dense(c.hidden_size, c.hidden_size, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        self.value = P.Dense(c.hidden_size, c.hidden_size, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.query(hidden), heads_shape)
        k = jnp.reshape(self.key(hidden), heads_shape)
        v = jnp.reshape(self.value(hidden), heads_shape)
        context, weights = self.core(q, k, v, deterministic=deterministic, return_weights=output_attentions)
        return jnp.reshape(context, (batch, length, c.hidden_size)), weights


class ViTAttention(nn.Module):
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attention = ViTSelfAttention(c, self.dtype, self.param_dtype)
        self.output = M.DenseDropout(c.hidden_size, c.hidden_size, c.hidden_dropout_prob, c.initializer_range,
                                     self.dtype, self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False):
        context, weights = self.attention(hidden, deterministic, output_attentions)
        return self.output(context, deterministic), weights


class ViTLayer(nn.Module):
    """Pre-norm block; the `Repeat` body: (hidden, ...) → (hidden, (hidden, attentions))."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attention = ViTAttention(c, self.dtype, self.param_dtype)
        self.intermediate = M.DenseActivation(c.intermediate_size, c.hidden_size, c.hidden_act, c.initializer_range,
                                              self.dtype, self.param_dtype)
        self.output = M.DenseDropout(c.hidden_size, c.intermediate_size, c.hidden_dropout_prob, c.initializer_range,
                                     self.dtype, self.param_dtype)
        self.layernorm_before = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                            param_dtype=self.param_dtype)
        self.layernorm_after = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                           param_dtype=self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attention(self.layernorm_before(hidden), deterministic, output_attentions)
        hidden = attended + hidden
        hidden = self.output(self.intermediate(self.layernorm_after(hidden)), deterministic) + hidden
        return hidden, (hidden, weights)


class ViTEncoder(nn.Module):
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        kwargs = {"config": self.config, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layer = P.Repeat(ViTLayer, self.config.num_hidden_layers, kwargs, remat=self.remat)

    def __call__(self, hidden, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        embedded = hidden
        hidden, per_layer = self.layer(hidden, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (embedded,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


class ViTPooler(nn.Module):
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.pooler_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        return P.act(self.dense(hidden[:, 0]), self.config.pooler_act)


class ViTModule(nn.Module):
    """The bare encoder: embeddings → layers → layernorm (→ pooler: ViT and DeiT, not ViT-MSN).
    `transformers.ViTModel` / `DeiTModel` / `ViTMSNModel`."""
    config: ViTMSNConfig
    add_pooling_layer: bool = True
    use_mask_token: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = ViTEmbeddings(c, self.use_mask_token, self.dtype, self.param_dtype)
        self.encoder = ViTEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.add_pooling_layer and c.has_pooler:
            self.pooler = ViTPooler(c, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden = self.embeddings(pixel_values, bool_masked_pos, deterministic)
        encoded = self.encoder(hidden, deterministic, output_attentions, output_hidden_states)
        sequence = self.layernorm(encoded.last_hidden_state)
        pooled = None
        if self.add_pooling_layer and self.config.has_pooler:
            pooled = self.pooler(sequence)
        return outputs.BaseModelOutput(last_hidden_state=sequence, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

def classification_loss(config, logits, labels):
    if labels is None:
        return None
    return losses.sequence_classification_loss(logits, labels, config.problem_type, config.num_labels)


def pixel_shuffle(x, channels: int, factor: int):
    """Channels-last (batch, h, w, channels * factor**2) → channels-first (batch, channels,
    h * factor, w * factor), the channel order of torch's PixelShuffle."""
    batch, rows, cols, _ = jnp.shape(x)
    x = jnp.reshape(x, (batch, rows, cols, channels, factor, factor))
    x = jnp.transpose(x, (0, 3, 1, 4, 2, 5))
    return jnp.reshape(x, (batch, channels, rows * factor, cols * factor))


def reconstruction_loss(config, pixel_values, reconstruction, bool_masked_pos):
    """SimMIM: mean L1 over masked pixels (masked patches upsampled to pixels), per channel."""
    size = config.image_hw[0] // config.patch_hw[0]
    patch = config.patch_hw[0]
    mask = jnp.asarray(jnp.reshape(bool_masked_pos, (-1, size, 1, size, 1)), jnp.float32)
    batch = jnp.shape(mask)[0]
    mask = jnp.reshape(jnp.broadcast_to(mask, (batch, size, patch, size, patch)), (batch, 1, size * patch, size * patch))
    l1 = jnp.abs(jnp.asarray(pixel_values, jnp.float32) - jnp.asarray(reconstruction, jnp.float32))
    return jnp.sum(l1 * mask) / (jnp.sum(mask) + 1e-5) / config.num_channels


class ViTMIMDecoder(nn.Module):
    """The SimMIM decoder: a 1x1 Conv to encoder_stride**2 * channels, then PixelShuffle; takes
    the patch tokens (special tokens dropped) on their square grid."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.conv = P.Conv(c.encoder_stride * c.encoder_stride * c.num_channels, c.hidden_size, (1, 1), 1, "VALID",
                           1, 1, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, sequence):
        c = self.config
        patches = sequence[:, c.num_special_tokens:]
        batch, length, hidden = jnp.shape(patches)
        side = int(length ** 0.5)
        grid = jnp.reshape(patches, (batch, side, side, hidden))
        return pixel_shuffle(self.conv(grid), c.num_channels, c.encoder_stride)


def check_mim(config, bool_masked_pos):
    if bool_masked_pos is not None and config.patch_size != config.encoder_stride:
        raise ValueError("When `bool_masked_pos` is provided, `patch_size` must be equal to `encoder_stride` to "
                         "ensure that the reconstructed image has the same dimensions as the input. Got "
                         f"`patch_size` = {config.patch_size} and `encoder_stride` = {config.encoder_stride}.")


class ViTForImageClassification(nn.Module):
    """A linear classifier on the final [CLS] state (ViT and ViT-MSN)."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.vit = ViTModule(c, False, False, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.vit(pixel_values, None, deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(base.last_hidden_state[:, 0])
        return outputs.SequenceClassifierOutput(loss=classification_loss(self.config, logits, labels), logits=logits,
                                                hidden_states=base.hidden_states, attentions=base.attentions)


class ViTForMaskedImageModeling(nn.Module):
    """SimMIM: the mask token replaces masked patches; the decoder reconstructs the pixels."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.vit = ViTModule(self.config, False, True, self.dtype, self.param_dtype, self.remat)
        self.decoder = ViTMIMDecoder(self.config, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        check_mim(self.config, bool_masked_pos)
        base = self.vit(pixel_values, bool_masked_pos, deterministic, output_attentions, output_hidden_states)
        reconstruction = self.decoder(base.last_hidden_state)
        loss = None
        if bool_masked_pos is not None:
            loss = reconstruction_loss(self.config, pixel_values, reconstruction, bool_masked_pos)
        return outputs.MaskedImageModelingOutput(loss=loss, reconstruction=reconstruction,
                                                 hidden_states=base.hidden_states, attentions=base.attentions)


class DeiTForImageClassification(nn.Module):
    """A linear classifier on the final [CLS] state (the distillation token is not used)."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.deit = ViTModule(c, False, False, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.deit(pixel_values, None, deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(base.last_hidden_state[:, 0])
        return outputs.SequenceClassifierOutput(loss=classification_loss(self.config, logits, labels), logits=logits,
                                                hidden_states=base.hidden_states, attentions=base.attentions)


class DeiTForMaskedImageModeling(nn.Module):
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.deit = ViTModule(self.config, False, True, self.dtype, self.param_dtype, self.remat)
        self.decoder = ViTMIMDecoder(self.config, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        check_mim(self.config, bool_masked_pos)
        base = self.deit(pixel_values, bool_masked_pos, deterministic, output_attentions, output_hidden_states)
        reconstruction = self.decoder(base.last_hidden_state)
        loss = None
        if bool_masked_pos is not None:
            loss = reconstruction_loss(self.config, pixel_values, reconstruction, bool_masked_pos)
        return outputs.MaskedImageModelingOutput(loss=loss, reconstruction=reconstruction,
                                                 hidden_states=base.hidden_states, attentions=base.attentions)


class DeiTForImageClassificationWithTeacher(nn.Module):
    """Two classifiers, on [CLS] and on the distillation token; `logits` is their mean (an
    inference head: as in `transformers`, no labels / loss)."""
    config: ViTMSNConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.deit = ViTModule(c, False, False, self.dtype, self.param_dtype, self.remat)
        self.cls_classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                      self.param_dtype)
        self.distillation_classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                               self.param_dtype)

    def __call__(self, pixel_values, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.deit(pixel_values, None, deterministic, output_attentions, output_hidden_states)
        cls_logits = self.cls_classifier(base.last_hidden_state[:, 0])
        distillation_logits = self.distillation_classifier(base.last_hidden_state[:, 1])
        return outputs.ImageClassificationWithTeacherOutput(
            logits=(cls_logits + distillation_logits) / 2, cls_logits=cls_logits,
            distillation_logits=distillation_logits, hidden_states=base.hidden_states, attentions=base.attentions)
