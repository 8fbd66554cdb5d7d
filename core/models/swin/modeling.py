"""Swin Transformer: patch embeddings, stages of (shifted-)window attention blocks joined by
patch merging, and the heads (image classification, SimMIM masked image modeling), in the
portable Flax subset.

Inputs are `pixel_values` (batch, channels, height, width), channels-first as in
`transformers`; images whose size is not a multiple of the patch size are zero-padded at the
bottom/right first. Tokens are (batch, height * width, channels) in row-major order.

Every spatial decision (window clipping, padding to whole windows, the shifted-window mask,
patch-merging padding) depends only on static shapes, so it is plain Python at trace time: the
relative-position index and the shift mask are built as Python lists and become constants.

Stages and blocks are explicit per-layer modules (`encoder/layers_{i}/blocks_{j}`), not a
`P.Repeat` scan: blocks alternate between shift 0 and window_size // 2 (and stage widths
differ), so the layers of a stage do not share one traced body.

Outputs follow transformers v5: `hidden_states` / `reshaped_hidden_states` hold the embeddings
and each stage's output (after its patch merging); `attentions` hold, per stage, the attention
weights of the stage's last block, (batch * windows, heads, window², window²).
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import conv
from core.layers import losses
from core.layers import mlp as M
from core.layers import positions as pos
from core.layers import prims as P
from core.models.swin.config import SwinConfig
from core.models.vit.modeling import pixel_shuffle, reconstruction_loss


# -- static window geometry (Python, at trace time) ----------------------------------------------

def shift_mask(height: int, width: int, window: int, shift: int) -> list:
    """(windows, window², window²) additive mask of the shifted windows of a (height, width)
    map (already padded to whole windows): 0 inside a region, -100 across regions."""
    def region(index, size):
        return int(index >= size - window) + int(index >= size - shift)

    windows = []
    for top in range(0, height, window):
        for left in range(0, width, window):
            labels = [region(top + i, height) * 3 + region(left + j, width)
                      for i in range(window) for j in range(window)]
            windows.append([[0.0 if a == b else -100.0 for b in labels] for a in labels])
    return windows


def window_and_shift(config: SwinConfig, height: int, width: int, shifted: bool) -> tuple:
    """transformers' set_shift_and_window_size: a window at least as large as the map becomes
    the map's smaller side, without a shift."""
    window = config.window_size
    shift = window // 2 if shifted else 0
    if min(height, width) <= window:
        window = min(height, width)
        shift = 0
        if window != config.window_size:
            raise ValueError(f"Swin: a {height}x{width} feature map is smaller than window_size="
                             f"{config.window_size}; the relative position table is sized for the configured window "
                             "(transformers v5 fails here too): use larger images or a smaller window_size")
    return window, shift


def pad_bottom_right(x, pad_h: int, pad_w: int):
    """Zero-pad a channels-last (batch, height, width, channels) map at the bottom and right."""
    batch, height, width, channels = jnp.shape(x)
    if pad_w > 0:
        x = jnp.concatenate([x, jnp.zeros((batch, height, pad_w, channels), x.dtype)], axis=2)
    if pad_h > 0:
        x = jnp.concatenate([x, jnp.zeros((batch, pad_h, width + pad_w, channels), x.dtype)], axis=1)
    return x


def roll2d(x, shift: int):
    """torch.roll(x, (shift, shift), dims=(1, 2)) for a static shift (negative: up/left)."""
    _, height, width, _ = jnp.shape(x)
    rows = shift % height
    cols = shift % width
    if rows:
        x = jnp.concatenate([x[:, height - rows:], x[:, :height - rows]], axis=1)
    if cols:
        x = jnp.concatenate([x[:, :, width - cols:], x[:, :, :width - cols]], axis=2)
    return x


