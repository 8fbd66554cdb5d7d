"""Flax primitives: the leaf layers every canonical model is built from.

These are hand-written once per framework (here, and as twins in `ports/torch/runtime` and
`ports/tf/runtime`); each owns its weight layout. Primitives may use `@nn.compact`,
`self.param`, `nn.scan` and Flax RNG streams — transpiled model code may not.

Conventions every twin follows:
- Primitives take their input size explicitly (torch/TF build weights eagerly); Flax asserts it.
- `dtype` is the compute dtype, `param_dtype` the storage dtype of the weights.
- Matmuls take `precision=None`, so `jax_default_matmul_precision` decides (tests pin "highest").
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from core import outputs as _outputs

Array = jax.Array
Dtype = Any

# Output dataclasses cross jit boundaries, so they must be pytrees.
for _cls in _outputs.ALL_OUTPUTS:
    jax.tree_util.register_dataclass(_cls)


def normal_init(std: float) -> Callable:
    return nn.initializers.normal(stddev=std)


def zeros_init() -> Callable:
    return nn.initializers.zeros


def ones_init() -> Callable:
    return nn.initializers.ones


def _check_features(x, expected: int, layer: str):
    if x.shape[-1] != expected:
        raise ValueError(f"{layer}: input has {x.shape[-1]} features on its last axis "
                         f"(shape {x.shape}); the layer was built for {expected}")


class Dense(nn.Module):
    """y = x @ kernel + bias; kernel stored (in_features, features) as in Flax.

    Decoding runs on a copy of the params where the kernel is stored transposed, as
    `kernel_t` (features, in_features) (see `per_layer_params`): at the few rows a
    decode step has, XLA:CPU's dot reads an (out, in) kernel faster, up to 1.7× for a tall one
    such as an MLP's down projection (measured, scripts/bench generate suite)."""

    features: int
    in_features: int
    use_bias: bool = True
    init_std: float = 0.02
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.in_features, "Dense")
        if self.has_variable("params", "kernel_t"):
            kernel_t = self.get_variable("params", "kernel_t")
            if kernel_t.shape != (self.features, self.in_features):
                raise ValueError(f"Dense {'/'.join(self.path)}: kernel_t has shape {kernel_t.shape}, "
                                 f"expected (features, in_features) = {(self.features, self.in_features)}")
            y = jnp.einsum("...k,nk->...n", jnp.asarray(x, self.dtype), jnp.asarray(kernel_t, self.dtype))
        else:
            kernel = self.param("kernel", normal_init(self.init_std), (self.in_features, self.features),
                                self.param_dtype)
            y = jnp.dot(jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype))
        if self.use_bias:
            bias = self.param("bias", zeros_init(), (self.features,), self.param_dtype)
            y = y + jnp.asarray(bias, self.dtype)
        return y


class Embed(nn.Module):
    """A lookup table (num_embeddings, features); `attend` is the tied output projection."""

    num_embeddings: int
    features: int
    init_std: float = 0.02
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self):
        self.embedding = self.param("embedding", normal_init(self.init_std),
                                    (self.num_embeddings, self.features), self.param_dtype)

    def __call__(self, ids: Array) -> Array:
        # Out-of-range ids are rejected on the host by the model wrapper; inside jit, clip
        # rather than produce NaNs (every twin clips the same way).
        ids = jnp.clip(ids, 0, self.num_embeddings - 1)
        return jnp.asarray(jnp.take(self.embedding, ids, axis=0), self.dtype)

    def attend(self, x: Array) -> Array:
        # A contraction over the stored (vocab, d) layout: no transposed copy of the table.
        return jnp.einsum("...d,vd->...v", jnp.asarray(x, self.dtype),
                          jnp.asarray(self.embedding, self.dtype))


