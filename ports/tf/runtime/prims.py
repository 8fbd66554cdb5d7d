"""TensorFlow twins of `core/layers/prims.py`: the leaf layers generated code is built from.

Each twin takes the same arguments as its Flax primitive, computes the same function, and owns
its weight layout: `flax_params()` maps each Flax leaf name to (attribute, transposed). TF's own
layouts already are Flax's (a Dense kernel is (in, out), as in Keras), so nothing is transposed
and variables carry the Flax names (`kernel`, `bias`, `embedding`, `scale`).

`deterministic` defaults to True, as in Flax and as `training=False` in Keras: dropout runs
only when a caller passes `deterministic=False`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import tensorflow as tf

from ports.tf.runtime.module import Module  # noqa: F401 (the base class of generated modules)

Initializer = Callable[[tuple, tf.dtypes.DType], tf.Tensor]


# -- initialisers (as Flax's; a parameter is `P.variable(name, init, shape, dtype)`) -------------

def normal_init(std: float) -> Initializer:
    return lambda shape, dtype: tf.cast(tf.random.normal(shape, stddev=std, dtype=tf.float32), dtype)


def zeros_init() -> Initializer:
    return lambda shape, dtype: tf.zeros(shape, dtype=dtype)


def ones_init() -> Initializer:
    return lambda shape, dtype: tf.ones(shape, dtype=dtype)


def variable(name: str, init: Initializer, shape, dtype=tf.float32) -> tf.Variable:
    """A trainable variable holding `init(shape, dtype)` (the twin of Flax's `self.param`)."""
    return tf.Variable(init(tuple(int(s) for s in shape), dtype), name=name, trainable=True)


def _check_features(x, expected: int, layer: str) -> None:
    size = x.shape[-1]
    if size is not None and size != expected:
        raise ValueError(f"{layer}: input has {size} features on its last axis "
                         f"(shape {tuple(x.shape)}); the layer was built for {expected}")


# -- layers --------------------------------------------------------------------------------------

class Dense(tf.Module):
    """y = x @ kernel + bias; `kernel` stored (in_features, features), as Flax and Keras."""

    def __init__(self, features: int, in_features: int, use_bias: bool = True, init_std: float = 0.02,
                 dtype=tf.float32, param_dtype=tf.float32):
        super().__init__()
        self.features, self.in_features, self.use_bias, self.dtype = features, in_features, use_bias, dtype
        self.kernel = variable("kernel", normal_init(init_std), (in_features, features), param_dtype)
        self.bias = variable("bias", zeros_init(), (features,), param_dtype) if use_bias else None

    def flax_params(self) -> dict:
        names = {"kernel": ("kernel", False)}
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def __call__(self, x):
        _check_features(x, self.in_features, "Dense")
        y = tf.tensordot(tf.cast(x, self.dtype), tf.cast(self.kernel, self.dtype), axes=[[x.shape.rank - 1], [0]])
        if self.use_bias:
            y = y + tf.cast(self.bias, self.dtype)
        return y


class Embed(tf.Module):
    """A lookup table (num_embeddings, features); `attend` is the tied output projection.
    Out-of-range ids are clipped, as the Flax primitive does."""

    def __init__(self, num_embeddings: int, features: int, init_std: float = 0.02, dtype=tf.float32,
                 param_dtype=tf.float32):
        super().__init__()
        self.num_embeddings, self.features, self.dtype = num_embeddings, features, dtype
        self.embedding = variable("embedding", normal_init(init_std), (num_embeddings, features), param_dtype)

    def flax_params(self) -> dict:
        return {"embedding": ("embedding", False)}

    def __call__(self, ids):
        ids = tf.clip_by_value(tf.cast(ids, tf.int32), 0, self.num_embeddings - 1)
        # Gather from a dense read, not from the variable: a ResourceGather switches the variable
        # to copy-on-read for good, and every later read (the tied LM head at each decode step)
        # then copied the whole table (~125 ms per GPT-2 step).
        return tf.cast(tf.gather(tf.convert_to_tensor(self.embedding), ids), self.dtype)

    def attend(self, x):
        return tf.einsum("...d,vd->...v", tf.cast(x, self.dtype), tf.cast(self.embedding, self.dtype))


class LayerNorm(tf.Module):
    """Two-pass LayerNorm in float32 with the configured epsilon (as the Flax primitive)."""

    def __init__(self, features: int, eps: float = 1e-5, use_bias: bool = True, use_scale: bool = True,
                 dtype=tf.float32, param_dtype=tf.float32):
        super().__init__()
        self.features, self.eps, self.use_bias, self.use_scale, self.dtype = features, eps, use_bias, use_scale, dtype
        self.scale = variable("scale", ones_init(), (features,), param_dtype) if use_scale else None
        self.bias = variable("bias", zeros_init(), (features,), param_dtype) if use_bias else None

    def flax_params(self) -> dict:
        names = {}
        if self.use_scale:
            names["scale"] = ("scale", False)
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def __call__(self, x):
        _check_features(x, self.features, "LayerNorm")
        x32 = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(var + self.eps)
        if self.use_scale:
            y = y * tf.cast(self.scale, tf.float32)
        if self.use_bias:
            y = y + tf.cast(self.bias, tf.float32)
        return tf.cast(y, self.dtype)


class RMSNorm(tf.Module):
    """x / rms(x) * scale; `offset=1.0` gives Gemma's (1 + scale) form."""

    def __init__(self, features: int, eps: float = 1e-6, offset: float = 0.0, dtype=tf.float32,
                 param_dtype=tf.float32):
        super().__init__()
        self.features, self.eps, self.offset, self.dtype = features, eps, offset, dtype
        self.scale = variable("scale", zeros_init() if offset else ones_init(), (features,), param_dtype)

    def flax_params(self) -> dict:
        return {"scale": ("scale", False)}

    def __call__(self, x):
        _check_features(x, self.features, "RMSNorm")
        x32 = tf.cast(x, tf.float32)
        y = x32 * tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + self.eps)
        return tf.cast(y * (tf.cast(self.scale, tf.float32) + self.offset), self.dtype)


