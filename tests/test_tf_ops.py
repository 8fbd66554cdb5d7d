"""The TensorFlow op shim (`ports/tf/runtime/ops.py`) and primitive twins against JAX.

The op cases are the torch shim's (`tests/test_torch_ops.py:CASES`): both runtimes must offer
exactly the same allow-list, so canonical code that transpiles for one transpiles for the other.
Each case calls the JAX function and the TF twin on the same inputs and compares values and
dtypes (TF keeps JAX's int32 exactly).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from core.checkpoint import keymap as km
from core.layers import prims as FP
from ports.tf.runtime import chex as tf_chex
from ports.tf.runtime import ops
from ports.tf.runtime import prims as TP
from ports.tf.runtime.module import flax_leaves
from ports.torch.runtime import ops as torch_ops
from tests.test_torch_ops import CASES, F, SPECIAL, jax_fn, to_jax


def to_tf(x):
    if isinstance(x, np.ndarray):
        return tf.convert_to_tensor(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, np.ndarray) for e in x):
        return type(x)(tf.convert_to_tensor(e) for e in x)
    if isinstance(x, np.dtype) or x in (np.float32, np.int32, np.bool_):
        return {np.dtype(np.float32): tf.float32, np.dtype(np.int32): tf.int32,
                np.dtype(np.bool_): tf.bool}[np.dtype(x)]
    return x


def assert_same(got, want, op, atol=1e-6):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{op}: {got!r} vs {want!r}"
        for g, w in zip(got, want):
            assert_same(g, w, op, atol)
        return
    if not hasattr(want, "dtype"):                       # Python values (shapes)
        assert got == want, f"{op}: {got!r} != {want!r}"
        return
    assert tf.is_tensor(got), f"{op}: returned {type(got)}"
    want = np.asarray(want)
    assert tuple(got.shape) == want.shape, f"{op}: shape {tuple(got.shape)} vs {want.shape}"
    assert got.dtype.name == {"bool": "bool"}.get(want.dtype.name, want.dtype.name), \
        f"{op}: dtype {got.dtype.name} vs {want.dtype}"
    np.testing.assert_allclose(np.asarray(got).astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=atol,
                               err_msg=op)


def test_both_runtimes_allow_the_same_ops():
    assert sorted(ops.JAX_NAMES) == sorted(torch_ops.JAX_NAMES), (
        "ports/tf/runtime/ops.py and ports/torch/runtime/ops.py must allow the same JAX spellings: "
        f"tf only {sorted(set(ops.JAX_NAMES) - set(torch_ops.JAX_NAMES))}, "
        f"torch only {sorted(set(torch_ops.JAX_NAMES) - set(ops.JAX_NAMES))}")


@pytest.mark.parametrize("spelling,args,kwargs", CASES, ids=[f"{c[0].split('.')[-1]}-{i}" for i, c in enumerate(CASES)])
def test_op_matches_jax(spelling, args, kwargs):
    want = jax_fn(spelling)(*[to_jax(a) for a in args], **{k: to_jax(v) for k, v in kwargs.items()})
    shim = getattr(ops, ops.JAX_NAMES[spelling])
    tf_kwargs = {k: to_tf(v) for k, v in kwargs.items() if k != "mode"}   # clip is the shim's only mode
    convert = (lambda a: a) if spelling == "jax.numpy.asarray" else to_tf
    got = shim(*[convert(a) for a in args], **tf_kwargs)
    if isinstance(want, jax.Array):
        want = np.asarray(want)
    assert_same(got, want, f"{spelling}{args!r:.60}")


def test_ops_work_inside_tf_function_with_unknown_sizes():
    """Shapes unknown at trace time (a SavedModel signature with None dims): `shape` gives
    tensors for them and the shape-taking ops accept those."""
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    def f(x):
        batch, length, width = ops.shape(x)
        assert width == 4 and tf.is_tensor(batch)
        y = ops.reshape(x, (batch, length, 2, 2))
        cache = ops.zeros((batch, 9, 4))
        cache = ops.dynamic_update_slice(cache, x, (0, 3, 0))
        return ops.sum(y, axis=(2, 3)), ops.broadcast_to(ops.arange(length), (batch, length)), cache

    x = F[:, :3, :]
    total, positions, cache = f(tf.constant(x))
    np.testing.assert_allclose(total.numpy(), x.sum(-1), rtol=1e-6)
    np.testing.assert_array_equal(positions.numpy(), np.broadcast_to(np.arange(3), (2, 3)))
    np.testing.assert_array_equal(cache.numpy()[:, 3:6], x)


def test_mixed_dtypes_promote_as_in_jax():
    i, f = tf.constant([1, 2], tf.int32), tf.constant([0.5, 1.5], tf.float32)
    assert ops.where(tf.constant([True, False]), i, f).dtype == tf.float32
    assert ops.maximum(i, 1.5).dtype == tf.float32 and ops.maximum(i, 1).dtype == tf.int32
    assert ops.result_type(i, 1.5) == jnp.result_type(jnp.array([1, 2], jnp.int32), 1.5)
    assert ops.result_type(ops.float16, f) == tf.float32
    assert ops.result_type(ops.float16, ops.bfloat16) == jnp.result_type(jnp.float16, jnp.bfloat16)
    assert ops.asarray(np.arange(3)).dtype == tf.int32 and ops.asarray(1.5).dtype == tf.float32


def test_out_of_range_gathers_clip():
    table = tf.range(5.0)
    np.testing.assert_array_equal(ops.take(table, tf.constant([-1, 7, 2])).numpy(), [0.0, 4.0, 2.0])
    np.testing.assert_array_equal(ops.take_along_axis(table[None], tf.constant([[-1, 7]]), axis=-1).numpy(),
                                  [[4.0, 4.0]])


def test_squeeze_of_a_non_unit_axis_is_an_error_as_in_jax():
    with pytest.raises(ValueError, match="size not equal to one"):
        ops.squeeze(tf.zeros((2, 3)), -1)


def test_gradients_flow_through_the_shim():
    x = tf.Variable(F)
    with tf.GradientTape() as tape:
        y = ops.sum(ops.take_along_axis(ops.log_softmax(x, axis=-1), tf.zeros((2, 3, 1), tf.int32), axis=-1))
    got = tape.gradient(y, x)
    want = jax.grad(lambda a: jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(a, axis=-1),
                                                          jnp.zeros((2, 3, 1), jnp.int32), axis=-1)))(jnp.asarray(F))
    np.testing.assert_allclose(got.numpy(), np.asarray(want), atol=1e-6)


def test_dtypes_and_dtype_queries():
    for name in ("float32", "float16", "bfloat16", "int32", "bool_"):
        dtype = getattr(ops, ops.JAX_NAMES[f"jax.numpy.{name}"])
        assert isinstance(dtype, ops.dtype)
        assert jnp.zeros((), getattr(jnp, name)).dtype.name == dtype.name
    assert ops.finfo(ops.float32).min == float(jnp.finfo(jnp.float32).min)
    assert float(ops.finfo(ops.bfloat16).min) == float(jnp.finfo(jnp.bfloat16).min)
    for values, want in ((tf.range(3), jnp.arange(3)), (tf.ones(2), jnp.ones(2)), (tf.ones(2, tf.bool), jnp.ones(2, bool))):
        for category in ("integer", "floating"):
            assert ops.issubdtype(ops.result_type(values), getattr(ops, category)) == \
                jnp.issubdtype(jnp.result_type(want), getattr(jnp, category))
    assert ops.issubdtype(tf.int32, tf.int32) and not ops.issubdtype(tf.int32, tf.float32)


def test_every_allowed_op_has_cases():
    covered = {spelling for spelling, _, _ in CASES} | SPECIAL
    assert set(ops.JAX_NAMES) == covered, f"untested: {sorted(set(ops.JAX_NAMES) - covered)}"


def test_chex_twins():
    x, y = tf.zeros((2, 3)), tf.zeros((2, 4))
    tf_chex.assert_rank(x, 2)
    tf_chex.assert_rank(x, {1, 2})
    tf_chex.assert_equal_shape([x, tf.ones((2, 3))])
    tf_chex.assert_shape(x, (2, 3))
    tf_chex.assert_shape(x, (None, 3))
    with pytest.raises(AssertionError, match="assert_shape"):
        tf_chex.assert_shape(x, (2, 4))
    with pytest.raises(AssertionError, match="rank"):
        tf_chex.assert_rank(x, 3)
    with pytest.raises(AssertionError, match="different shapes"):
        tf_chex.assert_equal_shape([x, y])


# -- the primitive twins against the Flax primitives ---------------------------------------------------

def flax_apply(flax_module, twin, *args, method=None, **kwargs):
    params = km.unflatten({p: jnp.asarray(leaf.get().numpy()) for p, leaf in flax_leaves(twin).items()})
    return flax_module.apply({"params": params} if params else {}, *args, method=method, **kwargs)


def randomize(twin):
    rng = np.random.default_rng(0)
    for v in twin.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    return twin


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_twin(use_bias):
    twin = randomize(TP.Dense(5, 4, use_bias))
    assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == (
        {"kernel": (4, 5), "bias": (5,)} if use_bias else {"kernel": (4, 5)})
    assert_same(twin(tf.constant(F)), np.asarray(flax_apply(FP.Dense(5, 4, use_bias), twin, jnp.asarray(F))), "Dense")
    with pytest.raises(ValueError, match="built for 4"):
        twin(tf.zeros((2, 3)))


def test_embed_twin_clips_and_attends():
    twin = randomize(TP.Embed(7, 4))
    ids = np.array([[0, 6, 7, -1]], np.int32)
    assert_same(twin(tf.constant(ids)), np.asarray(flax_apply(FP.Embed(7, 4), twin, jnp.asarray(ids))), "Embed")
    x = F[..., :4]
    want = flax_apply(FP.Embed(7, 4), twin, jnp.asarray(x), method=FP.Embed.attend)
    assert_same(twin.attend(tf.constant(x)), np.asarray(want), "Embed.attend")


@pytest.mark.parametrize("use_bias,use_scale", [(True, True), (False, True), (True, False)])
def test_layer_norm_twin(use_bias, use_scale):
    twin = randomize(TP.LayerNorm(4, 1e-7, use_bias, use_scale))
    want = flax_apply(FP.LayerNorm(4, 1e-7, use_bias, use_scale), twin, jnp.asarray(F * 10 + 3))
    assert_same(twin(tf.constant(F * 10 + 3)), np.asarray(want), "LayerNorm", atol=1e-5)


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_rms_norm_twin(offset):
    twin = randomize(TP.RMSNorm(4, 1e-6, offset))
    assert_same(twin(tf.constant(F)), np.asarray(flax_apply(FP.RMSNorm(4, 1e-6, offset), twin, jnp.asarray(F))),
                "RMSNorm")


def test_every_activation_matches():
    assert sorted(TP._ACTIVATIONS) == sorted(FP._ACTIVATIONS)
    x = np.linspace(-12, 12, 97, dtype=np.float32)
    for name in FP._ACTIVATIONS:
        assert_same(TP.act(tf.constant(x), name), np.asarray(FP.act(jnp.asarray(x), name)), name, atol=2e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        TP.act(tf.constant(x), "gelu_fancy")


@pytest.mark.parametrize("heads,kv_heads,use_mask,use_bias,weights", [
    (4, 4, True, False, True), (4, 2, True, True, False), (3, 1, False, True, True), (2, 2, False, False, False),
])
def test_attention_core_twin(heads, kv_heads, use_mask, use_bias, weights):
    """Grouped queries, additive bias, and a fully masked row (averages the values, as JAX)."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 5, heads, 8)).astype(np.float32)
    k = rng.normal(size=(2, 6, kv_heads, 8)).astype(np.float32)
    v = rng.normal(size=(2, 6, kv_heads, 8)).astype(np.float32)
    mask = np.ones((2, 1, 1, 6), bool)
    mask[1, ..., 3:] = False
    mask = mask & (rng.random((2, 1, 5, 6)) < 0.8)
    mask[0, 0, 2] = False
    bias = rng.normal(size=(1, heads, 5, 6)).astype(np.float32)
    kwargs = {"mask": mask if use_mask else None, "bias": bias if use_bias else None}
    want_out, want_weights = FP.AttentionCore().apply({}, jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                                      **{n: None if a is None else jnp.asarray(a)
                                                         for n, a in kwargs.items()}, return_weights=weights)
    got_out, got_weights = TP.AttentionCore()(tf.constant(q), tf.constant(k), tf.constant(v),
                                              **{n: None if a is None else tf.constant(a) for n, a in kwargs.items()},
                                              return_weights=weights)
    assert_same(got_out, np.asarray(want_out), "AttentionCore output")
    assert (got_weights is None) == (want_weights is None)
    if weights:
        assert_same(got_weights, np.asarray(want_weights), "AttentionCore weights")