class LayerNorm(nn.Module):
    """Two-pass LayerNorm with the configured epsilon (Flax's default eps and fast variance
    differ from torch's; both matter at 1e-5 parity)."""

    features: int
    eps: float = 1e-5
    use_bias: bool = True
    use_scale: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.features, "LayerNorm")
        x32 = jnp.asarray(x, jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        if self.use_scale:
            y = y * jnp.asarray(self.param("scale", ones_init(), (self.features,), self.param_dtype), jnp.float32)
        if self.use_bias:
            y = y + jnp.asarray(self.param("bias", zeros_init(), (self.features,), self.param_dtype), jnp.float32)
        return jnp.asarray(y, self.dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * scale; `offset=1.0` gives Gemma's (1 + scale) form."""

    features: int
    eps: float = 1e-6
    offset: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.features, "RMSNorm")
        x32 = jnp.asarray(x, jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        init = zeros_init() if self.offset else ones_init()
        scale = jnp.asarray(self.param("scale", init, (self.features,), self.param_dtype), jnp.float32)
        return jnp.asarray(y * (scale + self.offset), self.dtype)


class Dropout(nn.Module):
    """Inverted dropout; the mask comes from the 'dropout' RNG stream passed to `apply`."""

    rate: float

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        return nn.Dropout(self.rate)(x, deterministic=False)


# -- activations -------------------------------------------------------------------------------

def _gelu_tanh(x):
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * jnp.power(x, 3.0))))


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),          # exact, as torch/HF mean it
    "gelu_python": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_accurate": _gelu_tanh,                                 # the same formula under another name
    "gelu_10": lambda x: jnp.clip(jax.nn.gelu(x, approximate=False), -10.0, 10.0),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": jax.nn.relu,
    "relu2": lambda x: jnp.square(jax.nn.relu(x)),
    "relu6": jax.nn.relu6,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.01),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "linear": lambda x: x,
    "identity": lambda x: x,
}


def act(x: Array, name: str) -> Array:
    """Apply the activation Hugging Face calls `name` (exact semantics, see configuration.py)."""
    try:
        fn = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; supported: {sorted(_ACTIVATIONS)}") from None
    return fn(x)


# -- attention core ----------------------------------------------------------------------------

def mask_min(dtype) -> float:
    """The most negative finite value of `dtype`: masked logits, without inf-inf NaNs."""
    return float(jnp.finfo(dtype).min)


class AttentionCore(nn.Module):
    """softmax(q k^T * scale + bias, masked) v for (batch, length, heads, head_dim) inputs.

    Grouped/multi-query attention: `k`/`v` may have fewer heads than `q` (a divisor).
    `mask` is boolean, True = attend, broadcastable to (batch, heads, q_len, kv_len).
    `bias` is additive, broadcastable to the same. Returns (output, weights or None).
    """

    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, q: Array, k: Array, v: Array, mask: Optional[Array] = None,
                 bias: Optional[Array] = None, scale: Optional[float] = None,
                 deterministic: bool = True, return_weights: bool = False):
        b, tq, h, d = q.shape
        tk, hkv = k.shape[1], k.shape[2]
        if k.shape != (b, tk, hkv, d) or v.shape[:3] != (b, tk, hkv) or h % hkv:
            raise ValueError(f"AttentionCore: q {q.shape}, k {k.shape}, v {v.shape}: expected "
                             "(batch, length, heads, head_dim) with kv heads dividing q heads")
        scale = (1.0 / math.sqrt(d)) if scale is None else scale
        use_dropout = not deterministic and self.dropout_rate > 0.0
        if tq == 1 and b == 1 and hkv <= 32 and not return_weights and not use_dropout:
            return _one_query_attention(q, k, v, mask, bias, scale, self.dtype), None
        if not return_weights and not use_dropout:
            out = jax.nn.dot_product_attention(q, k, v, bias=_broadcast4(bias, b, h, tq, tk),
                                               mask=_broadcast4(mask, b, h, tq, tk), scale=scale)
            return out, None
        groups = h // hkv
        qg = jnp.reshape(q, (b, tq, hkv, groups, d))
        logits = jnp.einsum("bqhgd,bkhd->bhgqk", qg, k) * scale
        logits = jnp.reshape(logits, (b, h, tq, tk))
        weights = _attention_weights(logits, mask, bias, self.dtype)
        probs = weights
        if use_dropout:
            probs = nn.Dropout(self.dropout_rate)(weights, deterministic=False)
        probs_g = jnp.reshape(probs, (b, hkv, groups, tq, tk))
        out = jnp.einsum("bhgqk,bkhd->bqhgd", probs_g, v)
        return jnp.reshape(out, (b, tq, h, v.shape[-1])), (weights if return_weights else None)


def _attention_weights(logits, mask, bias, dtype):
    """softmax(logits + bias), masked, computed in float32 and returned in `dtype`."""
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = jnp.where(mask, logits, mask_min(logits.dtype))
    return jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1).astype(dtype)


