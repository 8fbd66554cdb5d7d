"""Building blocks of convolutional networks beyond the primitive `P.Conv` (canonical, portable
subset): the grouped positional conv of the speech encoders, max pooling, and the
channels-first layout vision models return."""
import flax.linen as nn
import jax.numpy as jnp

from core.layers import prims as P


class GroupedConv1D(nn.Module):
    """A grouped 1-D conv with torch's weight layout (out, in/groups, kernel), "same" length
    output: pad kernel//2 on both sides and keep the first `time` outputs (transformers'
    SamePadLayer drops the last one for even kernels). With `weight_norm` the kernel is
    g·v/‖v‖ (torch's weight_norm(dim=2): g (1, 1, kernel), the norm over the other axes).
    Computed as one einsum per kernel tap over shifted slices (portable; no lax.conv)."""
    features: int
    kernel_size: int
    groups: int
    weight_norm: bool = True
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        shape = (self.features, self.features // self.groups, self.kernel_size)
        if self.weight_norm:
            self.weight_g = self.param("weight_g", P.ones_init(), (1, 1, self.kernel_size), self.param_dtype)
            self.weight_v = self.param("weight_v", P.normal_init(self.init_std), shape, self.param_dtype)
        else:
            self.weight = self.param("weight", P.normal_init(self.init_std), shape, self.param_dtype)
        self.bias = self.param("bias", P.zeros_init(), (self.features,), self.param_dtype)

    def kernel(self):
        if not self.weight_norm:
            return jnp.asarray(self.weight, jnp.float32)
        v = jnp.asarray(self.weight_v, jnp.float32)
        norm = jnp.power(jnp.sum(jnp.square(v), axis=(0, 1), keepdims=True), 0.5)
        return jnp.asarray(self.weight_g, jnp.float32) * v / norm

    def __call__(self, hidden):
        batch, time, features = jnp.shape(hidden)
        groups = self.groups
        per_group = features // groups
        pad = self.kernel_size // 2
        zeros = jnp.zeros((batch, pad, features), self.dtype)
        padded = jnp.concatenate([zeros, jnp.asarray(hidden, self.dtype), zeros], axis=1)
        kernel = jnp.asarray(jnp.reshape(self.kernel(), (groups, per_group, per_group, self.kernel_size)), self.dtype)
        out = jnp.zeros((batch, time, groups, per_group), self.dtype)
        for k in range(self.kernel_size):
            window = jnp.reshape(padded[:, k:k + time], (batch, time, groups, per_group))
            out = out + jnp.einsum("btgi,goi->btgo", window, kernel[:, :, :, k])
        return jnp.reshape(out, (batch, time, features)) + jnp.asarray(self.bias, self.dtype)


def channels_first(x):
    """(batch, height, width, channels) → (batch, channels, height, width)."""
    return jnp.transpose(x, (0, 3, 1, 2))


def max_pool_2d(x, window: int, stride: int, padding: int, dtype):
    """torch's MaxPool2d(window, stride, padding) (floor mode) on channels-last (batch, height,
    width, channels): pad `padding` rows/columns of the dtype's lowest value on each side (torch
    pads with -inf and requires padding <= window // 2, so no window is all padding), then the
    maximum of the window² strided shifted views."""
    batch, height, width, channels = jnp.shape(x)
    rows = (height + 2 * padding - window) // stride + 1
    cols = (width + 2 * padding - window) // stride + 1
    if padding > 0:
        low = jnp.finfo(dtype).min
        rim = jnp.full((batch, padding, width, channels), low, dtype)
        x = jnp.concatenate([rim, x, rim], axis=1)
        rim = jnp.full((batch, height + 2 * padding, padding, channels), low, dtype)
        x = jnp.concatenate([rim, x, rim], axis=2)
    span_rows = stride * (rows - 1) + 1
    span_cols = stride * (cols - 1) + 1
    pooled = x[:, 0:span_rows:stride, 0:span_cols:stride]
    for i in range(window):
        for j in range(window):
            if i + j > 0:
                pooled = jnp.maximum(pooled, x[:, i:i + span_rows:stride, j:j + span_cols:stride])
    return pooled
