"""Building blocks shared by the decoder-only families (GPT-2, LLaMA and the rest).

The explicit KV cache is a pair of stacked arrays (num_layers, batch, max_length, kv_heads,
head_dim) that every call takes and returns; blocks run under `P.Repeat` with the scan carry
`(hidden, layer, cache)`, and each block writes its own layer's rows at `cache_index`.
"""
import chex
import jax
import jax.numpy as jnp

from core.layers import attention as A
from core.layers import losses


def init_cache(num_layers: int, batch_size: int, max_length: int, kv_heads: int, head_dim: int,
               dtype=jnp.float32):
    """An empty KV cache: (keys, values), each (num_layers, batch, max_length, kv_heads, head_dim)."""
    zeros = jnp.zeros((num_layers, batch_size, max_length, kv_heads, head_dim), dtype)
    return (zeros, zeros)


def update_layer_cache(cache, layer, key, value, index):
    """Write one layer's (batch, t, kv_heads, head_dim) `key`/`value` at sequence position
    `index`; return the new cache and that layer's full (batch, max_length, ...) keys and values."""
    start = (layer, 0, index, 0, 0)
    keys = jax.lax.dynamic_update_slice(cache[0], jnp.expand_dims(jnp.asarray(key, cache[0].dtype), 0), start)
    values = jax.lax.dynamic_update_slice(cache[1], jnp.expand_dims(jnp.asarray(value, cache[1].dtype), 0), start)
    return (keys, values), keys[layer], values[layer]


def decoder_inputs(input_ids, attention_mask, position_ids, cache, cache_index):
    """Defaults as `transformers` fills them, and the boolean attention mask.

    Without a cache, `attention_mask` is (batch, length). With one, it covers the cache's
    slots, (batch, max_length): 1 for a real token, 0 for padding (slots after the current
    position are hidden by causality whatever they hold). Position ids default to
    `cache_index + arange(length)`.
    """
    batch, length = jnp.shape(input_ids)
    kv_length = length if cache is None else jnp.shape(cache[0])[2]
    if attention_mask is None:
        attention_mask = jnp.ones((batch, kv_length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.expand_dims(jnp.arange(length) + cache_index, 0), (batch, length))
    chex.assert_shape(attention_mask, (batch, kv_length))
    chex.assert_equal_shape([input_ids, position_ids])
    mask = A.combine_masks(A.causal_mask(length, kv_length, cache_index), A.padding_mask(attention_mask))
    return mask, position_ids


def collect_hidden_states(embedded, per_layer_hidden, final_hidden):
    """`transformers`' decoder convention: the embeddings, the output of every block but the
    last, then the final (normed) hidden state."""
    return (embedded,) + tuple(jnp.unstack(per_layer_hidden, axis=0))[:-1] + (final_hidden,)


def causal_lm_loss(logits, labels):
    """Next-token cross-entropy: position t predicts label t + 1; -100 is ignored (mean)."""
    return losses.cross_entropy(logits[:, :-1], labels[:, 1:])


def pool_last_token(logits, input_ids, pad_token_id):
    """Per row, the logits of the rightmost token that is not `pad_token_id` (left or right
    padding), as `transformers`' *ForSequenceClassification; without a pad id, the last token."""
    batch, length = jnp.shape(input_ids)
    if pad_token_id is None:
        if batch != 1:
            raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
        return logits[:, length - 1]
    non_pad = jnp.asarray(jnp.not_equal(input_ids, pad_token_id), jnp.int32)
    last = jnp.max(jnp.expand_dims(jnp.arange(length), 0) * non_pad, axis=-1)
    index = jnp.broadcast_to(jnp.reshape(last, (batch, 1, 1)), (batch, 1, jnp.shape(logits)[-1]))
    return jnp.take_along_axis(logits, index, axis=1)[:, 0]


def keep_last(hidden, logits_to_keep: int):
    """`logits_to_keep` > 0: only the last positions go through the LM head (generation)."""
    if logits_to_keep > 0:
        return hidden[:, -logits_to_keep:]
    return hidden
