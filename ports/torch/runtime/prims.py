"""torch twins of `core/layers/prims.py`: the leaf layers generated code is built from.

Each twin takes the same arguments as its Flax primitive, computes the same function, and owns
its weight layout: `flax_params()` maps each Flax leaf name to (torch attribute, transposed),
so `Module.flax_leaves()` can present the whole model in the Flax layout. Torch attribute
names are those of `torch.nn` (`weight`, `bias`), so a BERT port's `state_dict` reads like
`transformers`' own.

`deterministic` is None by default and then follows the module's training flag: `model.train()`
turns dropout on, `model.eval()` off, as torch users expect; an explicit True/False wins.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ports.torch.runtime.module import Module  # noqa: F401 (the base class of generated modules)

Initializer = Callable[[tuple, torch.dtype], torch.Tensor]


# -- initialisers (as Flax's; a parameter is `nn.Parameter(initialize(init, shape, dtype))`) -----

def normal_init(std: float) -> Initializer:
    return lambda shape, dtype: torch.randn(shape, dtype=dtype) * std


def zeros_init() -> Initializer:
    return lambda shape, dtype: torch.zeros(shape, dtype=dtype)


def ones_init() -> Initializer:
    return lambda shape, dtype: torch.ones(shape, dtype=dtype)


def initialize(init: Initializer, shape, dtype=torch.float32) -> torch.Tensor:
    return init(tuple(shape), dtype)


def _check_features(x: torch.Tensor, expected: int, layer: str) -> None:
    if x.shape[-1] != expected:
        raise ValueError(f"{layer}: input has {x.shape[-1]} features on its last axis "
                         f"(shape {tuple(x.shape)}); the layer was built for {expected}")


def _training(module: nn.Module, deterministic: Optional[bool]) -> bool:
    return module.training if deterministic is None else not deterministic


# -- layers --------------------------------------------------------------------------------------

class Dense(nn.Module):
    """y = x @ kernel + bias. `weight` is stored (features, in_features) as `nn.Linear`'s,
    i.e. the Flax kernel transposed."""

    def __init__(self, features: int, in_features: int, use_bias: bool = True, init_std: float = 0.02,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.features, self.in_features, self.use_bias, self.dtype = features, in_features, use_bias, dtype
        self.weight = nn.Parameter(initialize(normal_init(init_std), (features, in_features), param_dtype))
        self.bias = nn.Parameter(initialize(zeros_init(), (features,), param_dtype)) if use_bias else None

    def flax_params(self) -> dict:
        names = {"kernel": ("weight", True)}
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.in_features, "Dense")
        bias = None if self.bias is None else self.bias.to(self.dtype)
        return F.linear(x.to(self.dtype), self.weight.to(self.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, features={self.features}, use_bias={self.use_bias}"


class Embed(nn.Module):
    """A lookup table (num_embeddings, features); `attend` is the tied output projection.
    Out-of-range ids are clipped, as the Flax primitive does."""

    def __init__(self, num_embeddings: int, features: int, init_std: float = 0.02,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.num_embeddings, self.features, self.dtype = num_embeddings, features, dtype
        self.weight = nn.Parameter(initialize(normal_init(init_std), (num_embeddings, features), param_dtype))

    def flax_params(self) -> dict:
        return {"embedding": ("weight", False)}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.clamp(ids, 0, self.num_embeddings - 1)
        return F.embedding(ids, self.weight).to(self.dtype)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.dtype), self.weight.to(self.dtype))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.features}"


class LayerNorm(nn.Module):
    """LayerNorm in float32 with the configured epsilon; `weight` is Flax's `scale`."""

    def __init__(self, features: int, eps: float = 1e-5, use_bias: bool = True, use_scale: bool = True,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.features, self.eps, self.use_bias, self.use_scale, self.dtype = features, eps, use_bias, use_scale, dtype
        self.weight = nn.Parameter(initialize(ones_init(), (features,), param_dtype)) if use_scale else None
        self.bias = nn.Parameter(initialize(zeros_init(), (features,), param_dtype)) if use_bias else None

    def flax_params(self) -> dict:
        names = {}
        if self.use_scale:
            names["scale"] = ("weight", False)
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.features, "LayerNorm")
        weight = None if self.weight is None else self.weight.to(torch.float32)
        bias = None if self.bias is None else self.bias.to(torch.float32)
        y = F.layer_norm(x.to(torch.float32), (self.features,), weight, bias, self.eps)
        return y.to(self.dtype)

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}"