def test_dropout_twin_is_off_unless_asked():
    twin = TP.Dropout(0.5)
    x = tf.ones(1000)
    assert twin(x) is x
    dropped = twin(x, deterministic=False).numpy()
    assert 0.4 < (dropped == 0).mean() < 0.6 and set(np.unique(dropped)) == {0.0, 2.0}


def test_repeat_twin_stacks_the_flax_view_and_per_layer_outputs():
    class Block(tf.Module):
        def __init__(self, width):
            super().__init__()
            self.dense = TP.Dense(width, width)

        def __call__(self, carry, scale):
            carry = self.dense(carry) * scale
            return carry, (carry, None)

    repeat = TP.Repeat(Block, 3, {"width": 4})
    assert {p: leaf.shape for p, leaf in flax_leaves(repeat).items()} == {"block/dense/kernel": (3, 4, 4),
                                                                         "block/dense/bias": (3, 4)}
    out, (hidden, nothing) = repeat(tf.random.normal((2, 4)), 0.5)
    layers = ops.unstack(hidden, axis=0)
    assert nothing is None and len(layers) == 3 and layers[-1] is out
    assert tuple(ops.reshape(hidden, (3, 8)).shape) == (3, 8)


# -- Conv / GroupNorm twins (vision wave) ----------------------------------------------------------------

