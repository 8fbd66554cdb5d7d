"""The op shim: `jnp` / `jax.nn` / `jax.lax` functions with JAX semantics, on torch tensors.

Generated code calls `ops.<name>` wherever canonical code calls a JAX function. `JAX_NAMES` is
the allow-list: it maps each JAX spelling canonical code may use to the name defined here, and
`scripts/transpile.py` reads it (statically, without importing torch) to check and rewrite
canonical code. Every entry has an op-by-op test against JAX (`tests/test_torch_ops.py`).

Semantics follow JAX with these documented port conventions:
- Integers are int64 where JAX (x64 off) has int32: `arange`, integer `asarray`, sums and
  cumsums of integers. Values are equal; torch indexing wants int64.
- Non-tensor float inputs (Python floats, float64 numpy arrays) become float32, as in JAX.
- Out-of-range gather indices are clipped, never an error or NaN: `take` as
  `jnp.take(mode="clip")` (negative → 0, like `P.Embed`), `take_along_axis` as
  `jnp.take_along_axis(mode="clip")` (negative indices count from the end first).
- `dynamic_update_slice` clamps the start so the update fits (as JAX) and returns a new
  tensor (functional, like JAX): the operand is never modified; inside `inplace_updates()` it
  copies an operand once and then writes into that copy (decode loops: a KV cache is not
  copied per layer and step).
- Creation ops (`zeros`, `ones`, `arange`, ...) use torch's default device; generated modules
  set it to their parameters' device while they run (`runtime.module.Module`).
"""
from __future__ import annotations

import builtins
import contextlib
import numbers
import threading
import weakref
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# JAX spelling → name in this module. The transpiler rewrites `jnp.reshape` to `ops.reshape`
# only if "jax.numpy.reshape" is a key here; keep it a plain dict literal (read with `ast`).
JAX_NAMES = {
    # dtypes and dtype queries
    "jax.numpy.dtype": "dtype",
    "jax.numpy.float32": "float32",
    "jax.numpy.float16": "float16",
    "jax.numpy.bfloat16": "bfloat16",
    "jax.numpy.int32": "int32",
    "jax.numpy.bool_": "bool_",
    "jax.numpy.integer": "integer",
    "jax.numpy.floating": "floating",
    "jax.numpy.finfo": "finfo",
    "jax.numpy.result_type": "result_type",
    "jax.numpy.issubdtype": "issubdtype",
    # creation
    "jax.numpy.asarray": "asarray",
    "jax.numpy.arange": "arange",
    "jax.numpy.zeros": "zeros",
    "jax.numpy.ones": "ones",
    "jax.numpy.zeros_like": "zeros_like",
    "jax.numpy.full": "full",
    "jax.numpy.full_like": "full_like",
    # shapes
    "jax.numpy.shape": "shape",
    "jax.numpy.reshape": "reshape",
    "jax.numpy.expand_dims": "expand_dims",
    "jax.numpy.squeeze": "squeeze",
    "jax.numpy.transpose": "transpose",
    "jax.numpy.broadcast_to": "broadcast_to",
    "jax.numpy.concatenate": "concatenate",
    "jax.numpy.stack": "stack",
    "jax.numpy.unstack": "unstack",
    # elementwise
    "jax.numpy.abs": "abs",
    "jax.numpy.square": "square",
    "jax.numpy.power": "power",
    "jax.numpy.exp": "exp",
    "jax.numpy.log": "log",
    "jax.numpy.log1p": "log1p",
    "jax.numpy.sin": "sin",
    "jax.numpy.cos": "cos",
    "jax.numpy.tanh": "tanh",
    "jax.numpy.floor": "floor",
    "jax.numpy.minimum": "minimum",
    "jax.numpy.maximum": "maximum",
    "jax.numpy.clip": "clip",
    "jax.numpy.where": "where",
    "jax.numpy.equal": "equal",
    "jax.numpy.not_equal": "not_equal",
    "jax.numpy.logical_and": "logical_and",
    "jax.numpy.logical_not": "logical_not",
    # reductions and scans
    "jax.numpy.sum": "sum",
    "jax.numpy.mean": "mean",
    "jax.numpy.max": "max",
    "jax.numpy.cumsum": "cumsum",
    # indexing
    "jax.numpy.take": "take",
    "jax.numpy.take_along_axis": "take_along_axis",
    # contractions
    "jax.numpy.dot": "dot",
    "jax.numpy.einsum": "einsum",
    # jax.nn
    "jax.nn.log_softmax": "log_softmax",
    "jax.nn.softmax": "softmax",
    # jax.lax
    "jax.lax.dynamic_update_slice": "dynamic_update_slice",
}