class RMSNorm(nn.Module):
    """x / rms(x) * scale; `offset=1.0` gives Gemma's (1 + scale) form."""

    def __init__(self, features: int, eps: float = 1e-6, offset: float = 0.0,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.features, self.eps, self.offset, self.dtype = features, eps, offset, dtype
        init = zeros_init() if offset else ones_init()
        self.weight = nn.Parameter(initialize(init, (features,), param_dtype))

    def flax_params(self) -> dict:
        return {"scale": ("weight", False)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.features, "RMSNorm")
        x32 = x.to(torch.float32)
        y = x32 * torch.rsqrt(torch.mean(torch.square(x32), dim=-1, keepdim=True) + self.eps)
        return (y * (self.weight.to(torch.float32) + self.offset)).to(self.dtype)

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}, offset={self.offset}"


class Dropout(nn.Module):
    """Inverted dropout; active when `deterministic` is False, or None in training mode."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor, deterministic: Optional[bool] = None) -> torch.Tensor:
        if self.rate == 0.0 or not _training(self, deterministic):
            return x
        return F.dropout(x, self.rate, training=True)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


# -- activations, by their Hugging Face names (same table as the Flax primitive) ----------------

def _gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "gelu_python": lambda x: F.gelu(x, approximate="none"),
    "gelu_new": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_accurate": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3)))),
    "gelu_10": lambda x: torch.clamp(F.gelu(x, approximate="none"), -10.0, 10.0),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "relu2": lambda x: torch.square(F.relu(x)),
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.01),
    "silu": F.silu,
    "swish": F.silu,
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
    "identity": lambda x: x,
}


def act(x: torch.Tensor, name: str) -> torch.Tensor:
    """Apply the activation Hugging Face calls `name`."""
    try:
        fn = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; supported: {sorted(_ACTIVATIONS)}") from None
    return fn(x)


# -- attention core ------------------------------------------------------------------------------

def mask_min(dtype: torch.dtype) -> float:
    """The most negative finite value of `dtype`: masked logits, without inf-inf NaNs."""
    return float(torch.finfo(dtype).min)


class AttentionCore(nn.Module):
    """softmax(q k^T * scale + bias, masked) v for (batch, length, heads, head_dim) inputs;
    `mask` boolean (True = attend), `bias` additive, both broadcastable to (batch, heads,
    q_len, kv_len); kv heads may divide q heads (grouped queries). Returns (output, weights or
    None). Without weights requested this is `F.scaled_dot_product_attention` (the Flax twin
    uses `jax.nn.dot_product_attention`); a fully masked row averages the values uniformly,
    as in JAX."""

    def __init__(self, dropout_rate: float = 0.0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dropout_rate, self.dtype = dropout_rate, dtype

    def forward(self, q, k, v, mask=None, bias=None, scale: Optional[float] = None,
                deterministic: Optional[bool] = None, return_weights: bool = False):
        b, tq, h, d = q.shape
        tk, hkv = k.shape[1], k.shape[2]
        if tuple(k.shape) != (b, tk, hkv, d) or tuple(v.shape[:3]) != (b, tk, hkv) or h % hkv:
            raise ValueError(f"AttentionCore: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: "
                             "expected (batch, length, heads, head_dim) with kv heads dividing q heads")
        scale = (1.0 / math.sqrt(d)) if scale is None else scale
        dropout = self.dropout_rate if self.dropout_rate > 0.0 and _training(self, deterministic) else 0.0
        if not return_weights:
            additive = None
            if bias is not None or mask is not None:
                additive = torch.zeros((), dtype=q.dtype, device=q.device) if bias is None else bias.to(q.dtype)
                if mask is not None:
                    additive = torch.where(mask, additive, mask_min(q.dtype))
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 attn_mask=additive, dropout_p=dropout, scale=scale,
                                                 enable_gqa=int(h) != int(hkv))   # ints also when traced
            return out.transpose(1, 2), None
        groups = h // hkv
        qg = torch.reshape(q, (b, tq, hkv, groups, d))
        logits = torch.einsum("bqhgd,bkhd->bhgqk", qg, k) * scale
        logits = torch.reshape(logits, (b, h, tq, tk))
        if bias is not None:
            logits = logits + bias
        if mask is not None:
            logits = torch.where(mask, logits, mask_min(logits.dtype))
        weights = torch.softmax(logits.to(torch.float32), dim=-1).to(self.dtype)
        probs = F.dropout(weights, dropout, training=True) if dropout else weights
        out = torch.einsum("bhgqk,bkhd->bqhgd", torch.reshape(probs, (b, hkv, groups, tq, tk)), v)
        return torch.reshape(out, (b, tq, h, v.shape[-1])), weights

    def extra_repr(self) -> str:
        return f"dropout_rate={self.dropout_rate}"


# -- repeat: the layers of a scan, unrolled -------------------------------------------------------

class LayerStack:
    """Per-layer outputs of `Repeat`, stacked lazily: `ops.unstack(s, axis=0)` returns the layers'
    tensors as they are (no copy, no (layers, ...) buffer for outputs nobody asked for); any
    other use sees the stacked tensor."""

    def __init__(self, tensors: list):
        self.tensors = tensors

    def stacked(self) -> torch.Tensor:
        return torch.stack(self.tensors)

    def _rosetta_unstack(self, axis: int) -> tuple:
        if axis == 0:
            return tuple(self.tensors)
        return tuple(torch.unbind(self.stacked(), dim=axis))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def real(x):
            if isinstance(x, LayerStack):
                return x.stacked()
            if isinstance(x, (list, tuple)):
                return type(x)(real(e) for e in x)
            return x
        return func(*real(args), **{k: real(v) for k, v in (kwargs or {}).items()})

    def __getattr__(self, name):
        if name == "tensors":
            raise AttributeError(name)
        return getattr(self.stacked(), name)

    def __getitem__(self, index):
        if isinstance(index, int):
            return self.tensors[index]
        return self.stacked()[index]

    def __len__(self) -> int:
        return len(self.tensors)


def _binary(name):
    return lambda self, other: getattr(self.stacked(), name)(other.stacked() if isinstance(other, LayerStack) else other)


for _op in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "matmul", "rmatmul",
            "eq", "ne", "lt", "le", "gt", "ge", "and", "or"):
    setattr(LayerStack, f"__{_op}__", _binary(f"__{_op}__"))


def _stack_trees(trees: list) -> Any:
    """Stack per-layer pytrees (tuples, lists, dicts, None, tensors) leaf by leaf, as lax.scan does."""
    first = trees[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return LayerStack(list(trees))
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_trees([t[i] for t in trees]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack_trees([t[k] for t in trees]) for k in first}
    return LayerStack([torch.as_tensor(t) for t in trees])


class Repeat(nn.ModuleList):
    """`length` copies of `block_cls(**block_kwargs)` applied in sequence: the Flax `Repeat`
    (lax.scan over stacked params) unrolled. The layers are `self[0]`, `self[1]`, ...; the Flax
    view stacks each of their params on axis 0 under `block/`. `remat` recomputes each layer's
    activations in the backward pass (`torch.utils.checkpoint`); `unroll` has no effect."""

    flax_stack_name = "block"

    def __init__(self, block_cls, length: int, block_kwargs=None, remat: bool = False, unroll: bool = False):
        super().__init__([block_cls(**dict(block_kwargs or {})) for _ in range(length)])
        self.remat = remat

    def forward(self, carry, *args):
        per_layer = []
        for block in self:
            if self.remat and torch.is_grad_enabled():
                carry, out = checkpoint(block, carry, *args, use_reentrant=False)
            else:
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


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class Conv(nn.Module):
    """N-D convolution (1-3 spatial dims) of channels-last inputs (batch, *spatial, in), as the
    Flax primitive. `weight` is stored as `torch.nn.ConvNd`'s (out, in // groups, *kernel_size);
    the Flax kernel (*kernel_size, in // groups, out) is its permutation. Padding is applied
    explicitly (`F.pad`), so Flax's asymmetric "SAME" is reproduced exactly."""

    def __init__(self, features: int, in_features: int, kernel_size, strides=1, padding="VALID",
                 kernel_dilation=1, feature_group_count: int = 1, use_bias: bool = True, init_std: float = 0.02,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        kernel_size = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
        n = len(kernel_size)
        if n not in _CONV:
            raise ValueError(f"Conv: {n} spatial dims; the torch twin supports 1 to 3")
        if in_features % feature_group_count or features % feature_group_count:
            raise ValueError(f"Conv: feature_group_count={feature_group_count} must divide in_features={in_features} "
                             f"and features={features}")
        self.features, self.in_features, self.kernel_size = features, in_features, kernel_size
        self.strides = _conv_tuple(strides, n, "strides")
        self.kernel_dilation = _conv_tuple(kernel_dilation, n, "kernel_dilation")
        self.padding, self.groups, self.use_bias, self.dtype = padding, feature_group_count, use_bias, dtype
        # Drawn in the Flax layout (as the Flax initialiser), stored in torch's.
        kernel = initialize(normal_init(init_std), kernel_size + (in_features // feature_group_count, features),
                            param_dtype)
        self.weight = nn.Parameter(kernel.permute((n + 1, n) + tuple(range(n))).contiguous())
        self.bias = nn.Parameter(initialize(zeros_init(), (features,), param_dtype)) if use_bias else None

    def flax_params(self) -> dict:
        n = len(self.kernel_size)
        names = {"kernel": ("weight", tuple(range(2, n + 2)) + (1, 0))}
        if self.use_bias:
            names["bias"] = ("bias", False)
        return names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.in_features, "Conv")
        n = len(self.kernel_size)
        if x.ndim != n + 2:
            raise ValueError(f"Conv: expected input (batch, {n} spatial dims, features), got shape {tuple(x.shape)}")
        pads = conv_padding(self.padding, tuple(x.shape[1:-1]), self.kernel_size, self.strides, self.kernel_dilation)
        y = torch.movedim(x.to(self.dtype), -1, 1)
        flat = [p for pair in reversed(pads) for p in pair]          # F.pad: last dim first
        if any(flat):
            y = F.pad(y, flat)
        bias = None if self.bias is None else self.bias.to(self.dtype)
        y = _CONV[n](y, self.weight.to(self.dtype), bias, self.strides, 0, self.kernel_dilation, self.groups)
        return torch.movedim(y, 1, -1)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.features}, kernel_size={self.kernel_size}, strides={self.strides}, "
                f"padding={self.padding!r}, dilation={self.kernel_dilation}, groups={self.groups}")