class Dropout(tf.Module):
    """Inverted dropout, active only when `deterministic` is False."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def __call__(self, x, deterministic: bool = True):
        if deterministic or self.rate == 0.0:
            return x
        return tf.nn.dropout(x, rate=self.rate)


# -- activations, by their Hugging Face names (same table as the Flax primitive) ----------------

def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3.0))))


_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_python": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_new": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu_pytorch_tanh": lambda x: tf.nn.gelu(x, approximate=True),
    "gelu_accurate": _gelu_tanh,
    "gelu_10": lambda x: tf.clip_by_value(tf.nn.gelu(x, approximate=False), -10.0, 10.0),
    "quick_gelu": lambda x: x * tf.sigmoid(1.702 * x),
    "relu": tf.nn.relu,
    "relu2": lambda x: tf.square(tf.nn.relu(x)),
    "relu6": tf.nn.relu6,
    "leaky_relu": lambda x: tf.nn.leaky_relu(x, alpha=0.01),
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "mish": lambda x: x * tf.tanh(tf.nn.softplus(x)),
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "linear": lambda x: x,
    "identity": lambda x: x,
}


def act(x, name: str):
    """Apply the activation Hugging Face calls `name`."""
    try:
        fn = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; supported: {sorted(_ACTIVATIONS)}") from None
    return fn(x)


# -- attention core ------------------------------------------------------------------------------

def mask_min(dtype) -> float:
    """The most negative finite value of `dtype`: masked logits, without inf-inf NaNs."""
    return float(tf.as_dtype(dtype).min)


class AttentionCore(tf.Module):
    """softmax(q k^T * scale + bias, masked) v for (batch, length, heads, head_dim) inputs;
    `mask` boolean (True = attend), `bias` additive, both broadcastable to (batch, heads,
    q_len, kv_len); kv heads may divide q heads (grouped queries). Returns (output, weights or
    None). Softmax runs in float32; a fully masked row averages the values uniformly, as in JAX."""

    def __init__(self, dropout_rate: float = 0.0, dtype=tf.float32):
        super().__init__()
        self.dropout_rate, self.dtype = dropout_rate, dtype

    def __call__(self, q, k, v, mask=None, bias=None, scale: Optional[float] = None, deterministic: bool = True,
                 return_weights: bool = False):
        h, d = q.shape[2], q.shape[3]
        hkv = k.shape[2]
        if k.shape[3] != d or v.shape[2] != hkv or h % hkv:
            raise ValueError(f"AttentionCore: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: "
                             "expected (batch, length, heads, head_dim) with kv heads dividing q heads")
        dims = tf.shape(q)
        b, tq, tk = dims[0], dims[1], tf.shape(k)[1]
        scale = (1.0 / math.sqrt(d)) if scale is None else scale
        groups = h // hkv
        qg = tf.reshape(q, tf.stack([b, tq, hkv, groups, d]))
        logits = tf.einsum("bqhgd,bkhd->bhgqk", qg, k) * tf.cast(scale, q.dtype)
        logits = tf.reshape(logits, tf.stack([b, h, tq, tk]))
        if bias is not None:
            logits = logits + tf.cast(bias, logits.dtype)
        if mask is not None:
            logits = tf.where(tf.cast(mask, tf.bool), logits, tf.cast(mask_min(logits.dtype), logits.dtype))
        weights = tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1), self.dtype)
        probs = weights
        if not deterministic and self.dropout_rate > 0.0:
            probs = tf.nn.dropout(weights, rate=self.dropout_rate)
        out = tf.einsum("bhgqk,bkhd->bqhgd", tf.reshape(probs, tf.stack([b, hkv, groups, tq, tk])), v)
        out = tf.reshape(out, tf.stack([b, tq, h, v.shape[-1]]))
        return out, (weights if return_weights else None)


# -- repeat: the layers of a scan, unrolled -------------------------------------------------------

class LayerStack:
    """Per-layer outputs of `Repeat`, stacked lazily: `ops.unstack(s, axis=0)` returns the layers'
    tensors as they are; anything else converts it to the stacked tensor."""

    def __init__(self, tensors: list):
        self.tensors = tensors

    def stacked(self):
        return tf.stack(self.tensors)

    def _rosetta_unstack(self, axis: int) -> tuple:
        if axis == 0:
            return tuple(self.tensors)
        return tuple(tf.unstack(self.stacked(), axis=axis))

    def __getitem__(self, index):
        if isinstance(index, int):
            return self.tensors[index]
        return self.stacked()[index]

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def shape(self):
        return self.stacked().shape


tf.register_tensor_conversion_function(LayerStack, lambda value, dtype=None, name=None, as_ref=False:
                                       tf.cast(value.stacked(), dtype) if dtype else value.stacked())


def _stack_trees(trees: list) -> Any:
    """Stack per-layer pytrees (tuples, lists, dicts, None, tensors) leaf by leaf, as lax.scan does."""
    first = trees[0]
    if first is None:
        return None
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_trees([t[i] for t in trees]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack_trees([t[k] for t in trees]) for k in first}
    return LayerStack([tf.convert_to_tensor(t) for t in trees])


class Repeat(tf.Module):
    """`length` copies of `block_cls(**block_kwargs)` applied in sequence: the Flax `Repeat`
    (lax.scan over stacked params) unrolled. The layers are `self.layers[i]`; the Flax view
    stacks each of their params on axis 0 under `block/`. `remat` and `unroll` are accepted for
    the canonical signature and change nothing here: eager TF keeps every activation its tape
    needs (`tf.recompute_grad` does not take blocks that own variables)."""

    flax_stack_name = "block"

    def __init__(self, block_cls, length: int, block_kwargs=None, remat: bool = False, unroll: bool = False):
        super().__init__()
        self.layers = [block_cls(**dict(block_kwargs or {})) for _ in range(length)]
        self.remat = remat

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __call__(self, carry, *args):
        per_layer = []
        for block in self.layers:
            carry, out = block(carry, *args)
            per_layer.append(out)
        return carry, _stack_trees(per_layer)


# -- convolution and group normalisation (channels-last, as the Flax primitives) -------------------

def conv_padding(padding, in_sizes, kernel_size, strides, dilation) -> list:
    """Flax's padding argument → explicit (low, high) pairs per spatial dim (the rule of
    `core.layers.prims.conv_padding`: "SAME" puts the odd pad at the end)."""
    n = len(kernel_size)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [(0, 0)] * n
        if mode == "SAME":
            pads = []
            for size, k, s, d in zip(in_sizes, kernel_size, strides, dilation):
                out = -(-int(size) // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - int(size), 0)
                pads.append((total // 2, total - total // 2))
            return pads
        if mode == "CAUSAL":
            if n != 1:
                raise ValueError("Conv: padding='CAUSAL' is for 1-D convolutions")
            return [((kernel_size[0] - 1) * dilation[0], 0)]
        raise ValueError(f"Conv: unknown padding {padding!r}; use 'SAME', 'VALID', 'CAUSAL', ints or pairs")
    if isinstance(padding, int):
        return [(padding, padding)] * n
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if len(pads) != n or any(len(p) != 2 for p in pads):
        raise ValueError(f"Conv: padding {padding!r} does not give one (low, high) pair per spatial dim ({n})")
    return [(int(lo), int(hi)) for lo, hi in pads]


def _conv_tuple(value, n: int, name: str) -> tuple:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"Conv: {name}={value} needs {n} entries (one per spatial dim)")
    return value


class Conv(tf.Module):
    """N-D convolution of channels-last inputs (batch, *spatial, in), as the Flax primitive;
    `kernel` (*kernel_size, in // groups, out) is Flax's layout and `tf.nn.convolution`'s.
    Padding is explicit (`tf.pad`, then VALID), so Flax's asymmetric "SAME" is reproduced.
    Grouped convolutions run group by group (split / concat: portable to every TF device);
    strides with dilation (which `tf.nn.convolution` refuses) run at stride 1, then subsample."""

    def __init__(self, features: int, in_features: int, kernel_size, strides=1, padding="VALID",
                 kernel_dilation=1, feature_group_count: int = 1, use_bias: bool = True, init_std: float = 0.02,
                 dtype=tf.float32, param_dtype=tf.float32):
        super().__init__()
        kernel_size = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
        n = len(kernel_size)
        if in_features % feature_group_count or features % feature_group_count:
            raise ValueError(f"Conv: feature_group_count={feature_group_count} must divide in_features={in_features} "
                             f"and features={features}")
        self.features, self.in_features, self.kernel_size = features, in_features, kernel_size
        self.strides = _conv_tuple(strides, n, "strides")
        self.kernel_dilation = _conv_tuple(kernel_dilation, n, "kernel_dilation")
        self.padding, self.groups, self.use_bias, self.dtype = padding, feature_group_count, use_bias, dtype
        self.kernel = variable("kernel", normal_init(init_std),
                               kernel_size + (in_features // feature_group_count, features), param_dtype)
        self.bias = variable("bias", zeros_init(), (features,), param_dtype) if use_bias else None

    def flax_params(self) -> dict:
        names = {"kernel": ("kernel", False)}
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def __call__(self, x):
        _check_features(x, self.in_features, "Conv")
        n = len(self.kernel_size)
        if x.shape.rank != n + 2:
            raise ValueError(f"Conv: expected input (batch, {n} spatial dims, features), got shape {tuple(x.shape)}")
        sizes = [x.shape[i + 1] if x.shape[i + 1] is not None else tf.shape(x)[i + 1] for i in range(n)]
        pads = conv_padding(self.padding, sizes, self.kernel_size, self.strides, self.kernel_dilation)
        x = tf.cast(x, self.dtype)
        if any(lo or hi for lo, hi in pads):
            x = tf.pad(x, [[0, 0]] + [list(p) for p in pads] + [[0, 0]])
        kernel = tf.cast(self.kernel, self.dtype)
        dilated = any(d > 1 for d in self.kernel_dilation)
        strides = (1,) * n if dilated else self.strides

        def conv(inputs, weights):
            return tf.nn.convolution(inputs, weights, strides=strides, padding="VALID",
                                     dilations=self.kernel_dilation)

        if self.groups == 1:
            y = conv(x, kernel)
        else:
            xs = tf.split(x, self.groups, axis=-1)
            ks = tf.split(kernel, self.groups, axis=-1)
            y = tf.concat([conv(a, b) for a, b in zip(xs, ks)], axis=-1)
        if dilated and any(s > 1 for s in self.strides):
            y = y[(slice(None),) + tuple(slice(None, None, s) for s in self.strides) + (slice(None),)]
        if self.use_bias:
            y = y + tf.cast(self.bias, self.dtype)
        return y


class GroupNorm(tf.Module):
    """Group normalisation of channels-last inputs (batch, ..., features), float32 statistics
    over every non-batch axis per group (as the Flax primitive)."""

    def __init__(self, num_groups: int, features: int, eps: float = 1e-5, affine: bool = True,
                 dtype=tf.float32, param_dtype=tf.float32):
        super().__init__()
        if features % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide features={features}")
        self.num_groups, self.features, self.eps, self.affine, self.dtype = num_groups, features, eps, affine, dtype
        self.scale = variable("scale", ones_init(), (features,), param_dtype) if affine else None
        self.bias = variable("bias", zeros_init(), (features,), param_dtype) if affine else None

    def flax_params(self) -> dict:
        return {"scale": ("scale", False), "bias": ("bias", False)} if self.affine else {}

    def __call__(self, x):
        _check_features(x, self.features, "GroupNorm")
        n = x.shape.rank
        shape = tf.shape(x)
        g = tf.reshape(tf.cast(x, tf.float32), tf.concat([shape[:-1], [self.num_groups, self.features // self.num_groups]], 0))
        axes = list(range(1, n - 1)) + [n]
        mean = tf.reduce_mean(g, axis=axes, keepdims=True)
        var = tf.reduce_mean(tf.square(g - mean), axis=axes, keepdims=True)
        y = tf.reshape((g - mean) * tf.math.rsqrt(var + self.eps), shape)
        if self.affine:
            y = y * tf.cast(self.scale, tf.float32) + tf.cast(self.bias, tf.float32)
        return tf.cast(y, self.dtype)


class BatchNorm(tf.Module):
    """Batch normalisation of channels-last inputs with explicit running statistics (as the
    Flax primitive): `mean` / `var` are non-trainable variables; the call returns
    `(y, (mean, var))`, the updated pair in training (`use_running_average=False`)."""

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype=tf.float32, param_dtype=tf.float32):
        super().__init__()
        self.features, self.eps, self.momentum, self.affine, self.dtype = features, eps, momentum, affine, dtype
        self.mean = tf.Variable(zeros_init()((features,), param_dtype), name="mean", trainable=False)
        self.var = tf.Variable(ones_init()((features,), param_dtype), name="var", trainable=False)
        self.scale = variable("scale", ones_init(), (features,), param_dtype) if affine else None
        self.bias = variable("bias", zeros_init(), (features,), param_dtype) if affine else None

    def flax_params(self) -> dict:
        names = {"mean": ("mean", False), "var": ("var", False)}
        if self.affine:
            names.update({"scale": ("scale", False), "bias": ("bias", False)})
        return names

    def __call__(self, x, use_running_average: bool = True):
        _check_features(x, self.features, "BatchNorm")
        x32 = tf.cast(x, tf.float32)
        if use_running_average:
            mean, var = tf.cast(self.mean, tf.float32), tf.cast(self.var, tf.float32)
            new_stats = (tf.convert_to_tensor(self.mean), tf.convert_to_tensor(self.var))
        else:
            axes = list(range(x.shape.rank - 1))
            mean = tf.reduce_mean(x32, axis=axes)
            var = tf.reduce_mean(tf.square(x32 - mean), axis=axes)
            count = tf.cast(tf.size(x) // self.features, tf.float32)
            unbiased = tf.stop_gradient(var) * (count / tf.maximum(count - 1.0, 1.0))
            m = self.momentum
            new_stats = (tf.cast((1 - m) * tf.cast(self.mean, tf.float32) + m * tf.stop_gradient(mean), self.mean.dtype),
                         tf.cast((1 - m) * tf.cast(self.var, tf.float32) + m * unbiased, self.var.dtype))
        y = (x32 - mean) * tf.math.rsqrt(var + self.eps)
        if self.affine:
            y = y * tf.cast(self.scale, tf.float32) + tf.cast(self.bias, tf.float32)
        return tf.cast(y, self.dtype), new_stats