def _one_query_attention(q, k, v, mask, bias, scale, dtype):
    """Attention for one query of one sequence (a decode step at batch 1), reading the
    (1, length, kv_heads, head_dim) cache in place. XLA:CPU's batched dots want their operands
    head-major, so the usual form copies (transposes) each layer's whole cache first, at every
    step. Here both dots take the cache as it lies, with (length, kv_heads) or (kv_heads,
    head_dim) as one axis: they compute every query head against every kv head and keep the
    matching ones (the diagonal), kv_heads times the useful flops. Measured, GPT-2 124M at
    batch 1: 94 → 77 ms per token with 900 cached positions, the same at 80. Not used at
    larger batches, where XLA hands these dots to YNNPACK and the whole step got ~5% slower
    (batch 8); used up to 32 kv heads (1.7× per layer measured at 32 heads of 128 dims)."""
    b, _, h, d = q.shape
    tk, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    groups = h // hkv
    dims = (((2,), (2,)), ((0,), (0,)))
    every = jax.lax.dot_general(jnp.reshape(k, (b, tk * hkv, d)), jnp.reshape(q, (b, h, d)), dims)
    logits = jnp.diagonal(jnp.reshape(every, (b, tk, hkv, hkv, groups)), axis1=2, axis2=3)  # (b, tk, g, hkv)
    logits = jnp.reshape(jnp.transpose(logits, (0, 3, 2, 1)), (b, h, 1, tk)) * scale
    weights = _attention_weights(logits, mask, bias, dtype)
    dims = (((2,), (1,)), ((0,), (0,)))
    every = jax.lax.dot_general(jnp.reshape(weights, (b, h, tk)), jnp.reshape(v, (b, tk, hkv * dv)), dims)
    out = jnp.diagonal(jnp.reshape(every, (b, hkv, groups, hkv, dv)), axis1=1, axis2=3)    # (b, g, dv, hkv)
    return jnp.reshape(jnp.transpose(out, (0, 3, 1, 2)), (b, 1, h, dv))


def _broadcast4(x, b, h, tq, tk):
    if x is None:
        return None
    x = jnp.asarray(x)
    while x.ndim < 4:
        x = x[None]
    return jnp.broadcast_to(x, (b, h, tq, tk))


# -- repeat: scan over layers ------------------------------------------------------------------

class Repeat(nn.Module):
    """`length` copies of `block_cls(**block_kwargs)` applied in sequence under `lax.scan`.

    Params are stacked on a leading axis (`.../block/...` has shape (length, ...)), so compile
    time does not grow with depth. The block is called as `block(carry, *args)` and returns
    `(carry, per_layer)`; `per_layer` values are stacked on axis 0 (use them for hidden states
    and attentions of every layer). `args` are broadcast to every layer (masks, flags).

    remat: rematerialise each layer's activations in the backward pass (memory for compute).
    unroll: True compiles the loop unrolled (same params; faster on tiny models, slower compile).

    The params decide the layout: stacked params (`block`, what init and checkpoints give)
    run under the scan; per-layer params (`block_0` … `block_{length-1}`, see
    `per_layer_params`) run the layers as an unrolled Python loop, each layer reading its own
    buffers. That is the decoding layout: XLA:CPU copies a layer's weights out of the stack on
    every scan step (dynamic-slice before each matmul), which at batch 1 doubles the memory
    traffic that bounds decoding. (Dropout masks differ between the layouts; decoding has none.)
    """

    block_cls: Any
    length: int
    block_kwargs: Any = None
    remat: bool = False
    unroll: bool = False

    @nn.compact
    def __call__(self, carry, *args):
        static = tuple(i + 2 for i, a in enumerate(args) if a is None or isinstance(a, (bool, str, int, float)))
        block_cls = self.block_cls
        if self.remat:
            block_cls = nn.remat(block_cls, prevent_cse=False, static_argnums=static)
        kwargs = dict(self.block_kwargs or {})
        params = self.variables.get("params", {}) if not self.is_initializing() else {}
        if "block_0" in params:
            names = [f"block_{i}" for i in range(self.length)]
            if set(params) != set(names):
                raise ValueError(f"Repeat of {self.length} layers: per-layer params must be exactly {names[0]} … "
                                 f"{names[-1]}, got {sorted(params)}")
            outputs = []
            for name in names:
                carry, out = block_cls(**kwargs, name=name)(carry, *args)
                outputs.append(out)
            return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)
        scanned = nn.scan(
            block_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=tuple(nn.broadcast for _ in args),
            length=self.length,
            unroll=self.length if self.unroll else 1,
        )
        return scanned(**kwargs, name="block")(carry, *args)


