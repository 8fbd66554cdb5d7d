"""ResNet: the stem (7x7 stride-2 conv + BatchNorm + activation, 3x3 stride-2 max pool), stages
of basic (two 3x3 convs) or bottleneck (1x1 narrow, 3x3, 1x1 widen) residual blocks with a 1x1
conv + BatchNorm shortcut where the shape changes, adaptive average pooling to 1x1, and the
classifier, in the portable Flax subset.

Inputs are `pixel_values` (batch, channels, height, width), channels-first as in
`transformers`; the stem transposes them to channels-last, where every conv and BatchNorm runs.
Spatial outputs (`last_hidden_state`, `hidden_states`, the (batch, channels, 1, 1)
`pooler_output`) are returned channels-first, as `transformers` returns them.

BatchNorm: `deterministic=True` (inference) normalises with the running statistics (the `mean`
/ `var` leaves of every `normalization`); `deterministic=False` normalises with the batch's
statistics, as torch's training mode does, but the updated running averages are not written
back (a pure function has nowhere to put them): train with frozen statistics or update them
outside the model.

Submodule names follow the `transformers` checkpoint layout (embedder/embedder/{convolution,
normalization}, encoder/stages_N/layers_M/{shortcut, layer_K}, classifier (`classifier.1`)).
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import conv
from core.layers import losses
from core.layers import prims as P
from core.models.resnet.config import ResNetConfig


class ResNetConvLayer(nn.Module):
    """Conv (padding kernel // 2, no bias) → BatchNorm → activation ("linear": none)."""
    config: ResNetConfig
    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    activation: str = "relu"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        k = self.kernel_size
        self.convolution = P.Conv(self.out_channels, self.in_channels, (k, k), self.stride, k // 2, 1, 1, False,
                                  self.config.initializer_range, self.dtype, self.param_dtype)
        self.normalization = P.BatchNorm(self.out_channels, 1e-5, 0.1, True, self.dtype, self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True):
        hidden, _ = self.normalization(self.convolution(hidden), deterministic)
        return P.act(hidden, self.activation)


class ResNetEmbeddings(nn.Module):
    """(batch, channels, height, width) → channels-last: 7x7 stride-2 conv layer, max pool."""
    config: ResNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.embedder = ResNetConvLayer(c, c.num_channels, c.embedding_size, 7, 2, c.hidden_act, self.dtype,
                                        self.param_dtype)

    def __call__(self, pixel_values, deterministic: bool = True):
        chex.assert_rank(pixel_values, 4)
        channels = jnp.shape(pixel_values)[1]
        if channels != self.config.num_channels:
            raise ValueError("Make sure that the channel dimension of the pixel values match with the one set in "
                             "the configuration.")
        embedding = self.embedder(jnp.transpose(pixel_values, (0, 2, 3, 1)), deterministic)
        return conv.max_pool_2d(embedding, 3, 2, 1, self.dtype)


class ResNetShortCut(nn.Module):
    """1x1 conv (strided) + BatchNorm: the residual projected to the block's output shape."""
    config: ResNetConfig
    in_channels: int
    out_channels: int
    stride: int = 2
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.convolution = P.Conv(self.out_channels, self.in_channels, (1, 1), self.stride, "VALID", 1, 1, False,
                                  self.config.initializer_range, self.dtype, self.param_dtype)
        self.normalization = P.BatchNorm(self.out_channels, 1e-5, 0.1, True, self.dtype, self.param_dtype)

    def __call__(self, hidden, deterministic: bool = True):
        hidden, _ = self.normalization(self.convolution(hidden), deterministic)
        return hidden


class ResNetBasicLayer(nn.Module):
    """Two 3x3 conv layers (the first strided, ReLU; the second without activation) + the
    shortcut, then the configured activation."""
    config: ResNetConfig
    in_channels: int
    out_channels: int
    stride: int = 1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if self.in_channels != self.out_channels or self.stride != 1:
            self.shortcut = ResNetShortCut(c, self.in_channels, self.out_channels, self.stride, self.dtype,
                                           self.param_dtype)
        self.layer = [
            ResNetConvLayer(c, self.in_channels, self.out_channels, 3, self.stride, "relu", self.dtype,
                            self.param_dtype),
            ResNetConvLayer(c, self.out_channels, self.out_channels, 3, 1, "linear", self.dtype, self.param_dtype),
        ]

    def __call__(self, hidden, deterministic: bool = True):
        residual = hidden
        for conv_layer in self.layer:
            hidden = conv_layer(hidden, deterministic)
        if self.in_channels != self.out_channels or self.stride != 1:
            residual = self.shortcut(residual, deterministic)
        return P.act(hidden + residual, self.config.hidden_act)


class ResNetBottleNeckLayer(nn.Module):
    """1x1 conv to out // reduction, 3x3 conv, 1x1 conv to out (the stride on the first conv with
    `downsample_in_bottleneck`, else on the 3x3) + the shortcut, then the activation."""
    config: ResNetConfig
    in_channels: int
    out_channels: int
    stride: int = 1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        reduced = self.out_channels // c.reduction
        first_stride = self.stride if c.downsample_in_bottleneck else 1
        middle_stride = 1 if c.downsample_in_bottleneck else self.stride
        if self.in_channels != self.out_channels or self.stride != 1:
            self.shortcut = ResNetShortCut(c, self.in_channels, self.out_channels, self.stride, self.dtype,
                                           self.param_dtype)
        self.layer = [
            ResNetConvLayer(c, self.in_channels, reduced, 1, first_stride, "relu", self.dtype, self.param_dtype),
            ResNetConvLayer(c, reduced, reduced, 3, middle_stride, "relu", self.dtype, self.param_dtype),
            ResNetConvLayer(c, reduced, self.out_channels, 1, 1, "linear", self.dtype, self.param_dtype),
        ]

    def __call__(self, hidden, deterministic: bool = True):
        residual = hidden
        for conv_layer in self.layer:
            hidden = conv_layer(hidden, deterministic)
        if self.in_channels != self.out_channels or self.stride != 1:
            residual = self.shortcut(residual, deterministic)
        return P.act(hidden + residual, self.config.hidden_act)


class ResNetStage(nn.Module):
    """`depth` blocks; the first changes width / resolution (stride), the rest keep them."""
    config: ResNetConfig
    in_channels: int
    out_channels: int
    stride: int = 2
    depth: int = 2
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        block = ResNetBottleNeckLayer if c.layer_type == "bottleneck" else ResNetBasicLayer
        # One list literal / comprehension (the ports wrap exactly those in a module list).
        self.layers = [block(c, self.in_channels if j == 0 else self.out_channels, self.out_channels,
                             self.stride if j == 0 else 1, self.dtype, self.param_dtype) for j in range(self.depth)]

    def __call__(self, hidden, deterministic: bool = True):
        for block in self.layers:
            hidden = block(hidden, deterministic)
        return hidden


class ResNetEncoder(nn.Module):
    config: ResNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        sizes = (c.embedding_size,) + tuple(c.hidden_sizes)
        self.stages = [ResNetStage(c, sizes[i], sizes[i + 1], 2 if (i > 0 or c.downsample_in_first_stage) else 1,
                                   c.depths[i], self.dtype, self.param_dtype) for i in range(len(c.depths))]

    def __call__(self, hidden, deterministic: bool = True, output_hidden_states: bool = False):
        """Channels-last in and out; hidden states (embeddings, then each stage) channels-first."""
        all_hidden = (conv.channels_first(hidden),) if output_hidden_states else None
        for stage in self.stages:
            hidden = stage(hidden, deterministic)
            if output_hidden_states:
                all_hidden = all_hidden + (conv.channels_first(hidden),)
        return hidden, all_hidden


class ResNetModule(nn.Module):
    """The bare model: stem → stages; pooler_output = mean over height and width, kept as
    (batch, channels, 1, 1). `transformers.ResNetModel`."""
    config: ResNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.embedder = ResNetEmbeddings(self.config, self.dtype, self.param_dtype)
        self.encoder = ResNetEncoder(self.config, self.dtype, self.param_dtype)

    def __call__(self, pixel_values, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        pixel_values = jnp.asarray(pixel_values, self.dtype)
        hidden, all_hidden = self.encoder(self.embedder(pixel_values, deterministic), deterministic,
                                          output_hidden_states)
        last = conv.channels_first(hidden)
        pooled = jnp.mean(last, axis=(2, 3), keepdims=True)
        return outputs.BaseModelOutput(last_hidden_state=last, pooler_output=pooled, hidden_states=all_hidden)


class ResNetForImageClassification(nn.Module):
    """A linear classifier on the flattened pooled features (`classifier.1` in transformers)."""
    config: ResNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.resnet = ResNetModule(c, self.dtype, self.param_dtype, self.remat)
        self.classifier = P.Dense(c.num_labels, c.hidden_sizes[-1], True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, pixel_values, labels=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.resnet(pixel_values, deterministic, output_attentions, output_hidden_states)
        pooled = base.pooler_output
        logits = self.classifier(jnp.reshape(pooled, (jnp.shape(pooled)[0], self.config.hidden_sizes[-1])))
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