def window_partition(x, window: int):
    """(batch, height, width, channels) → (batch * windows, window², channels), windows in
    row-major order per image."""
    batch, height, width, channels = jnp.shape(x)
    x = jnp.reshape(x, (batch, height // window, window, width // window, window, channels))
    x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
    return jnp.reshape(x, (batch * (height // window) * (width // window), window * window, channels))


def window_reverse(windows, window: int, batch: int, height: int, width: int):
    """The inverse of `window_partition`."""
    channels = jnp.shape(windows)[-1]
    x = jnp.reshape(windows, (batch, height // window, width // window, window, window, channels))
    x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
    return jnp.reshape(x, (batch, height, width, channels))


def to_maps(hidden, height: int, width: int):
    """(batch, height * width, channels) tokens → (batch, channels, height, width)."""
    batch, _, channels = jnp.shape(hidden)
    return conv.channels_first(jnp.reshape(hidden, (batch, height, width, channels)))


# -- embeddings ----------------------------------------------------------------------------------

class SwinPatchEmbeddings(nn.Module):
    """(batch, channels, height, width) → ((batch, patches, embed_dim), (rows, cols)): the
    image zero-padded to whole patches, then a Conv with stride = kernel = patch size."""
    config: SwinConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.projection = P.Conv(c.embed_dim, c.num_channels, c.patch_hw, c.patch_hw, "VALID", 1, 1, True,
                                 c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values):
        chex.assert_rank(pixel_values, 4)
        c = self.config
        batch, channels, height, width = jnp.shape(pixel_values)
        if channels != c.num_channels:
            raise ValueError("Make sure that the channel dimension of the pixel values match with the one set in "
                             f"the configuration. Expected {c.num_channels} but got {channels}.")
        x = jnp.transpose(pixel_values, (0, 2, 3, 1))
        patch_h, patch_w = c.patch_hw
        x = pad_bottom_right(x, (patch_h - height % patch_h) % patch_h, (patch_w - width % patch_w) % patch_w)
        patches = self.projection(x)
        _, rows, cols, hidden = jnp.shape(patches)
        return jnp.reshape(patches, (batch, rows * cols, hidden)), (rows, cols)


class SwinEmbeddings(nn.Module):
    """Patch embeddings → LayerNorm (eps 1e-5, torch's default: transformers does not pass the
    config's) → mask token where masked → absolute positions (if configured) → dropout."""
    config: SwinConfig
    use_mask_token: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.patch_embeddings = SwinPatchEmbeddings(c, self.dtype, self.param_dtype)
        if self.use_mask_token:
            self.mask_token = self.param("mask_token", P.zeros_init(), (1, 1, c.embed_dim), self.param_dtype)
        if c.use_absolute_embeddings:
            self.position_embeddings = self.param("position_embeddings", P.zeros_init(),
                                                  (1, c.num_patches, c.embed_dim), self.param_dtype)
        self.norm = P.LayerNorm(c.embed_dim, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True):
        c = self.config
        embeddings, grid = self.patch_embeddings(pixel_values)
        embeddings = self.norm(embeddings)
        if bool_masked_pos is not None:
            mask = jnp.asarray(jnp.expand_dims(bool_masked_pos, -1), self.dtype)
            embeddings = embeddings * (1.0 - mask) + jnp.asarray(self.mask_token, self.dtype) * mask
        if c.use_absolute_embeddings:
            if grid[0] * grid[1] != c.num_patches:
                raise ValueError(f"Swin: absolute position embeddings cover {c.grid_hw[0]}x{c.grid_hw[1]} patches, "
                                 f"the image gives {grid[0]}x{grid[1]}; Rosetta does not interpolate them")
            embeddings = embeddings + jnp.asarray(self.position_embeddings, self.dtype)
        return self.dropout(embeddings, deterministic=deterministic), grid


# -- window attention ----------------------------------------------------------------------------

class SwinSelfAttention(nn.Module):
    """Multi-head attention inside windows, plus the learned relative position bias (table
    (2w-1)², heads, gathered by the static index) and the shifted-window mask."""
    config: SwinConfig
    dim: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.query = P.Dense(self.dim, self.dim, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        self.key = P.Dense(self.dim, self.dim, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        self.value = P.Dense(self.dim, self.dim, c.qkv_bias, c.initializer_range, self.dtype, self.param_dtype)
        side = 2 * c.window_size - 1
        self.relative_position_bias_table = self.param("relative_position_bias_table", P.zeros_init(),
                                                       (side * side, self.num_heads), self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)

    def position_bias(self):
        """(1, heads, window², window²) bias of the configured window."""
        window = self.config.window_size
        return pos.gather_relative_bias(jnp.asarray(self.relative_position_bias_table, self.dtype),
                                        pos.grid_relative_position_index(window, window))

    def __call__(self, windows, mask=None, deterministic: bool = True, output_attentions: bool = False):
        """windows (batch * num_windows, window², dim); mask (num_windows, window², window²) or None."""
        count, length, _ = jnp.shape(windows)
        head_dim = self.dim // self.num_heads
        heads_shape = (count, length, self.num_heads, head_dim)
        q = jnp.reshape(self.query(windows), heads_shape)
        k = jnp.reshape(self.key(windows), heads_shape)
        v = jnp.reshape(self.value(windows), heads_shape)
        bias = self.position_bias()
        if mask is not None:
            num_windows = jnp.shape(mask)[0]
            tiled = jnp.broadcast_to(jnp.expand_dims(mask, 0), (count // num_windows, num_windows, length, length))
            bias = bias + jnp.reshape(tiled, (count, 1, length, length))
        context, weights = self.core(q, k, v, bias=bias, deterministic=deterministic,
                                     return_weights=output_attentions)
        return jnp.reshape(context, (count, length, self.dim)), weights


class SwinAttention(nn.Module):
    config: SwinConfig
    dim: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self = SwinSelfAttention(c, self.dim, self.num_heads, self.dtype, self.param_dtype)
        self.output = M.DenseDropout(self.dim, self.dim, c.hidden_dropout_prob, c.initializer_range, self.dtype,
                                     self.param_dtype)

    def __call__(self, windows, mask=None, deterministic: bool = True, output_attentions: bool = False):
        context, weights = self.self(windows, mask, deterministic, output_attentions)
        return self.output(context, deterministic), weights


class SwinDropPath(nn.Module):
    """Stochastic depth: each sample's residual branch is dropped with probability `rate` (and
    the kept ones scaled by 1 / (1 - rate)) in training; the identity when deterministic. The
    per-sample factor is dropout applied to ones."""
    rate: float = 0.0

    def setup(self):
        self.dropout = P.Dropout(self.rate)

    def __call__(self, x, deterministic: bool = True):
        if self.rate == 0.0:
            return x
        batch = jnp.shape(x)[0]
        return x * self.dropout(jnp.ones((batch, 1, 1), x.dtype), deterministic=deterministic)


class SwinLayer(nn.Module):
    """One block: LayerNorm → (shifted) window attention → residual; LayerNorm → MLP →
    residual. `shifted` blocks roll the map by window_size // 2 (unless the window is clipped)."""
    config: SwinConfig
    dim: int
    num_heads: int
    shifted: bool = False
    drop_path_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.layernorm_before = P.LayerNorm(self.dim, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attention = SwinAttention(c, self.dim, self.num_heads, self.dtype, self.param_dtype)
        self.drop_path = SwinDropPath(self.drop_path_rate)
        self.layernorm_after = P.LayerNorm(self.dim, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        mlp_dim = int(c.mlp_ratio * self.dim)
        self.intermediate = M.DenseActivation(mlp_dim, self.dim, c.hidden_act, c.initializer_range, self.dtype,
                                              self.param_dtype)
        self.output = M.DenseDropout(self.dim, mlp_dim, c.hidden_dropout_prob, c.initializer_range, self.dtype,
                                     self.param_dtype)

    def __call__(self, hidden, height: int, width: int, deterministic: bool = True,
                 output_attentions: bool = False):
        batch, _, channels = jnp.shape(hidden)
        window, shift = window_and_shift(self.config, height, width, self.shifted)
        x = jnp.reshape(self.layernorm_before(hidden), (batch, height, width, channels))
        pad_h = (window - height % window) % window
        pad_w = (window - width % window) % window
        x = pad_bottom_right(x, pad_h, pad_w)
        padded_h = height + pad_h
        padded_w = width + pad_w
        mask = None
        if shift > 0:
            x = roll2d(x, -shift)
            mask = jnp.asarray(shift_mask(padded_h, padded_w, window, shift), self.dtype)
        attended, weights = self.attention(window_partition(x, window), mask, deterministic, output_attentions)
        x = window_reverse(attended, window, batch, padded_h, padded_w)
        if shift > 0:
            x = roll2d(x, shift)
        x = jnp.reshape(x[:, :height, :width], (batch, height * width, channels))
        hidden = hidden + self.drop_path(x, deterministic)
        mlp = self.output(self.intermediate(self.layernorm_after(hidden)), deterministic)
        return hidden + self.drop_path(mlp, deterministic), weights


class SwinPatchMerging(nn.Module):
    """(batch, h * w, dim) → (batch, ceil(h/2) * ceil(w/2), 2 * dim): odd sides zero-padded, each
    2x2 neighbourhood concatenated (order (0,0), (1,0), (0,1), (1,1)), LayerNorm (eps 1e-5,
    torch's default), a bias-free reduction."""
    config: SwinConfig
    dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.norm = P.LayerNorm(4 * self.dim, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.reduction = P.Dense(2 * self.dim, 4 * self.dim, False, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden, height: int, width: int):
        batch, _, channels = jnp.shape(hidden)
        x = pad_bottom_right(jnp.reshape(hidden, (batch, height, width, channels)), height % 2, width % 2)
        rows = (height + 1) // 2
        cols = (width + 1) // 2
        x = jnp.reshape(x, (batch, rows, 2, cols, 2, channels))
        x = jnp.reshape(jnp.transpose(x, (0, 1, 3, 4, 2, 5)), (batch, rows * cols, 4 * channels))
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """`depth` blocks (shift 0, window // 2, 0, ...) then patch merging (all stages but the last)."""
    config: SwinConfig
    stage: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        dim = c.stage_dim(self.stage)
        first = sum(c.depths[:self.stage])
        total = sum(c.depths)
        self.blocks = [SwinLayer(c, dim, c.num_heads[self.stage], j % 2 == 1,
                                 c.drop_path_rate * (first + j) / max(total - 1, 1), self.dtype, self.param_dtype)
                       for j in range(c.depths[self.stage])]
        if self.stage < len(c.depths) - 1:
            self.downsample = SwinPatchMerging(c, dim, self.dtype, self.param_dtype)

    def __call__(self, hidden, height: int, width: int, deterministic: bool = True,
                 output_attentions: bool = False):
        weights = None
        for block in self.blocks:
            hidden, weights = block(hidden, height, width, deterministic, output_attentions)
        if self.stage < len(self.config.depths) - 1:
            hidden = self.downsample(hidden, height, width)
            height = (height + 1) // 2
            width = (width + 1) // 2
        return hidden, (height, width), weights


class SwinEncoder(nn.Module):
    config: SwinConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.layers = [SwinStage(self.config, i, self.dtype, self.param_dtype) for i in range(len(self.config.depths))]

    def __call__(self, hidden, grid: tuple, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        height, width = grid
        all_hidden = (hidden,)
        all_maps = (to_maps(hidden, height, width),)
        all_attentions = ()
        for stage in self.layers:
            hidden, (height, width), weights = stage(hidden, height, width, deterministic, output_attentions)
            all_hidden = all_hidden + (hidden,)
            all_maps = all_maps + (to_maps(hidden, height, width),)
            all_attentions = all_attentions + (weights,)
        return outputs.SwinModelOutput(last_hidden_state=hidden,
                                       hidden_states=all_hidden if output_hidden_states else None,
                                       attentions=all_attentions if output_attentions else None,
                                       reshaped_hidden_states=all_maps if output_hidden_states else None)


class SwinModule(nn.Module):
    """The bare encoder: embeddings → stages → LayerNorm (→ mean over tokens as pooler_output).
    `transformers.SwinModel`."""
    config: SwinConfig
    add_pooling_layer: bool = True
    use_mask_token: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = SwinEmbeddings(c, self.use_mask_token, self.dtype, self.param_dtype)
        self.encoder = SwinEncoder(c, self.dtype, self.param_dtype)
        self.layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden, grid = self.embeddings(pixel_values, bool_masked_pos, deterministic)
        encoded = self.encoder(hidden, grid, deterministic, output_attentions, output_hidden_states)
        sequence = self.layernorm(encoded.last_hidden_state)
        pooled = None
        if self.add_pooling_layer:
            pooled = jnp.mean(sequence, axis=1)
        return outputs.SwinModelOutput(last_hidden_state=sequence, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions,
                                       reshaped_hidden_states=encoded.reshaped_hidden_states)


# -- heads ---------------------------------------------------------------------------------------

class SwinForImageClassification(nn.Module):
    """A linear classifier on the mean of the final tokens."""
    config: SwinConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.swin = SwinModule(c, True, False, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.swin(pixel_values, None, deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(base.pooler_output)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type, self.config.num_labels)
        return outputs.SwinImageClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions,
                                                 reshaped_hidden_states=base.reshaped_hidden_states)


class SwinMIMDecoder(nn.Module):
    """The SimMIM decoder: a 1x1 Conv to encoder_stride² * channels over the final (square)
    token grid, then PixelShuffle."""
    config: SwinConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.conv = P.Conv(c.encoder_stride * c.encoder_stride * c.num_channels, c.hidden_size, (1, 1), 1, "VALID",
                           1, 1, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, sequence):
        c = self.config
        batch, length, hidden = jnp.shape(sequence)
        side = int(length ** 0.5)
        if side * side != length:
            raise ValueError(f"Swin masked image modeling needs a square final token grid, got {length} tokens")
        grid = jnp.reshape(sequence, (batch, side, side, hidden))
        return pixel_shuffle(self.conv(grid), c.num_channels, c.encoder_stride)


class SwinForMaskedImageModeling(nn.Module):
    """SimMIM: the mask token replaces masked patches; the decoder reconstructs the pixels;
    the loss is the mean L1 over masked pixels, per channel."""
    config: SwinConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.swin = SwinModule(self.config, False, True, self.dtype, self.param_dtype, self.remat)
        self.decoder = SwinMIMDecoder(self.config, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, bool_masked_pos=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.swin(pixel_values, bool_masked_pos, deterministic, output_attentions, output_hidden_states)
        reconstruction = self.decoder(base.last_hidden_state)
        loss = None
        if bool_masked_pos is not None:
            loss = reconstruction_loss(self.config, pixel_values, reconstruction, bool_masked_pos)
        return outputs.SwinMaskedImageModelingOutput(loss=loss, reconstruction=reconstruction,
                                                     hidden_states=base.hidden_states, attentions=base.attentions,
                                                     reshaped_hidden_states=base.reshaped_hidden_states)
