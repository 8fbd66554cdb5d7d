"""ViTMAE: a ViT encoder over a random subset of the patches (masked autoencoder), and the
pre-training decoder that reconstructs the pixels of every patch, in the portable Flax subset.

Random masking is explicit: `noise` (batch, num_patches) is an input, as `transformers` takes
it; the patches are ranked by it (ascending, ties by position: a stable argsort), the first
`int(num_patches * (1 - mask_ratio))` are kept. Without `noise`, `mask_ratio` must be 0 (then
every patch is kept, in order); Rosetta draws no random numbers besides dropout's. The ranks
are computed by pairwise comparison (num_patches² per image), so no sort op is needed.

The encoder and decoder layers are ViT's (`core/models/vit`): the same modules, the decoder's
with `config.decoder_config` (the decoder sizes). The position tables (`position_embeddings`,
`decoder_pos_embed`: fixed 2-D sin-cos in transformers) are checkpoint tensors: loaded, not
recomputed. Only the configured resolution is supported (no `interpolate_pos_encoding`).
"""


import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import prims as P
from core.models.vit.modeling import ViTEncoder, ViTPatchEmbeddings
from core.models.vit_mae.config import ViTMAEConfig


def random_masking(config, sequence, noise=None):
    """Keep `config.len_keep` patches per image, those of smallest `noise`: returns (kept
    patches (batch, len_keep, hidden), mask (batch, patches) 1 = dropped, ids_restore (batch,
    patches) the rank of every patch), as transformers' random_masking with the same noise."""
    batch, length, hidden = jnp.shape(sequence)
    positions = jnp.arange(length)
    if noise is None:
        if config.mask_ratio > 0:
            raise ValueError(f"ViTMAE masks {config.mask_ratio:g} of the patches at random: pass `noise` (batch, "
                             f"{length}) of uniform random values in [0, 1) (jax.random.uniform(key, shape), "
                             "torch.rand(shape)); the patches of smallest noise are kept. Or set mask_ratio=0.")
        rank = jnp.broadcast_to(jnp.expand_dims(positions, 0), (batch, length))
    else:
        chex.assert_shape(noise, (batch, length))
        mine = jnp.expand_dims(noise, 2)
        other = jnp.expand_dims(noise, 1)
        earlier = jnp.expand_dims(jnp.expand_dims(positions, 0) < jnp.expand_dims(positions, 1), 0)
        # rank = how many patches sort before this one: smaller noise, or equal noise earlier.
        smaller = jnp.sum(jnp.asarray(other < mine, jnp.int32), axis=2)
        tied = jnp.sum(jnp.asarray(jnp.logical_and(other == mine, earlier), jnp.int32), axis=2)
        rank = smaller + tied
    # ids_shuffle[r] = the patch of rank r.
    is_rank = jnp.expand_dims(rank, 2) == jnp.reshape(positions, (1, 1, length))
    ids_shuffle = jnp.sum(jnp.where(is_rank, jnp.reshape(positions, (1, length, 1)), 0), axis=1)
    keep = config.len_keep
    ids_keep = jnp.broadcast_to(jnp.expand_dims(ids_shuffle[:, :keep], 2), (batch, keep, hidden))
    kept = jnp.take_along_axis(sequence, ids_keep, axis=1)
    mask = jnp.asarray(rank >= keep, jnp.float32)
    return kept, mask, jnp.asarray(rank, jnp.int32)


class ViTMAEEmbeddings(nn.Module):
    """Patch embeddings + positions, random masking, then [CLS] (+ its position) in front."""
    config: ViTMAEConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.cls_token = self.param("cls_token", P.zeros_init(), (1, 1, c.hidden_size), self.param_dtype)
        self.patch_embeddings = ViTPatchEmbeddings(c, self.dtype, self.param_dtype)
        self.position_embeddings = self.param("position_embeddings", P.zeros_init(),
                                              (1, c.num_patches + 1, c.hidden_size), self.param_dtype)

    def __call__(self, pixel_values, noise=None):
        c = self.config
        batch, _, height, width = jnp.shape(pixel_values)
        if (height, width) != c.image_hw:
            raise ValueError(f"Input image size ({height}*{width}) doesn't match model ({c.image_hw[0]}*"
                             f"{c.image_hw[1]}); Rosetta's ViTMAE runs at the configured image_size only.")
        positions = jnp.asarray(self.position_embeddings, self.dtype)
        embeddings = self.patch_embeddings(pixel_values) + positions[:, 1:]
        embeddings, mask, ids_restore = random_masking(c, embeddings, noise)
        cls = jnp.asarray(self.cls_token, self.dtype) + positions[:, :1]
        cls = jnp.broadcast_to(cls, (batch, 1, c.hidden_size))
        return jnp.concatenate([cls, embeddings], axis=1), mask, ids_restore