def per_layer_params(params, transposed_dense=frozenset(), _path=()):
    """`params` with every `Repeat`'s stacked subtree split into `block_0` … `block_{n-1}`
    (new buffers, one per layer): the layout `Repeat` runs as an unrolled loop (see `Repeat`).
    A `Repeat`'s params are a node whose only key is `block` (its scan); when such nodes nest
    (T5 names its `Repeat` attribute `block` too), the innermost one is the scan. Nested
    repeats are split at every level. Costs one copy of the stacked weights; `stacked_params`
    is the inverse.

    `transposed_dense`: paths of `Dense` modules (see `dense_paths`) whose kernel the copy
    stores transposed, as `kernel_t` (the decoding layout, see `Dense`); transposed as each
    layer is split off, so at most one layer's weights are held twice at any time."""
    if not isinstance(params, Mapping):
        return params
    if _path in transposed_dense and "kernel" in params:
        return {("kernel_t" if key == "kernel" else key):
                (jnp.swapaxes(value, -1, -2) if key == "kernel" else per_layer_params(value))
                for key, value in params.items()}
    inner = params.get("block")
    if set(params) == {"block"} and isinstance(inner, Mapping) and set(inner) != {"block"}:
        length = jax.tree.leaves(inner)[0].shape[0]
        return {f"block_{i}": per_layer_params(jax.tree.map(lambda x, i=i: x[i], inner), transposed_dense,
                                               _path + ("block",))
                for i in range(length)}
    return {key: per_layer_params(value, transposed_dense, _path + (key,)) for key, value in params.items()}


def dense_paths(module, *args, **kwargs) -> frozenset:
    """The param paths of every `Dense` in `module`, traced abstractly on the inputs `args`,
    `kwargs` (a `Repeat`'s layers appear once, under `block`)."""
    paths = set()

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, Dense):
            paths.add(context.module.path)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args, **kwargs))
    return frozenset(paths)


def _is_layer_name(key: str) -> bool:
    return key.startswith("block_") and key[len("block_"):].isdigit()


def stacked_params(params):
    """The inverse of `per_layer_params`: `block_0` … `block_{n-1}` stacked back into `block`."""
    if not isinstance(params, Mapping):
        return params
    if params and all(_is_layer_name(k) for k in params):
        layers = [stacked_params(params[f"block_{i}"]) for i in range(len(params))]
        return {"block": jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}
    return {key: stacked_params(value) for key, value in params.items()}


# -- convolution and group normalisation (channels-last, as Flax) ---------------------------------

def conv_padding(padding, in_sizes, kernel_size, strides, dilation) -> list:
    """Flax's padding argument → explicit (low, high) pairs per spatial dim. Accepts "SAME"
    (lax's rule: out = ceil(in / stride), the odd pad at the end), "VALID", "CAUSAL" (1-D),
    an int (the same on both sides of every dim), a sequence of ints (per dim, both sides) or
    of (low, high) pairs. Every twin resolves padding with this same rule."""
    n = len(kernel_size)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [(0, 0)] * n
        if mode == "SAME":
            pads = []
            for size, k, s, d in zip(in_sizes, kernel_size, strides, dilation):
                out = -(-size // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
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


def _tuple(value, n: int, name: str) -> tuple:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"Conv: {name}={value} needs {n} entries (one per spatial dim)")
    return value


