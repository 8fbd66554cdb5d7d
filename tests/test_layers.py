"""Building blocks against their PyTorch / `transformers` definitions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN
from transformers.loss.loss_ctc import ForCTCLoss

from core.configuration import ACTIVATIONS
from core.layers import attention as A
from core.layers import conv
from core.layers import heads as H
from core.layers import losses
from core.layers import prims as P
from core.layers.mlp import MLP, GatedMLP

TOL = 1e-6


def rand(*shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_transformers(name):
    x = rand(4, 257)
    reference_name = {"identity": "linear", "relu2": "relu2", "swish": "swish"}.get(name, name)
    if reference_name not in ACT2FN:
        pytest.fail(f"transformers has no activation {reference_name!r}; drop it from ACTIVATIONS")
    expected = ACT2FN[reference_name](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(P.act(jnp.asarray(x), name)), expected, atol=2e-6, rtol=1e-6)


def test_gelu_means_exact_not_tanh():
    x = jnp.asarray(rand(1000))
    exact = P.act(x, "gelu")
    tanh = P.act(x, "gelu_new")
    assert float(jnp.max(jnp.abs(exact - tanh))) > 1e-4    # the two must not be confused
    with pytest.raises(ValueError, match="unknown activation 'gelu_fancy'"):
        P.act(x, "gelu_fancy")


def init_apply(module, *args, **kwargs):
    params = module.init(jax.random.PRNGKey(0), *args, **kwargs)
    params = jax.tree.map(lambda p: jnp.asarray(rand(*p.shape, seed=p.size, scale=0.5)), params)
    return params, module.apply(params, *args, **kwargs)


@pytest.mark.parametrize("eps", [1e-12, 1e-5])
def test_layer_norm_matches_torch(eps):
    x = rand(3, 5, 24) + 7.0      # an offset mean stresses one-pass variance formulas
    params, y = init_apply(P.LayerNorm(24, eps), jnp.asarray(x))
    p = params["params"]
    expected = F.layer_norm(torch.from_numpy(x), (24,), torch.from_numpy(np.array(p["scale"])),
                            torch.from_numpy(np.array(p["bias"])), eps)
    np.testing.assert_allclose(np.asarray(y), expected.numpy(), atol=2e-6)


def test_rms_norm_matches_llama_and_gemma_forms():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    x = rand(2, 4, 16)
    params, y = init_apply(P.RMSNorm(16, 1e-6), jnp.asarray(x))
    ref = LlamaRMSNorm(16, eps=1e-6)
    ref.weight.data = torch.from_numpy(np.array(params["params"]["scale"]))
    np.testing.assert_allclose(np.asarray(y), ref(torch.from_numpy(x)).detach().numpy(), atol=TOL)
    params, y = init_apply(P.RMSNorm(16, 1e-6, offset=1.0), jnp.asarray(x))
    scale = np.asarray(params["params"]["scale"])
    xt = torch.from_numpy(x)
    expected = xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + torch.from_numpy(scale))
    np.testing.assert_allclose(np.asarray(y), expected.numpy(), atol=TOL)


def test_dense_and_embed_layouts():
    x = rand(2, 3, 8)
    params, y = init_apply(P.Dense(5, 8), jnp.asarray(x))
    k, b = np.asarray(params["params"]["kernel"]), np.asarray(params["params"]["bias"])
    assert k.shape == (8, 5)
    np.testing.assert_allclose(np.asarray(y), x @ k + b, atol=1e-5)
    with pytest.raises(ValueError, match="built for 8"):
        P.Dense(5, 8).init(jax.random.PRNGKey(0), jnp.zeros((2, 7)))
    embed = P.Embed(11, 4)
    params = embed.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.int32))
    table = np.asarray(params["params"]["embedding"])
    ids = jnp.asarray([[0, 10, 3]])
    np.testing.assert_array_equal(np.asarray(embed.apply(params, ids)), table[[0, 10, 3]][None])
    # Out-of-range ids clip inside jit (the wrapper rejects them on the host first).
    np.testing.assert_array_equal(np.asarray(embed.apply(params, jnp.asarray([[11, -1]]))), table[[10, 0]][None])
    h = rand(2, 4)
    np.testing.assert_allclose(np.asarray(embed.apply(params, jnp.asarray(h), method="attend")), h @ table.T, atol=1e-5)


def reference_attention(q, k, v, mask=None, bias=None):
    """(b, t, h, d) eager attention in torch with transformers' additive finfo.min mask."""
    qt, kt, vt = (torch.from_numpy(np.asarray(a)).transpose(1, 2) for a in (q, k, v))
    groups = qt.shape[1] // kt.shape[1]
    kt, vt = kt.repeat_interleave(groups, 1), vt.repeat_interleave(groups, 1)
    logits = qt @ kt.transpose(-1, -2) / np.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + torch.from_numpy(np.asarray(bias))
    if mask is not None:
        logits = logits + torch.where(torch.from_numpy(np.asarray(mask)), 0.0, torch.finfo(torch.float32).min)
    weights = logits.softmax(-1)
    return (weights @ vt).transpose(1, 2).numpy(), weights.numpy()


