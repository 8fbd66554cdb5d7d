"""The torch op shim (`ports/torch/runtime/ops.py`) against JAX, op by op, edge cases included.

Every entry of the allow-list `JAX_NAMES` has cases here (checked by the last tests), so an op
cannot enter the portable subset untested. Each case calls the JAX function and its shim twin
on the same inputs and compares values and dtypes, under the port's documented conventions:
int64 where JAX (x64 off) gives int32, and `mode="clip"` gathers.
"""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ports.torch.runtime import chex as torch_chex
from ports.torch.runtime import ops

RNG = np.random.default_rng(0)
F = RNG.normal(size=(2, 3, 4)).astype(np.float32)
POS = np.abs(F) + 0.1
I = RNG.integers(-5, 6, size=(3, 4)).astype(np.int32)
B = RNG.random((3, 4)) < 0.5


def jax_fn(spelling: str):
    module, _, name = spelling.rpartition(".")
    return getattr(importlib.import_module(module), name)


def to_jax(x):
    if isinstance(x, np.ndarray):
        return jnp.asarray(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, np.ndarray) for e in x):
        return type(x)(jnp.asarray(e) for e in x)
    return x


def to_torch(x):
    if isinstance(x, np.ndarray):
        return torch.as_tensor(x.copy())
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, np.ndarray) for e in x):
        return type(x)(torch.as_tensor(e.copy()) for e in x)
    if isinstance(x, np.dtype) or x in (np.float32, np.int32, np.bool_):
        return {np.dtype(np.float32): torch.float32, np.dtype(np.int32): torch.int32,
                np.dtype(np.bool_): torch.bool}[np.dtype(x)]
    return x


def dtype_kind(dtype) -> str:
    """int32 and int64 are the same kind (the port's int64 convention); floats by width."""
    name = str(dtype).replace("torch.", "")
    if name in ("int32", "int64"):
        return "int"
    return {"bool_": "bool"}.get(name, name)


def assert_same(got, want, op):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{op}: {got!r} vs {want!r}"
        for g, w in zip(got, want):
            assert_same(g, w, op)
        return
    if not hasattr(want, "dtype"):                       # Python values (shapes)
        assert got == want, f"{op}: {got!r} != {want!r}"
        return
    assert isinstance(got, torch.Tensor), f"{op}: returned {type(got)}"
    want = np.asarray(want)
    assert tuple(got.shape) == want.shape, f"{op}: shape {tuple(got.shape)} vs {want.shape}"
    assert dtype_kind(got.dtype) == dtype_kind(want.dtype), f"{op}: dtype {got.dtype} vs {want.dtype}"
    np.testing.assert_allclose(got.numpy().astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-6,
                               err_msg=op)


