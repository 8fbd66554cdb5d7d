"""core/layers/positions.py against the `transformers` functions each formula comes from.

These are exact formulas, so the tolerance is 1e-6 (bucket indices must match exactly).
"""
import numpy as np
import pytest
import torch
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings
from transformers.models.gptj import modeling_gptj
from transformers.models.llama import modeling_llama
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
from transformers.models.t5.modeling_t5 import T5Attention

from core.layers import positions

TOL = 1e-6


def _np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# -- relative position buckets -----------------------------------------------------------------

OFFSETS = np.arange(-400, 401)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20), (64, 256), (33, 100), (10, 7)])
def test_relative_position_bucket_matches_t5(bidirectional, num_buckets, max_distance):
    expected = T5Attention._relative_position_bucket(torch.as_tensor(OFFSETS), bidirectional=bidirectional,
                                                     num_buckets=num_buckets, max_distance=max_distance)
    got = positions.relative_position_bucket(np.asarray(OFFSETS, np.int32), bidirectional=bidirectional,
                                             num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(_np(got), _np(expected))


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 64)])
def test_relative_position_bucket_matches_mpnet(num_buckets, max_distance):
    expected = MPNetEncoder.relative_position_bucket(torch.as_tensor(OFFSETS), num_buckets=num_buckets,
                                                     max_distance=max_distance)
    got = positions.relative_position_bucket(np.asarray(OFFSETS, np.int32), bidirectional=True,
                                             num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(_np(got), _np(expected))


def test_relative_positions_is_key_minus_query():
    got = np.asarray(positions.relative_positions(4, 6, offset=2))
    q = np.arange(4)[:, None] + 2
    k = np.arange(6)[None, :]
    np.testing.assert_array_equal(got, k - q)


# -- rotary --------------------------------------------------------------------------------------

def _rotary_inputs(head_dim, rot_dim, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 7, 3, head_dim)).astype(np.float32)             # (batch, length, heads, dim)
    position_ids = np.stack([np.arange(7), np.arange(7) + 5])
    inv_freq = positions.rotary_inv_freq(head_dim, 10000.0, rot_dim)
    cos, sin = positions.rotary_cos_sin(position_ids, inv_freq)
    return x, position_ids, np.array(cos), np.array(sin)   # writable copies for torch


@pytest.mark.parametrize("head_dim,rot_dim", [(8, 0), (16, 0), (12, 8)])
def test_apply_rotary_half_layout_matches_llama(head_dim, rot_dim):
    x, _, cos, sin = _rotary_inputs(head_dim, rot_dim)
    rot = rot_dim or head_dim
    # LLaMA's cos/sin cover the whole rotated width: the half-width angles repeated.
    cos_full = torch.as_tensor(np.concatenate([cos, cos], -1))
    sin_full = torch.as_tensor(np.concatenate([sin, sin], -1))
    q = torch.as_tensor(x[..., :rot])
    expected_rot, _ = modeling_llama.apply_rotary_pos_emb(q, q, cos_full, sin_full, unsqueeze_dim=2)
    expected = np.concatenate([_np(expected_rot), x[..., rot:]], -1)
    got = np.asarray(positions.apply_rotary(x, cos, sin, interleaved=False))
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    np.testing.assert_array_equal(got[..., rot:], x[..., rot:])


@pytest.mark.parametrize("head_dim,rot_dim", [(8, 0), (16, 0), (12, 8)])
def test_apply_rotary_interleaved_layout_matches_gptj(head_dim, rot_dim):
    x, _, cos, sin = _rotary_inputs(head_dim, rot_dim, seed=1)
    rot = rot_dim or head_dim
    expected_rot = modeling_gptj.apply_rotary_pos_emb(torch.as_tensor(x[..., :rot]), torch.as_tensor(sin),
                                                      torch.as_tensor(cos))
    expected = np.concatenate([_np(expected_rot), x[..., rot:]], -1)
    got = np.asarray(positions.apply_rotary(x, cos, sin, interleaved=True))
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_rotary_cos_sin_match_gptj_table():
    dim = 8
    table = modeling_gptj.create_sinusoidal_positions(40, dim)          # (positions, [sin | cos])
    position_ids = np.arange(40)[None]
    cos, sin = positions.rotary_cos_sin(position_ids, positions.rotary_inv_freq(dim))
    np.testing.assert_allclose(np.asarray(sin)[0], _np(table[:, : dim // 2]), atol=TOL, rtol=0)
    np.testing.assert_allclose(np.asarray(cos)[0], _np(table[:, dim // 2:]), atol=TOL, rtol=0)


# -- ALiBi ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_heads", [4, 6, 12])
def test_alibi_matches_bloom(num_heads):
    mask = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    expected = build_alibi_tensor(torch.as_tensor(mask), num_heads, torch.float32)   # (batch*heads, 1, kv)
    expected = _np(expected).reshape(3, num_heads, 1, 7)
    got = np.asarray(positions.alibi_bias(mask, num_heads))
    assert got.shape == (3, num_heads, 1, 7)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    slopes = np.asarray(positions.alibi_slopes(num_heads))
    np.testing.assert_allclose(slopes, expected[0, :, 0, 1], atol=TOL, rtol=0)


# -- sinusoidal ----------------------------------------------------------------------------------

@pytest.mark.parametrize("num_positions,dim", [(40, 24), (512, 16), (64, 7)])
def test_sinusoidal_table_matches_distilbert(num_positions, dim):
    got = np.asarray(positions.sinusoidal_table(num_positions, dim))
    expected = create_sinusoidal_embeddings(num_positions, dim, torch.empty(num_positions, dim))
    # Looser than 1e-6 on purpose: DistilBERT evaluates the angles in float64, Rosetta in float32,
    # where an angle near position p is exact only to one float32 spacing of p (1.5e-5 at p=511).
    np.testing.assert_allclose(got, _np(expected), atol=float(np.spacing(np.float32(num_positions))), rtol=0)
    np.testing.assert_allclose(got[:8], _np(expected)[:8], atol=TOL, rtol=0)   # small angles: exact