@pytest.mark.parametrize("kv_heads", [6, 2, 1])          # MHA, GQA, MQA
@pytest.mark.parametrize("return_weights", [False, True])  # fused jax.nn path and explicit path
def test_attention_core_matches_eager_reference(kv_heads, return_weights):
    b, t, h, d = 2, 5, 6, 4
    q, k, v = rand(b, t, h, d, seed=1), rand(b, t, kv_heads, d, seed=2), rand(b, t, kv_heads, d, seed=3)
    pad = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = A.combine_masks(A.padding_mask(jnp.asarray(pad)), A.causal_mask(t, t))
    bias = rand(1, h, t, t, seed=4, scale=1.0)
    out, weights = P.AttentionCore().apply({}, q, k, v, mask=mask, bias=bias, return_weights=return_weights)
    expected, expected_w = reference_attention(q, k, v, np.broadcast_to(np.asarray(mask), (b, h, t, t)), bias)
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-6)
    if return_weights:
        np.testing.assert_allclose(np.asarray(weights), expected_w, atol=TOL)
    else:
        assert weights is None


@pytest.mark.parametrize("kv_heads", [6, 2, 1])          # MHA, GQA, MQA
def test_one_query_attention_matches_eager_reference(kv_heads):
    """A decode step at batch 1 (one query) takes the in-place cache path (`_one_query_attention`)."""
    b, t, h, d = 1, 7, 6, 4
    q, k, v = rand(b, 1, h, d, seed=1), rand(b, t, kv_heads, d, seed=2), rand(b, t, kv_heads, d, seed=3)
    pad = np.array([[0, 0, 1, 1, 1, 1, 1]])
    mask = A.combine_masks(A.padding_mask(jnp.asarray(pad)), A.causal_mask(1, t, offset=5))
    bias = rand(1, h, 1, t, seed=4, scale=1.0)
    out, weights = P.AttentionCore().apply({}, q, k, v, mask=mask, bias=bias)
    expected, _ = reference_attention(q, k, v, np.broadcast_to(np.asarray(mask), (b, h, 1, t)), bias)
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-6)
    assert weights is None


def test_attention_core_rejects_bad_shapes():
    q = jnp.zeros((1, 3, 6, 4))
    with pytest.raises(ValueError, match="kv heads dividing q heads"):
        P.AttentionCore().apply({}, q, jnp.zeros((1, 3, 4, 4)), jnp.zeros((1, 3, 4, 4)))