# (JAX spelling, args, kwargs): the JAX function and the shim get the same inputs.
CASES = [
    # creation
    ("jax.numpy.asarray", ([1.5, 2.0],), {}),
    ("jax.numpy.asarray", ([1, 2],), {}),
    ("jax.numpy.asarray", (np.arange(3, dtype=np.float64),), {}),        # float64 → float32
    ("jax.numpy.asarray", (F,), {"dtype": np.int32}),                    # float → int truncates
    ("jax.numpy.asarray", (B,), {"dtype": np.float32}),
    ("jax.numpy.asarray", (2.5,), {}),
    ("jax.numpy.arange", (5,), {}),
    ("jax.numpy.arange", (0, 7, 2), {"dtype": np.float32}),
    ("jax.numpy.arange", (2, 6), {}),
    ("jax.numpy.zeros", ((2, 3),), {}),
    ("jax.numpy.zeros", (4,), {"dtype": np.int32}),
    ("jax.numpy.ones", ((2, 3), np.int32), {}),
    ("jax.numpy.zeros_like", (I,), {}),
    ("jax.numpy.zeros_like", (I,), {"dtype": np.float32}),
    ("jax.numpy.full", ((2, 3), 7), {}),
    ("jax.numpy.full", ((2, 3), 1.5), {}),
    ("jax.numpy.full", ((4,), 2, np.float32), {}),
    ("jax.numpy.full_like", (I, 2.7), {}),                               # cast to the array's dtype
    ("jax.numpy.full_like", (F, 3), {}),
    # shapes
    ("jax.numpy.shape", (F,), {}),
    ("jax.numpy.shape", (3.0,), {}),
    ("jax.numpy.reshape", (F, (4, -1)), {}),
    ("jax.numpy.reshape", (F, (24,)), {}),
    ("jax.numpy.expand_dims", (F, 0), {}),
    ("jax.numpy.expand_dims", (F, -1), {}),
    ("jax.numpy.expand_dims", (I, (0, -1)), {}),
    ("jax.numpy.squeeze", (F[:, :1], 1), {}),
    ("jax.numpy.squeeze", (F[:1, :, :1], (0, -1)), {}),
    ("jax.numpy.squeeze", (F[:1],), {}),
    ("jax.numpy.transpose", (F, (2, 0, 1)), {}),
    ("jax.numpy.transpose", (F, (-1, 0, 1)), {}),
    ("jax.numpy.broadcast_to", (F[0, 0], (2, 4)), {}),
    ("jax.numpy.concatenate", ([F, F],), {"axis": -1}),
    ("jax.numpy.concatenate", ([I, I.astype(np.float32)],), {}),        # promotes to float
    ("jax.numpy.stack", ([I, I],), {"axis": 1}),
    ("jax.numpy.stack", ([F, F],), {"axis": -1}),
    ("jax.numpy.unstack", (F,), {"axis": 0}),
    ("jax.numpy.unstack", (F,), {"axis": -1}),
    # elementwise
    ("jax.numpy.abs", (I,), {}),
    ("jax.numpy.square", (F,), {}),
    ("jax.numpy.power", (10000.0, F), {}),                               # scalar base
    ("jax.numpy.power", (F, 3.0), {}),
    ("jax.numpy.power", (I, 2), {}),
    ("jax.numpy.exp", (F,), {}),
    ("jax.numpy.exp", (I,), {}),                                         # int → float32
    ("jax.numpy.log", (POS,), {}),
    ("jax.numpy.log1p", (POS,), {}),
    ("jax.numpy.sin", (F,), {}),
    ("jax.numpy.cos", (I,), {}),
    ("jax.numpy.tanh", (F,), {}),
    ("jax.numpy.floor", (F * 3,), {}),
    ("jax.numpy.floor", (I,), {}),                                       # ints stay ints
    ("jax.numpy.minimum", (F, F[:, :1]), {}),                            # broadcasting
    ("jax.numpy.minimum", (I, 1), {}),
    ("jax.numpy.maximum", (I, 1.5), {}),                                 # weak float scalar promotes
    ("jax.numpy.maximum", (F, 0.0), {}),
    ("jax.numpy.clip", (I, 0, 3), {}),
    ("jax.numpy.clip", (F, -0.5, 0.5), {}),
    ("jax.numpy.clip", (I, 1, 3.5), {}),                                 # float bound promotes
    ("jax.numpy.where", (B, I, 0), {}),
    ("jax.numpy.where", (B, F[0], -1e9), {}),
    ("jax.numpy.where", (B, 1.0, 0.0), {}),
    ("jax.numpy.where", (B[:1], F[0], F[1]), {}),                       # broadcast condition
    ("jax.numpy.equal", (I, 0), {}),
    ("jax.numpy.equal", (I, I[::-1]), {}),
    ("jax.numpy.not_equal", (I, 0), {}),
    ("jax.numpy.not_equal", (I, I[::-1]), {}),
    ("jax.numpy.logical_and", (B, B[::-1]), {}),
    ("jax.numpy.logical_not", (B,), {}),
    ("jax.numpy.logical_not", (I,), {}),                                 # non-zero is true
    # reductions and scans
    ("jax.numpy.sum", (F,), {}),
    ("jax.numpy.sum", (F,), {"axis": -1, "keepdims": True}),
    ("jax.numpy.sum", (F,), {"axis": (0, 2)}),
    ("jax.numpy.sum", (B,), {}),                                         # bool → int
    ("jax.numpy.sum", (I,), {"axis": 0}),
    ("jax.numpy.mean", (F,), {"axis": -1, "keepdims": True}),
    ("jax.numpy.mean", (I,), {}),                                        # int → float32
    ("jax.numpy.mean", (F,), {"axis": (0, 1)}),
    ("jax.numpy.max", (F,), {}),
    ("jax.numpy.max", (I,), {"axis": -1}),
    ("jax.numpy.max", (F,), {"axis": (0, 2), "keepdims": True}),
    ("jax.numpy.cumsum", (I,), {"axis": 1}),
    ("jax.numpy.cumsum", (B,), {"axis": -1}),
    ("jax.numpy.cumsum", (F,), {}),                                      # axis None flattens
    # indexing (mode="clip" is the port's documented out-of-range behaviour)
    ("jax.numpy.take", (F[0], np.array([[0, 2], [3, 1]])), {"axis": 1, "mode": "clip"}),
    ("jax.numpy.take", (F[0], np.array([-1, 7, 2])), {"axis": 0, "mode": "clip"}),
    ("jax.numpy.take", (F, np.array([5, 30, -2])), {"mode": "clip"}),     # axis None: flat
    ("jax.numpy.take_along_axis", (F, np.array([[[0], [3], [1]]] * 2)), {"axis": -1, "mode": "clip"}),
    ("jax.numpy.take_along_axis", (F[0], np.array([[-1, 9], [0, 1], [2, -4]])), {"axis": 1, "mode": "clip"}),
    ("jax.numpy.take_along_axis", (F, np.array([[[1, 0, 2, 1]]])), {"axis": 1, "mode": "clip"}),  # broadcast
    # contractions
    ("jax.numpy.dot", (F, F[0].T.copy()), {}),
    ("jax.numpy.dot", (F[0], F[0].T.copy()), {}),
    ("jax.numpy.dot", (F[0, 0], F[1, 0]), {}),                           # 1-D · 1-D
    ("jax.numpy.dot", (F, np.stack([F[0].T] * 5)), {}),                  # N-D b: numpy's rule, not matmul
    ("jax.numpy.dot", (F, 2.0), {}),
    ("jax.numpy.einsum", ("bqd,bkd->bqk", F, F), {}),
    ("jax.numpy.einsum", ("...d,vd->...v", F, F[0]), {}),
    ("jax.numpy.einsum", ("h,bk->bhk", np.arange(3, dtype=np.float32), I.astype(np.float32)), {}),
    ("jax.numpy.einsum", ("i,i->", np.arange(3), np.arange(3, dtype=np.float32)), {}),  # mixed dtypes
    # jax.nn
    ("jax.nn.log_softmax", (F,), {"axis": -1}),
    ("jax.nn.log_softmax", (F,), {"axis": 0}),
    ("jax.nn.softmax", (F,), {"axis": -1}),
    ("jax.nn.softmax", (F,), {"axis": 0}),
    # jax.lax: starts are clamped so the update fits
    ("jax.lax.dynamic_update_slice", (np.zeros((2, 6, 3), np.float32), F[:, :2, :3], (0, 1, 0)), {}),
    ("jax.lax.dynamic_update_slice", (np.zeros((2, 6, 3), np.float32), F[:, :2, :3], (0, 5, 0)), {}),
    ("jax.lax.dynamic_update_slice", (np.zeros((2, 6, 3), np.float32), F[:, :2, :3], (0, -3, 0)), {}),
    ("jax.lax.dynamic_update_slice", (np.zeros((5,), np.int32), np.ones((2,), np.int32), (4,)), {}),
]
# Not called like the others (dtype objects and queries): tested below by name.
SPECIAL = {"jax.numpy.dtype", "jax.numpy.float32", "jax.numpy.float16", "jax.numpy.bfloat16", "jax.numpy.int32",
           "jax.numpy.bool_", "jax.numpy.integer", "jax.numpy.floating", "jax.numpy.finfo",
           "jax.numpy.result_type", "jax.numpy.issubdtype"}


