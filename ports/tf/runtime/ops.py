"""The op shim: `jnp` / `jax.nn` / `jax.lax` functions with JAX semantics, on TensorFlow tensors.

Generated code calls `ops.<name>` wherever canonical code calls a JAX function. `JAX_NAMES` is
the allow-list: it maps each JAX spelling canonical code may use to the name defined here, and
`scripts/transpile.py` reads it (statically, without importing TensorFlow) to check and rewrite
canonical code. Every entry has an op-by-op test against JAX (`tests/test_tf_ops.py`).

Semantics follow JAX (x64 off) with these documented port conventions:
- Integers are int32, as in JAX: `arange`, integer `asarray`, sums and cumsums of integers.
- Non-tensor float inputs (Python floats, float64 numpy arrays) become float32, as in JAX.
- Mixed dtypes promote as JAX does (TensorFlow itself refuses them): bool < ints < floats,
  an integer with a float gives that float, Python scalars are weakly typed.
- Out-of-range gather indices are clipped, never an error: `take` as `jnp.take(mode="clip")`
  (negative → 0, like `P.Embed`), `take_along_axis` as `jnp.take_along_axis(mode="clip")`
  (negative indices count from the end first).
- `dynamic_update_slice` clamps the start so the update fits (as JAX) and returns a new tensor.
- `shape(x)` holds Python ints where the size is static and scalar int32 tensors where it is
  not (inside `tf.function` with unknown dimensions), so shape arithmetic works in both.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Sequence

import numpy as np
import tensorflow as tf

# JAX spelling → name in this module (a plain dict literal: the transpiler reads it with `ast`).
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

dtype = tf.dtypes.DType
float32 = tf.float32
float16 = tf.float16
bfloat16 = tf.bfloat16
int32 = tf.int32
bool_ = tf.bool


def finfo(dtype_):
    """`jnp.finfo`: the numpy finfo of a floating dtype (`.min`, `.max`, `.eps`)."""
    dtype_ = _canonical(dtype_)
    if dtype_ == tf.bfloat16:
        import ml_dtypes
        return ml_dtypes.finfo(ml_dtypes.bfloat16)
    return np.finfo(dtype_.as_numpy_dtype)


class integer:
    """Category for `issubdtype(d, integer)` (signed and unsigned ints; not bool), as numpy."""


class floating:
    """Category for `issubdtype(d, floating)`."""


def issubdtype(dtype_, category) -> bool:
    dtype_ = _canonical(dtype_)
    if isinstance(category, tf.dtypes.DType):
        return dtype_ == category
    if category is integer:
        return dtype_.is_integer
    if category is floating:
        return dtype_.is_floating
    raise TypeError(f"issubdtype: unsupported category {category!r} (supported: integer, floating, dtypes)")


# JAX's promotion lattice for the dtypes canonical code meets: the result of two strongly typed
# operands is the higher rank; any float beats any integer; float16 with bfloat16 is float32.
_RANK = {tf.bool: 0, tf.uint8: 1, tf.int8: 1, tf.int16: 2, tf.int32: 3, tf.int64: 4,
         tf.float16: 10, tf.bfloat16: 10, tf.float32: 11, tf.float64: 12}


def _promote(a: tf.dtypes.DType, b: tf.dtypes.DType) -> tf.dtypes.DType:
    if a == b:
        return a
    if {a, b} == {tf.float16, tf.bfloat16}:
        return tf.float32
    return a if _RANK[a] >= _RANK[b] else b


def _weak_dtype(value, strong: tf.dtypes.DType) -> tf.dtypes.DType:
    """The dtype of `strong` combined with the Python scalar `value` (weakly typed, as JAX)."""
    if isinstance(value, bool):
        return strong
    if isinstance(value, numbers.Integral):
        return strong if strong != tf.bool else tf.int32
    return strong if strong.is_floating else tf.float32


def result_type(*args) -> tf.dtypes.DType:
    """The dtype of combining `args` (tensors, dtypes, Python scalars), scalars weakly typed."""
    if not args:
        raise TypeError("result_type: needs at least one argument")
    strong = [_canonical(a) if isinstance(a, (tf.dtypes.DType, np.dtype, type)) else _t(a).dtype
              for a in args if not isinstance(a, (bool, numbers.Number))]
    weak = [a for a in args if isinstance(a, (bool, numbers.Number))]
    if not strong:
        strong, weak = [asarray(weak[0]).dtype], weak[1:]
    result = strong[0]
    for d in strong[1:]:
        result = _promote(result, d)
    for w in weak:
        result = _weak_dtype(w, result)
    return result


# -- conversion -----------------------------------------------------------------------------------

def _canonical(dtype_):
    """numpy dtypes, names and TF dtypes → TF dtypes; float64 → float32, int64 → int32 (JAX
    with x64 off)."""
    if dtype_ is None:
        return None
    if not isinstance(dtype_, tf.dtypes.DType):
        dtype_ = tf.as_dtype(np.dtype(dtype_) if not hasattr(dtype_, "as_numpy_dtype") else dtype_)
    return {tf.float64: tf.float32, tf.int64: tf.int32}.get(dtype_, dtype_)


def asarray(x, dtype=None) -> tf.Tensor:
    """`jnp.asarray`: tensors are cast (no copy when the dtype already matches); Python
    scalars, lists and numpy arrays become tensors, float64 as float32 and int64 as int32."""
    dtype = _canonical(dtype)
    if hasattr(x, "_rosetta_unstack"):                    # P.Repeat's lazily stacked layer outputs
        x = x.stacked()
    if isinstance(x, tf.Variable):
        x = tf.convert_to_tensor(x)
    if tf.is_tensor(x):
        return x if dtype is None or x.dtype == dtype else tf.cast(x, dtype)
    if isinstance(x, (list, tuple)) and any(tf.is_tensor(e) for e in x):
        return asarray(stack([asarray(e) for e in x]), dtype)
    array = np.asarray(x)
    target = _canonical(array.dtype) if dtype is None else dtype
    if array.dtype != np.dtype(target.as_numpy_dtype):
        array = array.astype(target.as_numpy_dtype)
    return tf.convert_to_tensor(array)


def _t(x) -> tf.Tensor:
    if isinstance(x, tf.Variable):
        return tf.convert_to_tensor(x)
    return x if tf.is_tensor(x) else asarray(x)


def _pair(a, b):
    """Two operands as tensors of one dtype, Python scalars weakly typed (as JAX)."""
    a_scalar = isinstance(a, (bool, numbers.Number)) and not tf.is_tensor(a)
    b_scalar = isinstance(b, (bool, numbers.Number)) and not tf.is_tensor(b)
    if a_scalar and b_scalar:
        a = asarray(a)
        a_scalar = False
    if a_scalar:
        b = _t(b)
        common = _weak_dtype(a, b.dtype)
        return tf.constant(a, dtype=common), tf.cast(b, common)
    if b_scalar:
        a = _t(a)
        common = _weak_dtype(b, a.dtype)
        return tf.cast(a, common), tf.constant(b, dtype=common)
    a, b = _t(a), _t(b)
    common = _promote(a.dtype, b.dtype)
    return tf.cast(a, common), tf.cast(b, common)


def _ndim(x: tf.Tensor) -> int:
    return x.shape.rank


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
    if isinstance(shape, (int, np.integer)) or (tf.is_tensor(shape) and shape.shape.rank == 0):
        return (shape,)
    return tuple(shape)


def _shape_arg(shape):
    """A shape for TF ops: a list of ints when static, else a stacked int32 tensor."""
    dims = _shape_tuple(shape)
    if all(isinstance(d, (int, np.integer)) for d in dims):
        return [int(d) for d in dims]
    return tf.stack([tf.cast(d, tf.int32) for d in dims])


def arange(start, stop=None, step=None, dtype=None) -> tf.Tensor:
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if dtype is None:
        floats = [v for v in (start, stop, step) if isinstance(v, float)
                  or (tf.is_tensor(v) and v.dtype.is_floating)]
        dtype = tf.float32 if floats else tf.int32
    dtype = _canonical(dtype)
    return tf.range(tf.cast(start, dtype), tf.cast(stop, dtype), tf.cast(step, dtype), dtype=dtype)


def zeros(shape, dtype=None) -> tf.Tensor:
    return tf.zeros(_shape_arg(shape), dtype=_canonical(dtype) or tf.float32)


def ones(shape, dtype=None) -> tf.Tensor:
    return tf.ones(_shape_arg(shape), dtype=_canonical(dtype) or tf.float32)


def zeros_like(x, dtype=None) -> tf.Tensor:
    return tf.zeros_like(_t(x), dtype=_canonical(dtype))


def full(shape, fill_value, dtype=None) -> tf.Tensor:
    """As JAX: without a dtype, the fill value's (int → int32, float → float32)."""
    dtype = _canonical(dtype) or asarray(fill_value).dtype
    return tf.fill(_shape_arg(shape), tf.cast(fill_value, dtype))