def test_kv_cache_decoding_equals_full_causal_attention():
    b, t, h, d, max_len = 2, 6, 2, 4, 8
    q, k, v = rand(b, t, h, d, seed=1), rand(b, t, h, d, seed=2), rand(b, t, h, d, seed=3)
    full, _ = P.AttentionCore().apply({}, q, k, v, mask=A.causal_mask(t, t))
    cache = A.init_kv_cache(b, max_len, h, d)
    cache = A.update_kv_cache(cache, k[:, :4], v[:, :4], 0)       # prefill 4 tokens
    steps = [P.AttentionCore().apply({}, q[:, :4], cache[0], cache[1], mask=A.causal_mask(4, max_len))[0]]
    for i in range(4, t):                                          # then one token at a time
        cache = A.update_kv_cache(cache, k[:, i:i + 1], v[:, i:i + 1], i)
        steps.append(P.AttentionCore().apply({}, q[:, i:i + 1], cache[0], cache[1],
                                             mask=A.causal_mask(1, max_len, offset=i))[0])
    np.testing.assert_allclose(np.concatenate(steps, axis=1), np.asarray(full), atol=TOL)


def test_sliding_window_mask():
    mask = np.asarray(A.sliding_window_mask(5, 5, window=2))[0, 0]
    expected = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]], bool)
    np.testing.assert_array_equal(mask, expected)


class _Block(P.nn.Module):
    features: int

    def setup(self):
        self.dense = P.Dense(self.features, self.features)
        self.dropout = P.Dropout(0.5)

    def __call__(self, x, scale, deterministic):
        y = jnp.tanh(self.dense(x)) * scale
        y = self.dropout(y, deterministic=deterministic)
        return y, y


