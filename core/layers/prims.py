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
from typing import Any, Callable, Optional

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
    """y = x @ kernel + bias; kernel stored (in_features, features) as in Flax."""

    features: int
    in_features: int
    use_bias: bool = True
    init_std: float = 0.02
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(x, self.in_features, "Dense")
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
        if not return_weights and not use_dropout:
            out = jax.nn.dot_product_attention(q, k, v, bias=_broadcast4(bias, b, h, tq, tk),
                                               mask=_broadcast4(mask, b, h, tq, tk), scale=scale)
            return out, None
        groups = h // hkv
        qg = jnp.reshape(q, (b, tq, hkv, groups, d))
        logits = jnp.einsum("bqhgd,bkhd->bhgqk", qg, k) * scale
        logits = jnp.reshape(logits, (b, h, tq, tk))
        if bias is not None:
            logits = logits + bias
        if mask is not None:
            logits = jnp.where(mask, logits, mask_min(logits.dtype))
        weights = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1).astype(self.dtype)
        probs = weights
        if use_dropout:
            probs = nn.Dropout(self.dropout_rate)(weights, deterministic=False)
        probs_g = jnp.reshape(probs, (b, hkv, groups, tq, tk))
        out = jnp.einsum("bhgqk,bkhd->bqhgd", probs_g, v)
        return jnp.reshape(out, (b, tq, h, v.shape[-1])), (weights if return_weights else None)


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
        scanned = nn.scan(
            block_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=tuple(nn.broadcast for _ in args),
            length=self.length,
            unroll=self.length if self.unroll else 1,
        )
        kwargs = dict(self.block_kwargs or {})
        return scanned(**kwargs, name="block")(carry, *args)
