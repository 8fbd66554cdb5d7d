"""The `chex` shape assertions canonical code uses, on torch tensors (same messages' gist)."""
from __future__ import annotations

from typing import Sequence

import torch


def _shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(getattr(x, "shape", ()))


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


def assert_equal_shape(inputs: Sequence) -> None:
    """`chex.assert_equal_shape([a, b, ...])`: every array has the same shape."""
    shapes = [_shape(x) for x in inputs]
    if any(s != shapes[0] for s in shapes[1:]):
        raise AssertionError(f"[Chex] Error in assert_equal_shape: arrays have different shapes: {shapes}")


def assert_shape(inputs, expected_shape: Sequence) -> None:
    """`chex.assert_shape(x, shape)`: `x` (or each array of a sequence) has `shape`; None in
    `shape` matches any size."""
    arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for i, x in enumerate(arrays):
        shape = _shape(x)
        if len(shape) != len(expected_shape) or any(e is not None and e != s for s, e in zip(shape, expected_shape)):
            raise AssertionError(f"[Chex] Error in assert_shape: input {i} has shape {shape}, "
                                 f"expected {tuple(expected_shape)}")