class Conv(nn.Module):
    """N-D convolution of channels-last inputs (batch, *spatial, in_features), as `nn.Conv`:
    kernel stored (*kernel_size, in_features // feature_group_count, features), bias
    (features,). `padding`: see `conv_padding`. The number of spatial dims is len(kernel_size)
    (an int kernel_size means 1-D)."""

    features: int
    in_features: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = "VALID"
    kernel_dilation: Any = 1
    feature_group_count: int = 1
    use_bias: bool = True
    init_std: float = 0.02
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.in_features, "Conv")
        kernel_size = _tuple(self.kernel_size, 1, "kernel_size") if isinstance(self.kernel_size, int) \
            else tuple(self.kernel_size)
        n = len(kernel_size)
        if x.ndim != n + 2:
            raise ValueError(f"Conv: expected input (batch, {n} spatial dims, features), got shape {x.shape}")
        groups = self.feature_group_count
        if self.in_features % groups or self.features % groups:
            raise ValueError(f"Conv: feature_group_count={groups} must divide in_features={self.in_features} "
                             f"and features={self.features}")
        strides = _tuple(self.strides, n, "strides")
        dilation = _tuple(self.kernel_dilation, n, "kernel_dilation")
        kernel = self.param("kernel", normal_init(self.init_std),
                            kernel_size + (self.in_features // groups, self.features), self.param_dtype)
        pads = conv_padding(self.padding, x.shape[1:-1], kernel_size, strides, dilation)
        lhs = (0, n + 1) + tuple(range(1, n + 1))
        numbers = jax.lax.ConvDimensionNumbers(lhs, (n + 1, n) + tuple(range(n)), lhs)
        y = jax.lax.conv_general_dilated(jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype), strides,
                                         pads, rhs_dilation=dilation, dimension_numbers=numbers,
                                         feature_group_count=groups)
        if self.use_bias:
            bias = self.param("bias", zeros_init(), (self.features,), self.param_dtype)
            y = y + jnp.asarray(bias, self.dtype)
        return y


class GroupNorm(nn.Module):
    """Group normalisation of channels-last inputs (batch, ..., features): statistics per
    example and group over every non-batch axis, two-pass, in float32 (as torch's GroupNorm on
    channels-first data). `affine` adds `scale` and `bias` (features,)."""

    num_groups: int
    features: int
    eps: float = 1e-5
    affine: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.features, "GroupNorm")
        if self.features % self.num_groups:
            raise ValueError(f"GroupNorm: num_groups={self.num_groups} must divide features={self.features}")
        shape = x.shape
        n = len(shape)
        x32 = jnp.reshape(jnp.asarray(x, jnp.float32), shape[:-1] + (self.num_groups, self.features // self.num_groups))
        axes = tuple(range(1, n - 1)) + (n,)
        mean = jnp.mean(x32, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=axes, keepdims=True)
        y = jnp.reshape((x32 - mean) * jax.lax.rsqrt(var + self.eps), shape)
        if self.affine:
            y = y * jnp.asarray(self.param("scale", ones_init(), (self.features,), self.param_dtype), jnp.float32)
            y = y + jnp.asarray(self.param("bias", zeros_init(), (self.features,), self.param_dtype), jnp.float32)
        return jnp.asarray(y, self.dtype)


class BatchNorm(nn.Module):
    """Batch normalisation of channels-last inputs over every axis but the last, with its
    running statistics as explicit state (no mutable collection).

    The statistics are leaves of the params tree, `mean` and `var` (features,), so checkpoints
    load and save them like weights (torch's running_mean / running_var); they never receive
    gradients (`stop_gradient`), and an optimizer must leave them out (mask them). The call
    returns `(y, (mean, var))`: with `use_running_average` (inference) the stored statistics
    normalise and come back unchanged; without it (training) the batch's statistics normalise
    and the returned pair is the updated running average, torch's rule (momentum 0.1 = weight
    of the new batch, unbiased batch variance), for the caller to write back into the params.
    """

    features: int
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, use_running_average: bool = True):
        _check_features(x, self.features, "BatchNorm")
        running_mean = self.param("mean", zeros_init(), (self.features,), self.param_dtype)
        running_var = self.param("var", ones_init(), (self.features,), self.param_dtype)
        x32 = jnp.asarray(x, jnp.float32)
        if use_running_average:
            mean = jax.lax.stop_gradient(jnp.asarray(running_mean, jnp.float32))
            var = jax.lax.stop_gradient(jnp.asarray(running_var, jnp.float32))
            new_stats = (running_mean, running_var)
        else:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x32, axis=axes)
            var = jnp.mean(jnp.square(x32 - mean), axis=axes)
            count = x.size // self.features
            unbiased = jax.lax.stop_gradient(var) * (count / max(count - 1, 1))
            m = self.momentum
            new_stats = (jnp.asarray((1 - m) * running_mean + m * jax.lax.stop_gradient(mean), self.param_dtype),
                         jnp.asarray((1 - m) * running_var + m * unbiased, self.param_dtype))
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        if self.affine:
            y = y * jnp.asarray(self.param("scale", ones_init(), (self.features,), self.param_dtype), jnp.float32)
            y = y + jnp.asarray(self.param("bias", zeros_init(), (self.features,), self.param_dtype), jnp.float32)
        return jnp.asarray(y, self.dtype), new_stats