@pytest.mark.parametrize("spelling,args,kwargs", CASES, ids=[f"{c[0].split('.')[-1]}-{i}" for i, c in enumerate(CASES)])
def test_op_matches_jax(spelling, args, kwargs):
    want = jax_fn(spelling)(*[to_jax(a) for a in args], **{k: to_jax(v) for k, v in kwargs.items()})
    shim = getattr(ops, ops.JAX_NAMES[spelling])
    torch_kwargs = {k: to_torch(v) for k, v in kwargs.items() if k != "mode"}   # clip is the shim's only mode
    # asarray is what turns host data into tensors: it gets the numpy inputs themselves.
    convert = (lambda a: a) if spelling == "jax.numpy.asarray" else to_torch
    got = shim(*[convert(a) for a in args], **torch_kwargs)
    if isinstance(want, jax.Array):
        want = np.asarray(want)
    assert_same(got, want, f"{spelling}{args!r:.60}")


def test_squeeze_of_a_non_unit_axis_is_an_error_as_in_jax():
    with pytest.raises(ValueError, match="size not equal to one"):
        jnp.squeeze(jnp.zeros((2, 3)), -1)
    with pytest.raises(ValueError, match="size not equal to one"):
        ops.squeeze(torch.zeros(2, 3), -1)


def test_out_of_range_gathers_clip_where_plain_jax_fills_nan():
    """The decided behaviour: clip (like P.Embed). JAX's default `fill` would give NaN."""
    table = torch.arange(5.0)
    np.testing.assert_array_equal(ops.take(table, torch.tensor([-1, 7, 2])).numpy(), [0.0, 4.0, 2.0])
    assert np.isnan(np.asarray(jnp.take(jnp.arange(5.0), jnp.array([7])))).all()
    np.testing.assert_array_equal(ops.take_along_axis(table[None], torch.tensor([[-1, 7]]), axis=-1).numpy(), [[4.0, 4.0]])