class GroupNorm(nn.Module):
    """Group normalisation of channels-last inputs (batch, ..., features), float32 statistics
    over every non-batch axis per group (as the Flax primitive); `weight` is Flax's `scale`."""

    def __init__(self, num_groups: int, features: int, eps: float = 1e-5, affine: bool = True,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        if features % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide features={features}")
        self.num_groups, self.features, self.eps, self.affine, self.dtype = num_groups, features, eps, affine, dtype
        self.weight = nn.Parameter(initialize(ones_init(), (features,), param_dtype)) if affine else None
        self.bias = nn.Parameter(initialize(zeros_init(), (features,), param_dtype)) if affine else None

    def flax_params(self) -> dict:
        return {"scale": ("weight", False), "bias": ("bias", False)} if self.affine else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features(x, self.features, "GroupNorm")
        shape = tuple(x.shape)
        n = len(shape)
        g = torch.reshape(x.to(torch.float32), shape[:-1] + (self.num_groups, self.features // self.num_groups))
        axes = tuple(range(1, n - 1)) + (n,)
        mean = torch.mean(g, dim=axes, keepdim=True)
        var = torch.mean(torch.square(g - mean), dim=axes, keepdim=True)
        y = torch.reshape((g - mean) * torch.rsqrt(var + self.eps), shape)
        if self.affine:
            y = y * self.weight.to(torch.float32) + self.bias.to(torch.float32)
        return y.to(self.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.features}, eps={self.eps}, affine={self.affine}"


class BatchNorm(nn.Module):
    """Batch normalisation of channels-last inputs with explicit running statistics (as the
    Flax primitive): `running_mean` / `running_var` are parameters without gradients (Flax's
    `mean` / `var` leaves); the call returns `(y, (mean, var))`, the updated pair in training
    (`use_running_average=False`), for the caller to write back."""

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype: torch.dtype = torch.float32, param_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.features, self.eps, self.momentum, self.affine, self.dtype = features, eps, momentum, affine, dtype
        self.running_mean = nn.Parameter(initialize(zeros_init(), (features,), param_dtype), requires_grad=False)
        self.running_var = nn.Parameter(initialize(ones_init(), (features,), param_dtype), requires_grad=False)
        self.weight = nn.Parameter(initialize(ones_init(), (features,), param_dtype)) if affine else None
        self.bias = nn.Parameter(initialize(zeros_init(), (features,), param_dtype)) if affine else None

    def flax_params(self) -> dict:
        names = {"mean": ("running_mean", False), "var": ("running_var", False)}
        if self.affine:
            names.update({"scale": ("weight", False), "bias": ("bias", False)})
        return names

    def forward(self, x: torch.Tensor, use_running_average: Optional[bool] = True):
        _check_features(x, self.features, "BatchNorm")
        x32 = x.to(torch.float32)
        # None (a port's `deterministic` when the caller gives none) follows train() / eval().
        if not _training(self, use_running_average):
            mean, var = self.running_mean.detach().to(torch.float32), self.running_var.detach().to(torch.float32)
            new_stats = (self.running_mean, self.running_var)
        else:
            axes = tuple(range(x.ndim - 1))
            mean = torch.mean(x32, dim=axes)
            var = torch.mean(torch.square(x32 - mean), dim=axes)
            count = x.numel() // self.features
            unbiased = var.detach() * (count / max(count - 1, 1))
            m = self.momentum
            new_stats = (((1 - m) * self.running_mean + m * mean.detach()).to(self.running_mean.dtype),
                         ((1 - m) * self.running_var + m * unbiased).to(self.running_var.dtype))
        y = (x32 - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.to(torch.float32) + self.bias.to(torch.float32)
        return y.to(self.dtype), new_stats

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