@pytest.mark.parametrize("remat,unroll", [(False, False), (True, False), (False, True)])
def test_repeat_is_a_loop_over_stacked_layers(remat, unroll):
    x = jnp.asarray(rand(2, 8, scale=1.0))
    module = P.Repeat(_Block, 3, {"features": 8}, remat=remat, unroll=unroll)
    params = module.init(jax.random.PRNGKey(0), x, 2.0, True)
    kernels = params["params"]["block"]["dense"]["kernel"]
    assert kernels.shape == (3, 8, 8)
    (y, per_layer) = module.apply(params, x, 2.0, True)
    h = np.asarray(x)
    for i in range(3):
        h = np.tanh(h @ np.asarray(kernels[i]) + np.asarray(params["params"]["block"]["dense"]["bias"][i])) * 2.0
        np.testing.assert_allclose(np.asarray(per_layer[i]), h, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y), h, atol=1e-5)
    # Dropout draws a different mask in every layer, reproducibly from the key.
    rngs = {"dropout": jax.random.PRNGKey(3)}
    a, layers_a = module.apply(params, x, 2.0, False, rngs=rngs)
    b, _ = module.apply(params, x, 2.0, False, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    zeros = [np.asarray(layers_a[i] == 0) for i in range(3)]
    assert not np.array_equal(zeros[0], zeros[1])
    # Gradients flow through remat and unrolled variants alike.
    grads = jax.grad(lambda p: jnp.sum(module.apply(p, x, 2.0, True)[0]))(params)
    assert float(jnp.abs(grads["params"]["block"]["dense"]["kernel"]).sum()) > 0


@pytest.mark.parametrize("remat", [False, True])
def test_repeat_runs_per_layer_params_as_an_unrolled_loop(remat):
    """The decoding layout: the same layers from one buffer per layer (`block_0` …)."""
    x = jnp.asarray(rand(2, 8, scale=1.0))
    module = P.Repeat(_Block, 3, {"features": 8}, remat=remat)
    params = module.init(jax.random.PRNGKey(0), x, 2.0, True)
    split = P.per_layer_params(params)
    assert sorted(split["params"]) == ["block_0", "block_1", "block_2"]
    assert split["params"]["block_1"]["dense"]["kernel"].shape == (8, 8)
    np.testing.assert_array_equal(split["params"]["block_2"]["dense"]["bias"], params["params"]["block"]["dense"]["bias"][2])
    y, per_layer = module.apply(params, x, 2.0, True)
    y_split, per_layer_split = module.apply(split, x, 2.0, True)
    np.testing.assert_array_equal(np.asarray(y_split), np.asarray(y))
    np.testing.assert_array_equal(np.asarray(per_layer_split), np.asarray(per_layer))
    back = P.stacked_params(split)
    assert jax.tree.structure(back) == jax.tree.structure(jax.tree.map(np.asarray, dict(params)))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    partial = {"params": {k: v for k, v in split["params"].items() if k != "block_2"}}
    with pytest.raises(ValueError, match="per-layer params must be exactly block_0 … block_2"):
        module.apply(partial, x, 2.0, True)


def test_per_layer_params_can_store_dense_kernels_transposed():
    """The decoding layout: every `Dense` kernel as `kernel_t` (out, in), the same outputs."""
    x = jnp.asarray(rand(2, 8, scale=1.0))
    module = P.Repeat(_Block, 3, {"features": 8})
    params = module.init(jax.random.PRNGKey(0), x, 2.0, True)
    paths = P.dense_paths(module, x, 2.0, True)
    assert paths == {("block", "dense")}
    split = {"params": P.per_layer_params(params["params"], transposed_dense=paths)}
    layer = split["params"]["block_1"]["dense"]
    assert sorted(layer) == ["bias", "kernel_t"]
    np.testing.assert_array_equal(layer["kernel_t"], params["params"]["block"]["dense"]["kernel"][1].T)
    y, _ = module.apply(params, x, 2.0, True)
    y_transposed, _ = module.apply(split, x, 2.0, True)
    np.testing.assert_allclose(np.asarray(y_transposed), np.asarray(y), rtol=0, atol=1e-6)
    wrong = jax.tree_util.tree_map_with_path(lambda path, a: a[:, :4] if "kernel_t" in str(path) else a, split)
    with pytest.raises(ValueError, match=r"Dense block_0/dense: kernel_t has shape \(8, 4\)"):
        module.apply(wrong, x, 2.0, True)


def test_mlp_and_gated_mlp():
    x = jnp.asarray(rand(2, 3, 8, scale=1.0))
    params, y = init_apply(MLP(8, 13, "gelu"), x)
    p = params["params"]
    h = ACT2FN["gelu"](torch.from_numpy(np.asarray(x) @ np.asarray(p["up"]["kernel"]) + np.asarray(p["up"]["bias"])))
    expected = h.numpy() @ np.asarray(p["down"]["kernel"]) + np.asarray(p["down"]["bias"])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)
    params, y = init_apply(GatedMLP(8, 13, "silu"), x)
    p = params["params"]
    gate = ACT2FN["silu"](torch.from_numpy(np.asarray(x) @ np.asarray(p["gate"]["kernel"]))).numpy()
    expected = (gate * (np.asarray(x) @ np.asarray(p["up"]["kernel"]))) @ np.asarray(p["down"]["kernel"])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)


def test_losses_match_torch():
    logits = rand(4, 6, 7, scale=2.0)
    labels = np.random.default_rng(0).integers(0, 7, size=(4, 6))
    labels[0, :3] = -100
    expected = F.cross_entropy(torch.from_numpy(logits).reshape(-1, 7), torch.from_numpy(labels).reshape(-1))
    assert abs(float(losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels))) - float(expected)) < 1e-6
    targets = (rand(4, 7) > 0).astype(np.float32)
    expected = F.binary_cross_entropy_with_logits(torch.from_numpy(logits[:, 0]), torch.from_numpy(targets))
    got = losses.binary_cross_entropy_with_logits(jnp.asarray(logits[:, 0]), jnp.asarray(targets))
    assert abs(float(got) - float(expected)) < 1e-6
    all_ignored = losses.cross_entropy(jnp.asarray(logits), jnp.full((4, 6), -100))
    assert np.isnan(float(all_ignored))      # torch's mean over nothing is NaN too