def test_dynamic_update_slice_is_functional_unless_asked_to_write_in_place():
    cache = torch.zeros(1, 4, 2)
    out = ops.dynamic_update_slice(cache, torch.ones(1, 1, 2), (0, 2, 0))
    assert float(cache.abs().sum()) == 0.0 and float(out.sum()) == 2.0
    keys = values = torch.zeros(1, 4, 2)                  # aliased, as init_kv_cache makes them
    with ops.inplace_updates():
        keys = ops.dynamic_update_slice(keys, torch.ones(1, 1, 2), (0, 9, 0))        # clamped to 3; a copy
        values = ops.dynamic_update_slice(values, 2 * torch.ones(1, 1, 2), (0, 0, 0))
        again = ops.dynamic_update_slice(keys, 3 * torch.ones(1, 1, 2), (0, 1, 0))    # the copy, in place
    assert again is keys and keys is not values
    np.testing.assert_array_equal(keys[0, :, 0].numpy(), [0, 3, 0, 1])
    np.testing.assert_array_equal(values[0, :, 0].numpy(), [2, 0, 0, 0])
    assert ops.dynamic_update_slice(keys, torch.ones(1, 1, 2), (0, 0, 0)) is not keys    # functional again


def test_gradients_flow_through_the_shim():
    x = torch.tensor(F, requires_grad=True)
    y = ops.sum(ops.take_along_axis(ops.log_softmax(x, axis=-1), torch.zeros(2, 3, 1, dtype=torch.int64), axis=-1))
    y.backward()
    jx = jnp.asarray(F)
    want = jax.grad(lambda a: jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(a, axis=-1),
                                                          jnp.zeros((2, 3, 1), jnp.int32), axis=-1)))(jx)
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(want), atol=1e-6)


def test_dtypes_and_dtype_queries():
    pairs = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "int32": torch.int32, "bool_": torch.bool}
    for name, dtype in pairs.items():
        assert getattr(ops, ops.JAX_NAMES[f"jax.numpy.{name}"]) is dtype
        assert jnp.zeros((), getattr(jnp, name)).dtype.name == str(dtype).replace("torch.", "")
        assert isinstance(getattr(ops, name), ops.dtype)
    assert ops.finfo(ops.float32).min == float(jnp.finfo(jnp.float32).min)
    assert ops.finfo(ops.bfloat16).min == float(jnp.finfo(jnp.bfloat16).min)
    for values, want in ((torch.arange(3), jnp.arange(3)), (torch.ones(2), jnp.ones(2)),
                         (torch.ones(2, dtype=torch.bool), jnp.ones(2, bool))):
        for category in ("integer", "floating"):
            assert ops.issubdtype(ops.result_type(values), getattr(ops, category)) == \
                jnp.issubdtype(jnp.result_type(want), getattr(jnp, category))
    assert ops.result_type(torch.arange(3), 1.5) == torch.float32
    assert jnp.result_type(jnp.arange(3), 1.5) == jnp.float32
    assert ops.result_type(torch.arange(3, dtype=torch.int32), 2) == torch.int32
    assert ops.result_type(ops.float16, torch.ones(2)) == torch.float32
    assert ops.issubdtype(torch.int32, torch.int32) and not ops.issubdtype(torch.int32, torch.int64)


