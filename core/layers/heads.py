"""Helpers of task heads shared across families (canonical, portable subset): the softmax-weighted
sum of every layer's hidden states (`use_weighted_layer_sum`), torch's L2 normalisation and a
first-of-ties argmax."""
import jax
import jax.numpy as jnp


def weighted_layer_sum(hidden_states, layer_weights, dtype):
    """Σ_l softmax(layer_weights)_l · hidden_states[l] over every layer's (batch, length, hidden)
    states (the embeddings' included): `use_weighted_layer_sum`."""
    stacked = jnp.stack(hidden_states, axis=1)
    norm_weights = jax.nn.softmax(jnp.asarray(layer_weights, dtype), axis=-1)
    return jnp.sum(stacked * jnp.reshape(norm_weights, (1, -1, 1, 1)), axis=1)


def first_max_index(x):
    """argmax over the last axis, the first of equal maxima (torch's and JAX's tie rule)."""
    is_max = jnp.equal(x, jnp.max(x, axis=-1, keepdims=True))
    first = jnp.logical_and(is_max, jnp.equal(jnp.cumsum(jnp.asarray(is_max, jnp.int32), axis=-1), 1))
    positions = jnp.arange(jnp.shape(x)[-1])
    return jnp.sum(jnp.where(first, positions, jnp.zeros_like(positions)), axis=-1)


def l2_normalize(x, axis: int):
    """torch's F.normalize: x / max(‖x‖₂, 1e-12) along `axis`."""
    norm = jnp.power(jnp.sum(jnp.square(x), axis=axis, keepdims=True), 0.5)
    return x / jnp.maximum(norm, 1e-12)