def full_like(x, fill_value, dtype=None) -> tf.Tensor:
    """As JAX, the fill value is cast to the array's dtype (2.7 in an int array is 2)."""
    x = _t(x)
    dtype = _canonical(dtype) or x.dtype
    fill = tf.cast(tf.constant(fill_value), dtype) if not tf.is_tensor(fill_value) else tf.cast(fill_value, dtype)
    return tf.fill(tf.shape(x), fill)


# -- shapes --------------------------------------------------------------------------------------

def shape(x) -> tuple:
    """Static sizes as Python ints; dynamic ones (None in the static shape) as int32 scalars."""
    if isinstance(x, tf.Variable) or tf.is_tensor(x):
        static = x.shape.as_list()
        if all(d is not None for d in static):
            return tuple(static)
        dynamic = tf.shape(x)
        return tuple(d if d is not None else dynamic[i] for i, d in enumerate(static))
    return tuple(np.shape(x))


def reshape(x, shape) -> tf.Tensor:
    return tf.reshape(_t(x), _shape_arg(shape))


def expand_dims(x, axis) -> tf.Tensor:
    x = _t(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out_ndim = _ndim(x) + len(axes)
    for a in sorted(_axis(a, out_ndim) for a in axes):
        x = tf.expand_dims(x, a)
    return x


def squeeze(x, axis=None) -> tf.Tensor:
    """As JAX: squeezing an axis whose size is not 1 is an error."""
    x = _t(x)
    if axis is None:
        return tf.squeeze(x)
    axes = _axes(axis, _ndim(x))
    sizes = shape(x)
    bad = [a for a in axes if isinstance(sizes[a], int) and sizes[a] != 1]
    if bad:
        raise ValueError(f"cannot select an axis to squeeze out which has size not equal to one, "
                         f"got shape={sizes} and dimensions={tuple(bad)}")
    return tf.squeeze(x, axis=list(axes))


def transpose(x, axes=None) -> tf.Tensor:
    x = _t(x)
    if axes is None:
        axes = tuple(reversed(range(_ndim(x))))
    return tf.transpose(x, [_axis(a, _ndim(x)) for a in axes])


def broadcast_to(x, shape) -> tf.Tensor:
    return tf.broadcast_to(_t(x), _shape_arg(shape))


def _common(xs):
    xs = [_t(x) for x in xs]
    common = xs[0].dtype
    for x in xs[1:]:
        common = _promote(common, x.dtype)
    return [tf.cast(x, common) for x in xs]


def concatenate(arrays, axis=0) -> tf.Tensor:
    return tf.concat(_common(arrays), axis=axis)


def stack(arrays, axis=0) -> tf.Tensor:
    return tf.stack(_common(arrays), axis=axis)


def unstack(x, axis=0) -> tuple:
    # Per-layer outputs of `P.Repeat` arrive as a lazy stack: unstacking it copies nothing.
    unstacked = getattr(x, "_rosetta_unstack", None)
    if unstacked is not None:
        return unstacked(axis)
    return tuple(tf.unstack(_t(x), axis=axis))


# -- elementwise ---------------------------------------------------------------------------------

def _float(x) -> tf.Tensor:
    """Transcendental functions of integers give float32, as in JAX."""
    x = _t(x)
    return x if x.dtype.is_floating or x.dtype.is_complex else tf.cast(x, tf.float32)


def abs(x) -> tf.Tensor:  # noqa: A001 (jnp's name)
    return tf.abs(_t(x))


def square(x) -> tf.Tensor:
    return tf.square(_t(x))


def power(x, y) -> tf.Tensor:
    x, y = _pair(x, y)
    if x.dtype.is_integer:
        return tf.cast(tf.round(tf.pow(tf.cast(x, tf.float64), tf.cast(y, tf.float64))), x.dtype)
    return tf.pow(x, y)


def exp(x) -> tf.Tensor:
    return tf.exp(_float(x))


def log(x) -> tf.Tensor:
    return tf.math.log(_float(x))


def log1p(x) -> tf.Tensor:
    return tf.math.log1p(_float(x))


def sin(x) -> tf.Tensor:
    return tf.sin(_float(x))


def cos(x) -> tf.Tensor:
    return tf.cos(_float(x))


def tanh(x) -> tf.Tensor:
    return tf.tanh(_float(x))


def floor(x) -> tf.Tensor:
    x = _t(x)
    return tf.floor(x) if x.dtype.is_floating else x


def minimum(x, y) -> tf.Tensor:
    return tf.minimum(*_pair(x, y))


def maximum(x, y) -> tf.Tensor:
    return tf.maximum(*_pair(x, y))


def clip(x, min=None, max=None) -> tf.Tensor:  # noqa: A002 (jnp's names)
    """`jnp.clip(x, min, max)`; bounds promote the result as in JAX (int array, float bound →
    float)."""
    x = _t(x)
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


def where(condition, x=None, y=None) -> tf.Tensor:
    if x is None or y is None:
        raise TypeError("where: the one-argument form (indices of non-zeros) has a data-dependent shape; "
                        "pass both x and y")
    condition = tf.cast(_t(condition), tf.bool)
    x, y = _pair(x, y)
    return tf.where(condition, x, y)


def equal(x, y) -> tf.Tensor:
    return tf.equal(*_pair(x, y))


def not_equal(x, y) -> tf.Tensor:
    return tf.not_equal(*_pair(x, y))


def logical_and(x, y) -> tf.Tensor:
    return tf.logical_and(tf.cast(_t(x), tf.bool), tf.cast(_t(y), tf.bool))


def logical_not(x) -> tf.Tensor:
    return tf.logical_not(tf.cast(_t(x), tf.bool))


# -- reductions ----------------------------------------------------------------------------------

def sum(x, axis=None, keepdims=False, dtype=None) -> tf.Tensor:  # noqa: A001 (jnp's name)
    x = _t(x)
    if dtype is None and x.dtype == tf.bool:
        dtype = tf.int32
    if dtype is not None:
        x = tf.cast(x, _canonical(dtype))
    return tf.reduce_sum(x, axis=list(_axes(axis, _ndim(x))), keepdims=keepdims)


def mean(x, axis=None, keepdims=False, dtype=None) -> tf.Tensor:
    x = _float(x)
    if dtype is not None:
        x = tf.cast(x, _canonical(dtype))
    return tf.reduce_mean(x, axis=list(_axes(axis, _ndim(x))), keepdims=keepdims)


def max(x, axis=None, keepdims=False) -> tf.Tensor:  # noqa: A001 (jnp's name)
    x = _t(x)
    if x.shape.num_elements() == 0:
        raise ValueError("max: zero-size array to reduction operation max which has no identity")
    return tf.reduce_max(x, axis=list(_axes(axis, _ndim(x))), keepdims=keepdims)


def cumsum(x, axis=None, dtype=None) -> tf.Tensor:
    x = _t(x)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    if dtype is None and x.dtype == tf.bool:
        dtype = tf.int32
    if dtype is not None:
        x = tf.cast(x, _canonical(dtype))
    return tf.cumsum(x, axis=_axis(axis, _ndim(x)))


# -- indexing ------------------------------------------------------------------------------------

def take(x, indices, axis=None) -> tf.Tensor:
    """`jnp.take(x, indices, axis, mode="clip")`: out-of-range indices (negative ones too) are
    clamped into [0, n - 1], as `P.Embed` does."""
    x = _t(x)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    axis = _axis(axis, _ndim(x))
    n = shape(x)[axis]
    indices = tf.clip_by_value(tf.cast(_t(indices), tf.int32), 0, tf.cast(n, tf.int32) - 1)
    return tf.gather(x, indices, axis=axis)


def take_along_axis(x, indices, axis) -> tf.Tensor:
    """`jnp.take_along_axis(x, indices, axis, mode="clip")`: negative indices count from the
    end, then out-of-range ones are clamped; other axes broadcast, as in JAX."""
    x, indices = _t(x), tf.cast(_t(indices), tf.int32)
    if _ndim(x) != _ndim(indices):
        raise ValueError(f"take_along_axis: indices must have the array's rank {_ndim(x)}, got {_ndim(indices)}")
    rank = _ndim(x)
    axis = _axis(axis, rank)
    n = tf.shape(x)[axis]
    indices = tf.clip_by_value(tf.where(indices < 0, indices + n, indices), 0, n - 1)
    # Broadcast every other axis, then gather along `axis` with the others as batch dims.
    x_shape, i_shape = tf.shape(x), tf.shape(indices)
    other = [i for i in range(rank) if i != axis]
    batch = tf.broadcast_dynamic_shape(tf.gather(x_shape, other), tf.gather(i_shape, other))
    x_full = tf.concat([batch[:axis], x_shape[axis:axis + 1], batch[axis:]], 0)
    i_full = tf.concat([batch[:axis], i_shape[axis:axis + 1], batch[axis:]], 0)
    x = tf.broadcast_to(x, x_full)
    indices = tf.broadcast_to(indices, i_full)
    perm = other + [axis]
    inverse = [perm.index(i) for i in range(rank)]
    gathered = tf.gather(tf.transpose(x, perm), tf.transpose(indices, perm), batch_dims=rank - 1)
    return tf.transpose(gathered, inverse)


# -- contractions --------------------------------------------------------------------------------

def dot(a, b) -> tf.Tensor:
    """`jnp.dot`: matrix product for ≤2-D `b`; for N-D `b`, the sum over a's last axis and b's
    second-to-last (numpy's rule, which differs from matmul's batching)."""
    a, b = _pair(a, b)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return a * b
    if _ndim(b) == 1:
        return tf.tensordot(a, b, axes=[[_ndim(a) - 1], [0]])
    return tf.tensordot(a, b, axes=[[_ndim(a) - 1], [_ndim(b) - 2]])


def einsum(subscripts: str, *operands) -> tf.Tensor:
    return tf.einsum(subscripts, *_common(operands))


# -- jax.nn --------------------------------------------------------------------------------------

def log_softmax(x, axis=-1) -> tf.Tensor:
    return tf.nn.log_softmax(_float(x), axis=axis)


def softmax(x, axis=-1) -> tf.Tensor:
    return tf.nn.softmax(_float(x), axis=axis)


# -- jax.lax -------------------------------------------------------------------------------------

def dynamic_update_slice(operand, update, start_indices: Sequence) -> tf.Tensor:
    """A copy of `operand` with `update` written at `start_indices`; negative starts count
    from the end and starts are then clamped so the update fits, as in JAX."""
    operand, update = _t(operand), tf.cast(_t(update), _t(operand).dtype)
    rank = _ndim(operand)
    if len(start_indices) != rank or _ndim(update) != rank:
        raise ValueError(f"dynamic_update_slice: operand rank {rank}, update rank {_ndim(update)}, "
                         f"{len(start_indices)} start indices; all must agree")
    dims, sizes = tf.shape(operand), tf.shape(update)
    starts = []
    for i, start in enumerate(start_indices):
        start = tf.cast(start, tf.int32)
        start = tf.where(start < 0, start + dims[i], start)
        starts.append(tf.clip_by_value(start, 0, dims[i] - sizes[i]))
    # Indices of every element of the update, offset by the start: one scatter, no Python loop
    # over positions (works under tf.function with dynamic starts).
    grids = tf.meshgrid(*[tf.range(sizes[i]) + starts[i] for i in range(rank)], indexing="ij")
    indices = tf.stack(grids, axis=-1)
    return tf.tensor_scatter_nd_update(operand, indices, update)


__all__ = sorted(set(JAX_NAMES.values()))