def test_every_allowed_op_has_cases():
    covered = {spelling for spelling, _, _ in CASES} | SPECIAL
    assert set(ops.JAX_NAMES) == covered, (f"untested allow-list entries: {sorted(set(ops.JAX_NAMES) - covered)}; "
                                           f"cases for unknown ops: {sorted(covered - set(ops.JAX_NAMES))}")
    for spelling in ops.JAX_NAMES:
        jax_fn(spelling)                                  # the JAX spelling exists


def test_chex_twins():
    x, y = torch.zeros(2, 3), torch.zeros(2, 4)
    torch_chex.assert_rank(x, 2)
    torch_chex.assert_rank(x, {1, 2})
    torch_chex.assert_equal_shape([x, torch.ones(2, 3)])
    torch_chex.assert_shape(x, (2, 3))
    torch_chex.assert_shape(x, (None, 3))
    with pytest.raises(AssertionError, match="assert_shape"):
        torch_chex.assert_shape(x, (2, 4))
    with pytest.raises(AssertionError, match="assert_shape"):
        torch_chex.assert_shape(x, (2,))
    with pytest.raises(AssertionError, match="rank"):
        torch_chex.assert_rank(x, 3)
    with pytest.raises(AssertionError, match="different shapes"):
        torch_chex.assert_equal_shape([x, y])


# -- the primitive twins against the Flax primitives ---------------------------------------------------

from core.checkpoint import keymap as km  # noqa: E402
from core.layers import prims as FP  # noqa: E402
from ports.torch.runtime import prims as TP  # noqa: E402
from ports.torch.runtime.module import flax_leaves  # noqa: E402


def flax_apply(flax_module, twin, *args, method=None, **kwargs):
    """Run the Flax primitive with the twin's weights, read through the twin's Flax view."""
    params = km.unflatten({p: jnp.asarray(leaf.get().numpy()) for p, leaf in flax_leaves(twin).items()})
    variables = {"params": params} if params else {}
    return flax_module.apply(variables, *args, method=method, **kwargs)


def randomize(twin):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in twin.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return twin


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_twin(use_bias):
    twin = randomize(TP.Dense(5, 4, use_bias))
    assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == (
        {"kernel": (4, 5), "bias": (5,)} if use_bias else {"kernel": (4, 5)})
    want = flax_apply(FP.Dense(5, 4, use_bias), twin, jnp.asarray(F))
    assert_same(twin(torch.as_tensor(F)).detach(), np.asarray(want), "Dense")
    with pytest.raises(ValueError, match="built for 4"):
        twin(torch.zeros(2, 3))


def test_embed_twin_clips_and_attends():
    twin = randomize(TP.Embed(7, 4))
    ids = np.array([[0, 6, 7, -1]])                                         # out of range: clipped
    assert_same(twin(torch.as_tensor(ids)).detach(), np.asarray(flax_apply(FP.Embed(7, 4), twin, jnp.asarray(ids))),
                "Embed")
    x = F[..., :4]
    want = flax_apply(FP.Embed(7, 4), twin, jnp.asarray(x), method=FP.Embed.attend)
    assert_same(twin.attend(torch.as_tensor(x)).detach(), np.asarray(want), "Embed.attend")


@pytest.mark.parametrize("use_bias,use_scale", [(True, True), (False, True), (True, False)])
def test_layer_norm_twin(use_bias, use_scale):
    twin = randomize(TP.LayerNorm(4, 1e-7, use_bias, use_scale))
    want = flax_apply(FP.LayerNorm(4, 1e-7, use_bias, use_scale), twin, jnp.asarray(F * 10 + 3))
    assert_same(twin(torch.as_tensor(F * 10 + 3)).detach(), np.asarray(want), "LayerNorm")


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_rms_norm_twin(offset):
    twin = randomize(TP.RMSNorm(4, 1e-6, offset))
    want = flax_apply(FP.RMSNorm(4, 1e-6, offset), twin, jnp.asarray(F))
    assert_same(twin(torch.as_tensor(F)).detach(), np.asarray(want), "RMSNorm")