# -- dtypes ---------------------------------------------------------------------------------------

dtype = torch.dtype
float32 = torch.float32
float16 = torch.float16
bfloat16 = torch.bfloat16
int32 = torch.int32
bool_ = torch.bool
finfo = torch.finfo


class integer:
    """Category for `issubdtype(d, integer)` (signed and unsigned ints; not bool), as numpy."""


class floating:
    """Category for `issubdtype(d, floating)`."""


def issubdtype(dtype_, category) -> bool:
    if isinstance(category, torch.dtype):
        return dtype_ == category
    if category is integer:
        return not (dtype_.is_floating_point or dtype_.is_complex or dtype_ == torch.bool)
    if category is floating:
        return dtype_.is_floating_point
    raise TypeError(f"issubdtype: unsupported category {category!r} (supported: integer, floating, dtypes)")


def result_type(*args) -> torch.dtype:
    """The dtype of combining `args` (tensors, dtypes, Python scalars), scalars weakly typed."""
    if not args:
        raise TypeError("result_type: needs at least one argument")
    strong = [torch.empty((), dtype=a) if isinstance(a, torch.dtype) else _t(a)
              for a in args if not isinstance(a, (bool, numbers.Number))]
    weak = [a for a in args if isinstance(a, (bool, numbers.Number))]
    if not strong:
        strong, weak = [asarray(weak[0])], weak[1:]
    result = strong[0]
    for a in strong[1:] + weak:
        result = torch.empty((), dtype=torch.result_type(result, a))
    return result.dtype


# -- conversion -----------------------------------------------------------------------------------

def _canonical(dtype_):
    """numpy dtypes and names → torch dtypes; float64 → float32 (JAX with x64 off)."""
    if dtype_ is None or isinstance(dtype_, torch.dtype):
        return dtype_
    np_dtype = np.dtype(dtype_)
    if np_dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros((), np_dtype)).dtype


def asarray(x, dtype=None) -> torch.Tensor:
    """`jnp.asarray`: tensors are cast (no copy when the dtype already matches); Python
    scalars, lists and numpy arrays become tensors, float64 as float32."""
    dtype = _canonical(dtype)
    if hasattr(x, "_rosetta_unstack"):                    # P.Repeat's lazily stacked layer outputs
        x = x.stacked()
    if isinstance(x, torch.Tensor):
        return x if dtype is None or x.dtype == dtype else x.to(dtype)
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        array = np.asarray(x)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
        return torch.as_tensor(array, dtype=dtype)
    if isinstance(x, (list, tuple)) and any(isinstance(e, torch.Tensor) for e in x):
        return asarray(stack([asarray(e) for e in x]), dtype)
    result = torch.as_tensor(x, dtype=dtype)
    if dtype is None and result.dtype == torch.float64:
        result = result.to(torch.float32)
    return result