from tests.test_torch_ops import CONV_CASES  # noqa: E402


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,groups,cin,cout,spatial", CONV_CASES)
def test_conv_twin(kernel_size, strides, padding, dilation, groups, cin, cout, spatial):
    args = (cout, cin, kernel_size, strides, padding, dilation, groups)
    twin = randomize(TP.Conv(*args))
    assert {p: leaf.shape for p, leaf in flax_leaves(twin).items()} == {
        "kernel": tuple(kernel_size) + (cin // groups, cout), "bias": (cout,)}
    x = np.random.default_rng(1).normal(size=(2,) + spatial + (cin,)).astype(np.float32)
    want = np.asarray(flax_apply(FP.Conv(*args), twin, jnp.asarray(x)))
    got = twin(tf.constant(x))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)
    graph = tf.function(twin)(tf.constant(x))                     # grouped convs also in graph mode
    np.testing.assert_allclose(np.asarray(graph), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=f"built for {cin}"):
        twin(tf.zeros((2,) + spatial + (cin + 1,)))


@pytest.mark.parametrize("groups,affine,shape", [(2, True, (2, 5, 6)), (3, False, (2, 4, 3, 6)), (6, True, (3, 4, 6))])
def test_group_norm_twin(groups, affine, shape):
    twin = randomize(TP.GroupNorm(groups, 6, 1e-6, affine))
    x = (np.random.default_rng(2).normal(size=shape) * 3 + 1).astype(np.float32)
    want = np.asarray(flax_apply(FP.GroupNorm(groups, 6, 1e-6, affine), twin, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(twin(tf.constant(x))), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_batch_norm_twin(train):
    twin = randomize(TP.BatchNorm(5, 1e-4, 0.2))
    twin.mean.assign(np.random.default_rng(4).normal(size=5).astype(np.float32))
    twin.var.assign(np.random.default_rng(5).random(5).astype(np.float32) + 0.5)
    x = (np.random.default_rng(3).normal(size=(2, 3, 4, 5)) * 2 + 1).astype(np.float32)
    want, want_stats = flax_apply(FP.BatchNorm(5, 1e-4, 0.2), twin, jnp.asarray(x), use_running_average=not train)
    got, got_stats = twin(tf.constant(x), use_running_average=not train)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)
    for g, w in zip(got_stats, want_stats):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-6, rtol=1e-6)