def test_every_activation_matches():
    from core.layers.prims import _ACTIVATIONS
    assert sorted(TP._ACTIVATIONS) == sorted(_ACTIVATIONS)
    x = np.linspace(-12, 12, 97, dtype=np.float32)
    for name in _ACTIVATIONS:
        assert_same(TP.act(torch.as_tensor(x), name), np.asarray(FP.act(jnp.asarray(x), name)), name)
    with pytest.raises(ValueError, match="unknown activation"):
        TP.act(torch.as_tensor(x), "gelu_fancy")


@pytest.mark.parametrize("heads,kv_heads,use_mask,use_bias,weights", [
    (4, 4, True, False, False), (4, 4, True, False, True), (4, 2, True, True, False), (4, 2, True, True, True),
    (3, 1, False, True, False), (2, 2, False, False, False),
])
def test_attention_core_twin(heads, kv_heads, use_mask, use_bias, weights):
    """Both paths (scaled_dot_product_attention without weights, explicit with), grouped
    queries, additive bias, and a fully masked row (averages the values uniformly, as JAX)."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 5, heads, 8)).astype(np.float32)
    k = rng.normal(size=(2, 6, kv_heads, 8)).astype(np.float32)
    v = rng.normal(size=(2, 6, kv_heads, 8)).astype(np.float32)
    mask = np.ones((2, 1, 1, 6), bool)
    mask[1, ..., 3:] = False
    mask = mask & (rng.random((2, 1, 5, 6)) < 0.8)
    mask[0, 0, 2] = False                                                   # one query sees nothing
    bias = rng.normal(size=(1, heads, 5, 6)).astype(np.float32)
    kwargs = {"mask": mask if use_mask else None, "bias": bias if use_bias else None}
    want_out, want_weights = FP.AttentionCore().apply({}, jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                                      **{n: None if a is None else jnp.asarray(a) for n, a in kwargs.items()},
                                                      return_weights=weights)
    got_out, got_weights = TP.AttentionCore().eval()(torch.as_tensor(q), torch.as_tensor(k), torch.as_tensor(v),
                                                     **{n: None if a is None else torch.as_tensor(a)
                                                        for n, a in kwargs.items()}, return_weights=weights)
    assert_same(got_out, np.asarray(want_out), "AttentionCore output")
    assert (got_weights is None) == (want_weights is None)
    if weights:
        assert_same(got_weights, np.asarray(want_weights), "AttentionCore weights")


def test_dropout_twin_follows_train_and_eval():
    twin = TP.Dropout(0.5)
    x = torch.ones(1000)
    assert torch.equal(twin.eval()(x), x) and torch.equal(twin.train()(x, deterministic=True), x)
    dropped = twin.train()(x)
    assert 0.4 < float((dropped == 0).float().mean()) < 0.6 and set(dropped.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(twin.eval()(x, deterministic=False), x)
    assert torch.equal(TP.Dropout(0.0).train()(x), x)


def test_repeat_twin_stacks_the_flax_view_and_per_layer_outputs():
    class Block(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.dense = TP.Dense(width, width)

        def forward(self, carry, scale):
            carry = self.dense(carry) * scale
            return carry, (carry, None)

    repeat = TP.Repeat(Block, 3, {"width": 4})
    assert {p: leaf.shape for p, leaf in flax_leaves(repeat).items()} == {"block/dense/kernel": (3, 4, 4),
                                                                         "block/dense/bias": (3, 4)}
    x = torch.randn(2, 4)
    out, (hidden, nothing) = repeat(x, 0.5)
    assert nothing is None
    layers = ops.unstack(hidden, axis=0)
    assert len(layers) == 3 and layers[-1] is out                          # no copy for unstacking
    assert torch.equal(ops.reshape(hidden, (3, 8)), torch.stack(layers).reshape(3, 8))   # stacked on demand
    flax_out, (flax_hidden, _) = FP.Repeat(_FlaxBlock, 3, {"width": 4}).apply(
        {"params": km.unflatten({p: jnp.asarray(leaf.get().numpy()) for p, leaf in flax_leaves(repeat).items()})},
        jnp.asarray(x.numpy()), 0.5)
    assert_same(out.detach(), np.asarray(flax_out), "Repeat")
    assert_same(torch.stack(layers).detach(), np.asarray(flax_hidden), "Repeat per-layer outputs")


class _FlaxBlock(FP.nn.Module):
    width: int

    def setup(self):
        self.dense = FP.Dense(self.width, self.width)

    def __call__(self, carry, scale):
        carry = self.dense(carry) * scale
        return carry, (carry, None)


# -- Conv / GroupNorm twins and the torch-Conv key map (vision wave) -----------------------------------

CONV_CASES = [  # (kernel_size, strides, padding, dilation, groups, in, out, spatial)
    ((3,), 1, "VALID", 1, 1, 4, 6, (9,)),
    ((4,), 2, "SAME", 1, 1, 4, 5, (9,)),            # asymmetric SAME
    ((3,), 1, "CAUSAL", 2, 2, 4, 6, (8,)),
    ((5,), 3, [(2, 1)], 1, 4, 4, 8, (11,)),
    ((3, 3), 1, "SAME", 1, 1, 3, 5, (6, 7)),
    ((2, 3), (2, 3), "VALID", 1, 1, 3, 4, (8, 9)),  # patchify-like
    ((3, 2), 2, "SAME", 1, 2, 4, 6, (7, 8)),        # grouped, asymmetric SAME
    ((3, 3), 2, 1, 2, 1, 3, 4, (9, 9)),             # strided and dilated, int padding
    ((3, 3), 1, [1, (0, 2)], (2, 1), 3, 3, 3, (7, 6)),  # depthwise, per-dim padding
]


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,groups,cin,cout,spatial", CONV_CASES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_twin(kernel_size, strides, padding, dilation, groups, cin, cout, spatial, use_bias):
    args = (cout, cin, kernel_size, strides, padding, dilation, groups, use_bias)
    twin = randomize(TP.Conv(*args))
    n = len(kernel_size)
    expected = {"kernel": tuple(kernel_size) + (cin // groups, cout)}
    if use_bias:
        expected["bias"] = (cout,)
    assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == expected
    assert tuple(twin.weight.shape) == (cout, cin // groups) + tuple(kernel_size)
    x = np.random.default_rng(1).normal(size=(2,) + spatial + (cin,)).astype(np.float32)
    want = np.asarray(flax_apply(FP.Conv(*args), twin, jnp.asarray(x)))
    got = twin(torch.as_tensor(x)).detach().numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=f"built for {cin}"):
        twin(torch.zeros((2,) + spatial + (cin + 1,)))
    assert n in (1, 2)


def test_conv_grads_and_leaf_round_trip():
    twin = randomize(TP.Conv(4, 2, (2, 3), 2, "SAME"))
    flat = {p: leaf.get().clone() for p, leaf in flax_leaves(twin).items()}
    other = TP.Conv(4, 2, (2, 3), 2, "SAME")
    for path, leaf in flax_leaves(other).items():
        leaf.set(flat[path])
    assert torch.equal(other.weight, twin.weight)
    x = torch.randn(1, 5, 5, 2)
    twin(x).square().sum().backward()
    g = flax_leaves(twin)["kernel"].grad()
    assert tuple(g.shape) == (2, 3, 2, 4)

    def loss(params):
        return jnp.sum(jnp.square(FP.Conv(4, 2, (2, 3), 2, "SAME").apply({"params": params}, jnp.asarray(x.numpy()))))
    jax_g = jax.grad(loss)({p: jnp.asarray(v.numpy()) for p, v in flat.items()})
    np.testing.assert_allclose(g.numpy(), np.asarray(jax_g["kernel"]), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("ndim", [1, 2])
def test_conv_key_map_loads_torch_conv_weights(ndim):
    """A torch nn.ConvNd's state_dict through `keymap.conv` into the Flax `P.Conv`: the same
    function (the model transposes channels-first inputs to channels-last)."""
    torch.manual_seed(0)
    cls = torch.nn.Conv1d if ndim == 1 else torch.nn.Conv2d
    ref = cls(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    rules = km.KeyMap(km.conv("patch.proj", "patch/proj"))
    flat = {}
    for key, value in ref.state_dict().items():
        path, layer, rule = rules.to_flax(f"patch.proj.{key}")
        assert rule.transform.shape_to_flax(tuple(value.shape)) == rule.transform.to_flax(value.numpy()).shape
        flat[path] = rule.transform.to_flax(value.numpy())
    assert flat["patch/proj/kernel"].shape == (3,) * ndim + (2, 6)
    x = np.random.default_rng(0).normal(size=(2, 4) + (7,) * ndim).astype(np.float32)
    flax_conv = FP.Conv(6, 4, (3,) * ndim, 2, 1, 1, 2)
    got = flax_conv.apply({"params": km.unflatten(flat)["patch"]["proj"]}, jnp.asarray(np.moveaxis(x, 1, -1)))
    want = ref(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.moveaxis(np.asarray(got), -1, 1), want, atol=1e-5, rtol=1e-5)
    back = dict(km.export_tensors(rules, flat))
    for key, value in ref.state_dict().items():
        np.testing.assert_array_equal(back[f"patch.proj.{key}"], value.numpy())


@pytest.mark.parametrize("groups,affine,shape", [(2, True, (2, 5, 6)), (3, False, (2, 4, 3, 6)), (6, True, (3, 4, 6))])
def test_group_norm_twin(groups, affine, shape):
    twin = randomize(TP.GroupNorm(groups, 6, 1e-6, affine))
    if affine:
        assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == {"scale": (6,), "bias": (6,)}
    x = (np.random.default_rng(2).normal(size=shape) * 3 + 1).astype(np.float32)
    want = np.asarray(flax_apply(FP.GroupNorm(groups, 6, 1e-6, affine), twin, jnp.asarray(x)))
    np.testing.assert_allclose(twin(torch.as_tensor(x)).detach().numpy(), want, atol=1e-5, rtol=1e-5)
    # torch's own GroupNorm (channels-first) computes the same function
    ref = torch.nn.GroupNorm(groups, 6, 1e-6, affine)
    if affine:
        ref.load_state_dict({"weight": twin.weight.detach(), "bias": twin.bias.detach()})
    got = ref(torch.movedim(torch.as_tensor(x), -1, 1)).detach()
    np.testing.assert_allclose(torch.movedim(got, 1, -1).numpy(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_batch_norm_twin_and_explicit_running_statistics(train):
    """Twin vs Flax primitive vs torch.nn.BatchNorm2d (channels-first): outputs and the
    updated running statistics, which the primitives return instead of mutating state."""
    twin = randomize(TP.BatchNorm(5, 1e-4, 0.2))
    with torch.no_grad():
        twin.running_var.abs_()                                   # a variance is positive
    assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == {"mean": (5,), "var": (5,), "scale": (5,),
                                                                        "bias": (5,)}
    x = (np.random.default_rng(3).normal(size=(2, 3, 4, 5)) * 2 + 1).astype(np.float32)
    want, (want_mean, want_var) = flax_apply(FP.BatchNorm(5, 1e-4, 0.2), twin, jnp.asarray(x),
                                             use_running_average=not train)
    got, (got_mean, got_var) = twin(torch.as_tensor(x), use_running_average=not train)
    ref = torch.nn.BatchNorm2d(5, 1e-4, 0.2).train(train)
    ref.load_state_dict({"weight": twin.weight.detach(), "bias": twin.bias.detach(),
                         "running_mean": twin.running_mean.detach().clone(),
                         "running_var": twin.running_var.detach().clone(), "num_batches_tracked": torch.tensor(0)})
    expected = torch.movedim(ref(torch.movedim(torch.as_tensor(x), -1, 1)), 1, -1).detach().numpy()
    for value in (np.asarray(want), got.detach().numpy()):
        np.testing.assert_allclose(value, expected, atol=1e-5, rtol=1e-5)
    for value in (np.asarray(want_mean), got_mean.detach().numpy()):
        np.testing.assert_allclose(value, ref.running_mean.numpy(), atol=1e-6)
    for value in (np.asarray(want_var), got_var.detach().numpy()):
        np.testing.assert_allclose(value, ref.running_var.numpy(), atol=1e-5)
    rules = km.KeyMap(km.batch_norm("bn", "bn"), [r"bn\.num_batches_tracked"])
    assert {rules.to_flax(f"bn.{k}")[0] for k in ref.state_dict() if k != "num_batches_tracked"} == {
        "bn/mean", "bn/var", "bn/scale", "bn/bias"}
    assert rules.ignored("bn.num_batches_tracked")