def _t(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else asarray(x)


def _pair(a, b):
    """Two operands as tensors of one dtype, Python scalars weakly typed (as JAX)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        common = torch.result_type(a, b)
        return a.to(common), b.to(common)
    if isinstance(a, torch.Tensor):
        common = torch.result_type(a, b)
        return a.to(common), torch.as_tensor(b, dtype=common, device=a.device)
    if isinstance(b, torch.Tensor):
        common = torch.result_type(a, b)
        return torch.as_tensor(a, dtype=common, device=b.device), b.to(common)
    return _pair(asarray(a), b)


def _axis(axis, ndim: int) -> int:
    if not -ndim <= axis < builtins.max(ndim, 1):
        raise ValueError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % builtins.max(ndim, 1)


def _axes(axis, ndim: int):
    """None → every axis; int or sequence → a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        return (_axis(axis, ndim),)
    return tuple(_axis(a, ndim) for a in axis)


# -- creation ------------------------------------------------------------------------------------

def _shape_tuple(shape) -> tuple:
    return (shape,) if isinstance(shape, (int, torch.SymInt)) else tuple(shape)


def arange(start, stop=None, step=None, dtype=None) -> torch.Tensor:
    if stop is None:
        start, stop = 0, start
    return torch.arange(start, stop, 1 if step is None else step, dtype=_canonical(dtype))


def zeros(shape, dtype=None) -> torch.Tensor:
    return torch.zeros(_shape_tuple(shape), dtype=_canonical(dtype) or torch.float32)


def ones(shape, dtype=None) -> torch.Tensor:
    return torch.ones(_shape_tuple(shape), dtype=_canonical(dtype) or torch.float32)


def zeros_like(x, dtype=None) -> torch.Tensor:
    return torch.zeros_like(_t(x), dtype=_canonical(dtype))


def full(shape, fill_value, dtype=None) -> torch.Tensor:
    """As JAX: without a dtype, the fill value's (int32 → the port's int64, float → float32)."""
    if dtype is None:
        dtype = asarray(fill_value).dtype
    return torch.full(_shape_tuple(shape), fill_value, dtype=_canonical(dtype))


def full_like(x, fill_value, dtype=None) -> torch.Tensor:
    """As JAX, the fill value is cast to the array's dtype (2.7 in an int array is 2)."""
    x = _t(x)
    return torch.full_like(x, fill_value, dtype=_canonical(dtype) or x.dtype)


# -- shapes --------------------------------------------------------------------------------------

def shape(x) -> tuple:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    return tuple(np.shape(x))


def reshape(x, shape) -> torch.Tensor:
    return torch.reshape(_t(x), _shape_tuple(shape))


def expand_dims(x, axis) -> torch.Tensor:
    x = _t(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out_ndim = x.ndim + len(axes)
    for a in sorted(_axis(a, out_ndim) for a in axes):
        x = torch.unsqueeze(x, a)
    return x


def squeeze(x, axis=None) -> torch.Tensor:
    """As JAX: squeezing an axis whose size is not 1 is an error (torch silently keeps it)."""
    x = _t(x)
    if axis is None:
        return torch.squeeze(x)
    axes = _axes(axis, x.ndim)
    bad = [a for a in axes if x.shape[a] != 1]
    if bad:
        raise ValueError(f"cannot select an axis to squeeze out which has size not equal to one, "
                         f"got shape={tuple(x.shape)} and dimensions={tuple(bad)}")
    return torch.squeeze(x, axes)


def transpose(x, axes=None) -> torch.Tensor:
    x = _t(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    return torch.permute(x, tuple(_axis(a, x.ndim) for a in axes))


def broadcast_to(x, shape) -> torch.Tensor:
    return torch.broadcast_to(_t(x), _shape_tuple(shape))


def _common(xs):
    xs = [_t(x) for x in xs]
    common = xs[0].dtype
    for x in xs[1:]:
        common = torch.promote_types(common, x.dtype)
    return [x.to(common) for x in xs]


def concatenate(arrays, axis=0) -> torch.Tensor:
    return torch.cat(_common(arrays), dim=axis)


def stack(arrays, axis=0) -> torch.Tensor:
    return torch.stack(_common(arrays), dim=axis)


def unstack(x, axis=0) -> tuple:
    # Per-layer outputs of `P.Repeat` arrive as a lazy stack: unstacking it copies nothing.
    unstacked = getattr(x, "_rosetta_unstack", None)
    if unstacked is not None:
        return unstacked(axis)
    return tuple(torch.unbind(_t(x), dim=axis))


# -- elementwise ---------------------------------------------------------------------------------

def _float(x) -> torch.Tensor:
    """Transcendental functions of integers give float32, as in JAX."""
    x = _t(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.float32)


def abs(x) -> torch.Tensor:  # noqa: A001 (jnp's name)
    return torch.abs(_t(x))


def square(x) -> torch.Tensor:
    return torch.square(_t(x))


def power(x, y) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
        x = asarray(x)
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        x, y = _pair(x, y)
    return torch.pow(x, y)


def exp(x) -> torch.Tensor:
    return torch.exp(_float(x))


def log(x) -> torch.Tensor:
    return torch.log(_float(x))


def log1p(x) -> torch.Tensor:
    return torch.log1p(_float(x))


def sin(x) -> torch.Tensor:
    return torch.sin(_float(x))


def cos(x) -> torch.Tensor:
    return torch.cos(_float(x))


def tanh(x) -> torch.Tensor:
    return torch.tanh(_float(x))


def floor(x) -> torch.Tensor:
    x = _t(x)
    return torch.floor(x) if x.is_floating_point() else x


def minimum(x, y) -> torch.Tensor:
    return torch.minimum(*_pair(x, y))


def maximum(x, y) -> torch.Tensor:
    return torch.maximum(*_pair(x, y))


def clip(x, min=None, max=None) -> torch.Tensor:  # noqa: A002 (jnp's names)
    """`jnp.clip(x, min, max)`; bounds promote the result as in JAX (int array, float bound →
    float)."""
    x = _t(x)
    for bound in (min, max):
        if bound is not None:
            x = x.to(torch.result_type(x, bound))
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


def where(condition, x=None, y=None) -> torch.Tensor:
    if x is None or y is None:
        raise TypeError("where: the one-argument form (indices of non-zeros) has a data-dependent shape; "
                        "pass both x and y")
    condition = _t(condition)
    if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
        x, y = _pair(x, y)
    elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        x, y = _pair(x, y)
    return torch.where(condition.to(torch.bool), x, y)


def equal(x, y) -> torch.Tensor:
    return torch.eq(*_pair(x, y))


def not_equal(x, y) -> torch.Tensor:
    return torch.ne(*_pair(x, y))


def logical_and(x, y) -> torch.Tensor:
    return torch.logical_and(_t(x), _t(y))


def logical_not(x) -> torch.Tensor:
    return torch.logical_not(_t(x))


# -- reductions ----------------------------------------------------------------------------------

def sum(x, axis=None, keepdims=False, dtype=None) -> torch.Tensor:  # noqa: A001 (jnp's name)
    x = _t(x)
    if x.dtype == torch.bool and dtype is None:
        dtype = torch.int64
    return torch.sum(x, dim=_axes(axis, x.ndim), keepdim=keepdims, dtype=_canonical(dtype))


def mean(x, axis=None, keepdims=False, dtype=None) -> torch.Tensor:
    x = _float(x)
    return torch.mean(x, dim=_axes(axis, x.ndim), keepdim=keepdims, dtype=_canonical(dtype))


def max(x, axis=None, keepdims=False) -> torch.Tensor:  # noqa: A001 (jnp's name)
    x = _t(x)
    if x.numel() == 0:
        raise ValueError("max: zero-size array to reduction operation max which has no identity")
    return torch.amax(x, dim=_axes(axis, x.ndim), keepdim=keepdims)


def cumsum(x, axis=None, dtype=None) -> torch.Tensor:
    x = _t(x)
    if axis is None:
        x, axis = torch.reshape(x, (-1,)), 0
    if dtype is None and x.dtype == torch.bool:
        dtype = torch.int64
    return torch.cumsum(x, dim=axis, dtype=_canonical(dtype))


# -- indexing ------------------------------------------------------------------------------------

def take(x, indices, axis=None) -> torch.Tensor:
    """`jnp.take(x, indices, axis, mode="clip")`: out-of-range indices (negative ones too) are
    clamped into [0, n - 1], as `P.Embed` does."""
    x = _t(x)
    if axis is None:
        x, axis = torch.reshape(x, (-1,)), 0
    axis = _axis(axis, x.ndim)
    indices = _t(indices)
    flat = torch.clamp(torch.reshape(indices, (-1,)), 0, x.shape[axis] - 1).to(torch.int64)
    picked = torch.index_select(x, axis, flat)
    return torch.reshape(picked, tuple(x.shape[:axis]) + tuple(indices.shape) + tuple(x.shape[axis + 1:]))


def take_along_axis(x, indices, axis) -> torch.Tensor:
    """`jnp.take_along_axis(x, indices, axis, mode="clip")`: negative indices count from the
    end, then out-of-range ones are clamped; other axes broadcast, as in JAX."""
    x, indices = _t(x), _t(indices)
    if x.ndim != indices.ndim:
        raise ValueError(f"take_along_axis: indices must have the array's rank {x.ndim}, got {indices.ndim}")
    axis = _axis(axis, x.ndim)
    n = x.shape[axis]
    indices = indices.to(torch.int64)
    indices = torch.clamp(torch.where(indices < 0, indices + n, indices), 0, n - 1)
    batch = torch.broadcast_shapes(tuple(s for i, s in enumerate(x.shape) if i != axis),
                                   tuple(s for i, s in enumerate(indices.shape) if i != axis))
    x_shape, i_shape = list(batch), list(batch)
    x_shape.insert(axis, n)
    i_shape.insert(axis, indices.shape[axis])
    return torch.gather(torch.broadcast_to(x, x_shape), axis, torch.broadcast_to(indices, i_shape))


# -- contractions --------------------------------------------------------------------------------

def dot(a, b) -> torch.Tensor:
    """`jnp.dot`: matrix product for ≤2-D `b`; for N-D `b`, the sum over a's last axis and b's
    second-to-last (numpy's rule, which differs from matmul's batching)."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2:
        return torch.matmul(a, b)
    return torch.tensordot(a, b, dims=([a.ndim - 1], [b.ndim - 2]))


def einsum(subscripts: str, *operands) -> torch.Tensor:
    return torch.einsum(subscripts, *_common(operands))


# -- jax.nn --------------------------------------------------------------------------------------

def log_softmax(x, axis=-1) -> torch.Tensor:
    return torch.log_softmax(_float(x), dim=axis)


def softmax(x, axis=-1) -> torch.Tensor:
    return torch.softmax(_float(x), dim=axis)


# -- jax.lax -------------------------------------------------------------------------------------

_STATE = threading.local()   # .owned: tensors `inplace_updates` may write into


@contextlib.contextmanager
def inplace_updates():
    """Within this block `dynamic_update_slice` copies an operand once, then updates that copy
    in place on every later call (and returns it).

    JAX's update is functional; eager torch must then copy the operand on every call. For a KV
    cache that is a copy of the whole cache per layer and step: measured 1.49 s against 0.14 s
    per token for GPT-2-small shapes (12 layers, 1024 positions, one CPU thread). The first copy
    keeps aliased operands apart (`init_cache` returns one zeros array for keys and values).
    Wrap a decode loop in it when no older cache is read again; without grad.
    """
    previous = getattr(_STATE, "owned", None)
    _STATE.owned = {}                                     # id → weakref (tensors compare elementwise)
    try:
        yield
    finally:
        _STATE.owned = previous


def dynamic_update_slice(operand, update, start_indices: Sequence) -> torch.Tensor:
    """A copy of `operand` with `update` written at `start_indices`; negative starts count
    from the end and starts are then clamped so the update fits, as in JAX. Functional like
    JAX unless inside `inplace_updates()`."""
    operand, update = _t(operand), _t(update)
    if len(start_indices) != operand.ndim or update.ndim != operand.ndim:
        raise ValueError(f"dynamic_update_slice: operand rank {operand.ndim}, update rank {update.ndim}, "
                         f"{len(start_indices)} start indices; all must agree")
    window = []
    for start, size, dim in zip(start_indices, update.shape, operand.shape):
        start = int(start)
        start = start + dim if start < 0 else start          # negative starts count from the end
        start = 0 if start < 0 else (dim - size if start > dim - size else start)
        window.append(slice(start, start + size))
    owned = getattr(_STATE, "owned", None)
    if owned is not None and owned.get(id(operand), lambda: None)() is operand:
        out = operand
    else:
        out = operand.clone()
        if owned is not None:
            owned[id(out)] = weakref.ref(out)
    out[tuple(window)] = update.to(operand.dtype)
    return out


__all__ = sorted(set(JAX_NAMES.values()) | {"inplace_updates"})
