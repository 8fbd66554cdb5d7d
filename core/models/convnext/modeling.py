"""ConvNeXT: patchify stem (a strided `P.Conv` + LayerNorm over channels), stages of
[downsampling (LayerNorm + 2x2 stride-2 conv)] + blocks (depthwise 7x7 conv, LayerNorm, MLP
4x, layer scale, residual), a final LayerNorm of the global average pool, and the classifier,
in the portable Flax subset.

Inputs are `pixel_values` (batch, channels, height, width), channels-first as in
`transformers`; the stem transposes them to channels-last, where every conv and LayerNorm
runs (LayerNorm over the last axis = transformers' channels-first LayerNorm). Spatial outputs
(`last_hidden_state`, `hidden_states`) are returned channels-first, as `transformers` returns
them. Drop path (stochastic depth) is the identity at inference; it is not applied in training
mode either (a nonzero `drop_path_rate` is accepted, so checkpoints trained with it load, but
`deterministic=False` then differs from transformers' training forward).

Submodule names follow the `transformers` checkpoint layout (embeddings/{patch_embeddings,
layernorm}, encoder/stages_N/{downsampling_layer_0,1, layers}, layernorm, classifier).
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import conv
from core.layers import losses
from core.layers import prims as P
from core.models.convnext.config import ConvNextConfig


class ConvNextEmbeddings(nn.Module):
    """(batch, channels, height, width) → channels-last patches: Conv(stride = kernel = patch)
    then LayerNorm (epsilon 1e-6, fixed as in transformers)."""
    config: ConvNextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.patch_embeddings = P.Conv(c.hidden_sizes[0], c.num_channels, c.patch_hw, c.patch_hw, "VALID", 1, 1,
                                       True, c.initializer_range, self.dtype, self.param_dtype)
        self.layernorm = P.LayerNorm(c.hidden_sizes[0], 1e-6, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, pixel_values):
        chex.assert_rank(pixel_values, 4)
        channels = jnp.shape(pixel_values)[1]
        if channels != self.config.num_channels:
            raise ValueError("Make sure that the channel dimension of the pixel values match with the one set in "
                             "the configuration.")
        embeddings = self.patch_embeddings(jnp.transpose(pixel_values, (0, 2, 3, 1)))
        return self.layernorm(embeddings)


class ConvNextLayer(nn.Module):
    """One block on channels-last features; the `Repeat` body: (hidden,) → (hidden, None)."""
    config: ConvNextConfig
    dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = self.dim
        self.dwconv = P.Conv(d, d, (7, 7), 1, 3, 1, d, True, c.initializer_range, self.dtype, self.param_dtype)
        self.layernorm = P.LayerNorm(d, 1e-6, dtype=self.dtype, param_dtype=self.param_dtype)
        self.pwconv1 = P.Dense(4 * d, d, True, c.initializer_range, self.dtype, self.param_dtype)
        self.pwconv2 = P.Dense(d, 4 * d, True, c.initializer_range, self.dtype, self.param_dtype)
        if c.has_layer_scale:
            self.layer_scale_parameter = self.param("layer_scale_parameter", P.zeros_init(), (d,),
                                                    self.param_dtype)

    def __call__(self, hidden):
        features = self.layernorm(self.dwconv(hidden))
        features = self.pwconv2(P.act(self.pwconv1(features), self.config.hidden_act))
        if self.config.has_layer_scale:
            features = jnp.asarray(self.layer_scale_parameter, self.dtype) * features
        return hidden + features, None


class ConvNextStage(nn.Module):
    """[LayerNorm + 2x2 stride-2 conv when the size or width changes] + `depth` blocks."""
    config: ConvNextConfig
    in_channels: int
    out_channels: int
    stride: int
    depth: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if self.in_channels != self.out_channels or self.stride > 1:
            self.downsampling_layer = [
                P.LayerNorm(self.in_channels, 1e-6, dtype=self.dtype, param_dtype=self.param_dtype),
                P.Conv(self.out_channels, self.in_channels, (self.stride, self.stride), self.stride, "VALID", 1, 1,
                       True, c.initializer_range, self.dtype, self.param_dtype),
            ]
        kwargs = {"config": c, "dim": self.out_channels, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(ConvNextLayer, self.depth, kwargs, remat=self.remat)

    def __call__(self, hidden):
        if self.in_channels != self.out_channels or self.stride > 1:
            hidden = self.downsampling_layer[1](self.downsampling_layer[0](hidden))
        hidden, _ = self.layers(hidden)
        return hidden


class ConvNextEncoder(nn.Module):
    config: ConvNextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        sizes = c.hidden_sizes
        self.stages = [ConvNextStage(c, sizes[max(i - 1, 0)], sizes[i], 2 if i > 0 else 1, c.depths[i], self.dtype,
                                     self.param_dtype, self.remat) for i in range(c.num_stages)]

    def __call__(self, hidden, output_hidden_states: bool = False):
        """Channels-last in and out; hidden states (embeddings, then each stage) channels-first."""
        all_hidden = (conv.channels_first(hidden),) if output_hidden_states else None
        for stage in self.stages:
            hidden = stage(hidden)
            if output_hidden_states:
                all_hidden = all_hidden + (conv.channels_first(hidden),)
        return hidden, all_hidden


class ConvNextModule(nn.Module):
    """The bare model: embeddings → stages; pooler_output = LayerNorm(mean over height and
    width). `transformers.ConvNextModel`."""
    config: ConvNextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = ConvNextEmbeddings(c, self.dtype, self.param_dtype)
        self.encoder = ConvNextEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.layernorm = P.LayerNorm(c.hidden_sizes[-1], c.layer_norm_eps, dtype=self.dtype,
                                     param_dtype=self.param_dtype)

    def __call__(self, pixel_values, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden, all_hidden = self.encoder(self.embeddings(pixel_values), output_hidden_states)
        pooled = self.layernorm(jnp.mean(hidden, axis=(1, 2)))
        return outputs.BaseModelOutput(last_hidden_state=conv.channels_first(hidden), pooler_output=pooled,
                                       hidden_states=all_hidden)


class ConvNextForImageClassification(nn.Module):
    """A linear classifier on the pooled features."""
    config: ConvNextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.convnext = ConvNextModule(c, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_sizes[-1], True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, pixel_values, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.convnext(pixel_values, deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(base.pooler_output)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
