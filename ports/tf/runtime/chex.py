"""The `chex` shape assertions canonical code uses, on TensorFlow tensors. Unknown sizes (None in
a static shape, inside `tf.function`) match any expected size."""
from __future__ import annotations

from typing import Sequence


def _shape(x) -> tuple:
    shape = getattr(x, "shape", ())
    return tuple(shape.as_list()) if hasattr(shape, "as_list") else tuple(shape)


def assert_rank(inputs, expected_ranks) -> None:
    """`chex.assert_rank(x, n)`: `x` (or each of a sequence of arrays) has rank `n` (an int,
    or a set of allowed ranks)."""
    arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    ranks = expected_ranks if isinstance(expected_ranks, (list, tuple)) else [expected_ranks] * len(arrays)
    for i, (x, rank) in enumerate(zip(arrays, ranks)):
        allowed = rank if isinstance(rank, (set, frozenset)) else {rank}
        if len(_shape(x)) not in allowed:
            raise AssertionError(f"[Chex] Error in assert_rank: input {i} has rank {len(_shape(x))} "
                                 f"(shape {_shape(x)}), expected {rank}")


def _same(a, b) -> bool:
    return a is None or b is None or a == b


def assert_equal_shape(inputs: Sequence) -> None:
    """`chex.assert_equal_shape([a, b, ...])`: every array has the same shape."""
    shapes = [_shape(x) for x in inputs]
    if any(len(s) != len(shapes[0]) or not all(_same(a, b) for a, b in zip(s, shapes[0])) for s in shapes[1:]):
        raise AssertionError(f"[Chex] Error in assert_equal_shape: arrays have different shapes: {shapes}")


def assert_shape(inputs, expected_shape: Sequence) -> None:
    """`chex.assert_shape(x, shape)`: `x` (or each array of a sequence) has `shape`; None in
    `shape` matches any size."""
    arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    expected = tuple(e if isinstance(e, int) or e is None else None for e in expected_shape)
    for i, x in enumerate(arrays):
        shape = _shape(x)
        if len(shape) != len(expected) or not all(_same(s, e) for s, e in zip(shape, expected)):
            raise AssertionError(f"[Chex] Error in assert_shape: input {i} has shape {shape}, "
                                 f"expected {tuple(expected_shape)}")