@pytest.mark.parametrize("reduction,zero_infinity", [("none", False), ("sum", True), ("mean", False)])
def test_ctc_loss_matches_torch(reduction, zero_infinity):
    """The portable CTC recursion against torch's ctc_loss, including -100 holes in the labels,
    short logit lengths and an impossible alignment (inf, or 0 with zero_infinity)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 9, 6)).astype(np.float32) * 3
    labels = np.array([[1, 2, 2, 3], [4, -100, 5, -100], [1, 1, 1, 1], [2, 0, 3, 0]])
    lengths = np.array([9, 7, 6, 9])
    got = losses.ctc_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(lengths), 0, reduction, zero_infinity)
    want = ForCTCLoss(torch.tensor(logits), torch.tensor(labels), torch.tensor(lengths), 0, reduction,
                      zero_infinity)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6, atol=1e-5)


def test_am_softmax_loss_matches_transformers():
    from transformers.models.wav2vec2.modeling_wav2vec2 import AMSoftmaxLoss
    embeddings, labels = rand(5, 9, seed=1), np.array([0, 3, 3, 1, 2])
    reference = AMSoftmaxLoss(9, 4)
    reference.weight.data = torch.from_numpy(rand(9, 4, seed=2))
    with torch.no_grad():
        expected = reference(torch.from_numpy(embeddings), torch.from_numpy(labels))
    got = losses.am_softmax_loss(jnp.asarray(embeddings), jnp.asarray(reference.weight.detach().numpy()),
                                 jnp.asarray(labels))
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6, atol=1e-5)


def test_head_helpers_match_torch():
    states = [rand(2, 3, 4, seed=i) for i in range(5)]
    weights = rand(5, seed=9)
    expected = (torch.stack([torch.from_numpy(s) for s in states], 0)
                * torch.from_numpy(weights).softmax(-1)[:, None, None, None]).sum(0)
    got = H.weighted_layer_sum(tuple(jnp.asarray(s) for s in states), jnp.asarray(weights), jnp.float32)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), atol=1e-5)
    x = rand(4, 6)
    x[1, :] = 0.0                            # F.normalize's eps: a zero row stays zero, not NaN
    for axis in (0, 1):
        expected = F.normalize(torch.from_numpy(x), dim=axis).numpy()
        np.testing.assert_allclose(np.asarray(H.l2_normalize(jnp.asarray(x), axis)), expected, atol=TOL)
    ties = np.array([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(H.first_max_index(jnp.asarray(ties))),
                                  torch.from_numpy(ties).argmax(-1).numpy())


@pytest.mark.parametrize("kernel_size", [4, 5])          # even kernels drop the last output (SamePad)
@pytest.mark.parametrize("weight_norm", [True, False])
def test_grouped_conv1d_matches_torch(kernel_size, weight_norm):
    x = rand(2, 7, 6)
    params, y = init_apply(conv.GroupedConv1D(6, kernel_size, 3, weight_norm), jnp.asarray(x))
    p = {k: torch.from_numpy(np.array(v)) for k, v in params["params"].items()}
    weight = torch._weight_norm(p["weight_v"], p["weight_g"], 2) if weight_norm else p["weight"]
    expected = F.conv1d(torch.from_numpy(x).transpose(1, 2), weight, p["bias"], padding=kernel_size // 2, groups=3)
    expected = expected[:, :, :7].transpose(1, 2)
    np.testing.assert_allclose(np.asarray(y), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("window,stride,padding", [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)])
def test_max_pool_2d_matches_torch(window, stride, padding):
    x = rand(2, 9, 8, 3)
    got = conv.max_pool_2d(jnp.asarray(x), window, stride, padding, jnp.float32)
    expected = F.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), window, stride, padding)
    np.testing.assert_array_equal(np.asarray(conv.channels_first(got)), expected.numpy())
