"""Attention masks and the explicit KV cache (canonical, portable subset).

Masks are boolean, True = may attend, shaped to broadcast against (batch, heads, q_len, kv_len).
The cache is a pair of static-shape arrays (batch, max_len, kv_heads, head_dim) passed in and
returned: no mutable state, so a decode loop can live inside one `jit`.
"""
import jax
import jax.numpy as jnp


def padding_mask(attention_mask):
    """(batch, kv_len) of 1/0 → (batch, 1, 1, kv_len) booleans."""
    return jnp.expand_dims(jnp.expand_dims(attention_mask != 0, 1), 1)


def causal_mask(q_len: int, kv_len: int, offset=0):
    """(1, 1, q_len, kv_len): query i (at absolute position offset + i) sees keys ≤ that position."""
    q_pos = jnp.expand_dims(jnp.arange(q_len) + offset, 1)
    k_pos = jnp.expand_dims(jnp.arange(kv_len), 0)
    return jnp.expand_dims(jnp.expand_dims(k_pos <= q_pos, 0), 0)


def sliding_window_mask(q_len: int, kv_len: int, window: int, offset=0):
    """Causal, and at most `window` positions back (local attention)."""
    q_pos = jnp.expand_dims(jnp.arange(q_len) + offset, 1)
    k_pos = jnp.expand_dims(jnp.arange(kv_len), 0)
    allowed = jnp.logical_and(k_pos <= q_pos, q_pos - k_pos < window)
    return jnp.expand_dims(jnp.expand_dims(allowed, 0), 0)


def combine_masks(*masks):
    """Logical AND of the masks that are not None (None if all are)."""
    result = None
    for mask in masks:
        if mask is not None:
            result = mask if result is None else jnp.logical_and(result, mask)
    return result


def init_kv_cache(batch: int, max_len: int, kv_heads: int, head_dim: int, dtype=jnp.float32):
    zeros = jnp.zeros((batch, max_len, kv_heads, head_dim), dtype)
    return (zeros, zeros)


def update_kv_cache(cache, key, value, index):
    """Write (batch, t, kv_heads, head_dim) `key`/`value` at position `index`; returns the new cache."""
    cached_key = jax.lax.dynamic_update_slice(cache[0], jnp.asarray(key, cache[0].dtype), (0, index, 0, 0))
    cached_value = jax.lax.dynamic_update_slice(cache[1], jnp.asarray(value, cache[1].dtype), (0, index, 0, 0))
    return (cached_key, cached_value)