class ViTMAEModule(nn.Module):
    """The encoder over the kept patches: embeddings (masking) → ViT layers → layernorm.
    `transformers.ViTMAEModel`."""
    config: ViTMAEConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = ViTMAEEmbeddings(c, self.dtype, self.param_dtype)
        self.encoder = ViTEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, pixel_values, noise=None, interpolate_pos_encoding: bool = False, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(pixel_values, 4)
        if interpolate_pos_encoding:
            raise ValueError("interpolate_pos_encoding=True is not supported by Rosetta's ViTMAE: it runs at the "
                             "configured image_size only; resize the images to it")
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden, mask, ids_restore = self.embeddings(pixel_values, noise)
        encoded = self.encoder(hidden, deterministic, output_attentions, output_hidden_states)
        return outputs.ViTMAEModelOutput(last_hidden_state=self.layernorm(encoded.last_hidden_state), mask=mask,
                                 ids_restore=ids_restore, hidden_states=encoded.hidden_states,
                                 attentions=encoded.attentions)


class ViTMAEDecoder(nn.Module):
    """decoder_embed → mask tokens for the dropped patches, unshuffled → + decoder_pos_embed →
    ViT layers of the decoder's size → decoder_norm → decoder_pred (pixels per patch)."""
    config: ViTMAEConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        d = c.decoder_hidden_size
        self.decoder_embed = P.Dense(d, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.mask_token = self.param("mask_token", P.zeros_init(), (1, 1, d), self.param_dtype)
        self.decoder_pos_embed = self.param("decoder_pos_embed", P.zeros_init(), (1, c.num_patches + 1, d),
                                            self.param_dtype)
        self.decoder_layers = ViTEncoder(c.decoder_config, self.dtype, self.param_dtype, self.remat)
        self.decoder_norm = P.LayerNorm(d, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.decoder_pred = P.Dense(c.patch_size * c.patch_size * c.num_channels, d, True, c.initializer_range,
                                    self.dtype, self.param_dtype)

    def __call__(self, hidden, ids_restore, deterministic: bool = True):
        c = self.config
        hidden = self.decoder_embed(hidden)
        batch, kept, width = jnp.shape(hidden)
        patches = jnp.shape(ids_restore)[1]
        mask_tokens = jnp.broadcast_to(jnp.asarray(self.mask_token, self.dtype), (batch, patches + 1 - kept, width))
        tokens = jnp.concatenate([hidden[:, 1:], mask_tokens], axis=1)
        index = jnp.broadcast_to(jnp.expand_dims(ids_restore, 2), (batch, patches, width))
        tokens = jnp.take_along_axis(tokens, index, axis=1)
        hidden = jnp.concatenate([hidden[:, :1], tokens], axis=1) + jnp.asarray(self.decoder_pos_embed, self.dtype)
        hidden = self.decoder_layers(hidden, deterministic).last_hidden_state
        logits = self.decoder_pred(self.decoder_norm(hidden))
        return logits[:, 1:]


def patchify(config, pixel_values):
    """(batch, channels, height, width) → (batch, patches, patch**2 * channels), the pixel order
    of transformers' ViTMAEForPreTraining.patchify (row, column, channel within a patch)."""
    batch, channels, height, width = jnp.shape(pixel_values)
    p = config.patch_size
    rows = height // p
    cols = width // p
    x = jnp.reshape(pixel_values, (batch, channels, rows, p, cols, p))
    x = jnp.transpose(x, (0, 2, 4, 3, 5, 1))
    return jnp.reshape(x, (batch, rows * cols, p * p * channels))


def reconstruction_loss(config, pixel_values, logits, mask):
    """Mean squared error per patch (targets normalised per patch with norm_pix_loss, unbiased
    variance as torch's .var), averaged over the masked patches."""
    target = jnp.asarray(patchify(config, pixel_values), jnp.float32)
    if config.norm_pix_loss:
        size = jnp.shape(target)[-1]
        mean = jnp.mean(target, axis=-1, keepdims=True)
        var = jnp.sum(jnp.square(target - mean), axis=-1, keepdims=True) / (size - 1)
        target = (target - mean) / jnp.power(var + 1.0e-6, 0.5)
    per_patch = jnp.mean(jnp.square(jnp.asarray(logits, jnp.float32) - target), axis=-1)
    return jnp.sum(per_patch * mask) / jnp.sum(mask)


class ViTMAEForPreTraining(nn.Module):
    """Encoder over the kept patches + decoder reconstructing every patch; the loss is the pixel
    MSE over the masked patches. `transformers.ViTMAEForPreTraining`."""
    config: ViTMAEConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.vit = ViTMAEModule(self.config, self.dtype, self.param_dtype, self.remat)
        self.decoder = ViTMAEDecoder(self.config, self.dtype, self.param_dtype, self.remat)

    def __call__(self, pixel_values, noise=None, interpolate_pos_encoding: bool = False, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.vit(pixel_values, noise, interpolate_pos_encoding, deterministic, output_attentions,
                        output_hidden_states)
        logits = self.decoder(base.last_hidden_state, base.ids_restore, deterministic)
        loss = reconstruction_loss(self.config, jnp.asarray(pixel_values, self.dtype), logits, base.mask)
        return outputs.ViTMAEForPreTrainingOutput(loss=loss, logits=logits, mask=base.mask, ids_restore=base.ids_restore,
                                          hidden_states=base.hidden_states, attentions=base.attentions)
