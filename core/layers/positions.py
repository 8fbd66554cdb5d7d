"""Position encodings (canonical, portable subset): sinusoidal tables, rotary embeddings in both
layouts, ALiBi slopes and biases, T5-style relative position buckets, and 2-D relative position
indices with their learned bias tables (Swin, BEiT)."""
import math

import jax
import jax.numpy as jnp


def sinusoidal_table(num_positions: int, dim: int, dtype=jnp.float32):
    """(num_positions, dim): sin on even channels, cos on odd (the Transformer paper's layout,
    as DistilBERT/XLM write it)."""
    position = jnp.expand_dims(jnp.arange(num_positions, dtype=jnp.float32), 1)
    channel = jnp.arange(dim, dtype=jnp.float32)
    angle = position / jnp.power(10000.0, 2.0 * jnp.floor(channel / 2.0) / dim)
    is_even = jnp.expand_dims(jnp.arange(dim) % 2 == 0, 0)
    return jnp.asarray(jnp.where(is_even, jnp.sin(angle), jnp.cos(angle)), dtype)


def rotary_inv_freq(head_dim: int, base: float = 10000.0, rotary_dim: int = 0):
    """Inverse frequencies for the first `rotary_dim` (default all) channels of a head."""
    dim = rotary_dim if rotary_dim else head_dim
    return 1.0 / jnp.power(base, jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)


def rotary_cos_sin(position_ids, inv_freq, scale: float = 1.0):
    """cos and sin of (batch, length, rotary_dim/2) angles for positions (batch, length)."""
    angles = jnp.einsum("bt,f->btf", jnp.asarray(position_ids, jnp.float32), inv_freq)
    return jnp.cos(angles) * scale, jnp.sin(angles) * scale


def apply_rotary(x, cos, sin, interleaved: bool = False):
    """Rotate (batch, length, heads, dim) by per-position angles over the first 2*F channels
    (F = cos.shape[-1]); the rest pass through.

    interleaved=False: the "rotate half" layout (LLaMA/GPT-NeoX): pairs (i, i + F).
    interleaved=True: the GPT-J layout: pairs (2i, 2i + 1).
    """
    rot = 2 * jnp.shape(cos)[-1]
    x_rot = x[..., :rot]
    x_pass = x[..., rot:]
    c = jnp.expand_dims(cos, 2)
    s = jnp.expand_dims(sin, 2)
    if interleaved:
        shape = jnp.shape(x_rot)
        pairs = jnp.reshape(x_rot, shape[:-1] + (rot // 2, 2))
        even = pairs[..., 0]
        odd = pairs[..., 1]
        rotated = jnp.stack([even * c - odd * s, odd * c + even * s], axis=-1)
        rotated = jnp.reshape(rotated, shape)
    else:
        half = rot // 2
        first = x_rot[..., :half]
        second = x_rot[..., half:]
        rotated = jnp.concatenate([first * c - second * s, second * c + first * s], axis=-1)
    return jnp.concatenate([jnp.asarray(rotated, x.dtype), x_pass], axis=-1)


def alibi_slopes(num_heads: int):
    """ALiBi head slopes (Press et al.), with the interleaving BLOOM uses for non-powers of 2."""
    closest = 2 ** int(math.floor(math.log2(num_heads)))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest != num_heads:
        extra_base = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra_base ** (2 * i + 1) for i in range(num_heads - closest)]
    return jnp.asarray(slopes, jnp.float32)


def alibi_bias(attention_mask, num_heads: int):
    """(batch, heads, 1, kv_len) additive bias slope * key position, positions counted over
    non-padded keys (BLOOM's cumsum form, correct under left padding)."""
    positions = (jnp.cumsum(attention_mask, axis=-1) - 1) * attention_mask
    slopes = alibi_slopes(num_heads)
    bias = jnp.einsum("h,bk->bhk", slopes, jnp.asarray(positions, jnp.float32))
    return jnp.expand_dims(bias, 2)


def relative_position_bucket(relative_position, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128):
    """T5's bucketing of (key - query) offsets: exact for small offsets, log-spaced up to
    `max_distance`, one bucket beyond; bidirectional halves the buckets per direction."""
    bucket = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets = num_buckets // 2
        bucket = bucket + jnp.asarray(relative_position > 0, relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, jnp.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log of 0 is masked out by `is_small`; the maximum keeps the log finite.
    scaled = jnp.log(jnp.maximum(jnp.asarray(distance, jnp.float32), 1.0) / max_exact)
    large = max_exact + jnp.asarray(scaled / math.log(max_distance / max_exact) * (num_buckets - max_exact),
                                    relative_position.dtype)
    large = jnp.minimum(large, jnp.full_like(large, num_buckets - 1))
    return bucket + jnp.where(is_small, distance, large)


def relative_positions(q_len: int, kv_len: int, offset=0):
    """(q_len, kv_len) matrix of key position minus query position."""
    return jnp.expand_dims(jnp.arange(kv_len), 0) - jnp.expand_dims(jnp.arange(q_len) + offset, 1)


def grid_relative_position_index(rows: int, cols: int) -> list:
    """(rows·cols, rows·cols) indices into a (2·rows - 1)(2·cols - 1) table of 2-D offsets between
    the cells of a row-major grid (Swin's windows, BEiT's patches), as static Python lists."""
    coords = [(i // cols, i % cols) for i in range(rows * cols)]
    return [[(a[0] - b[0] + rows - 1) * (2 * cols - 1) + (a[1] - b[1] + cols - 1) for b in coords] for a in coords]


def gather_relative_bias(table, index: list):
    """(1, heads, L, L) additive attention bias: the rows of a learned (distances, heads) `table`
    at a static (L, L) `index`."""
    length = len(index)
    flat = jnp.reshape(jnp.asarray(index, jnp.int32), (length * length,))
    bias = jnp.reshape(jnp.take(table, flat, axis=0), (length, length, jnp.shape(table)[-1]))
    return jnp.expand_dims(jnp.transpose(bias, (2, 0, 1)), 0)


def create_position_ids_from_input_ids(input_ids, padding_idx: int):
    """fairseq-style positions (RoBERTa, MPNet, ...): non-pad tokens get padding_idx + 1, + 2, ...
    counting only non-pad tokens; pads get padding_idx (transformers' function of this name)."""
    not_pad = jnp.asarray(jnp.not_equal(input_ids, padding_idx), jnp.int32)
    return jnp.cumsum(not_pad, axis=1) * not_pad + padding_idx


# -- rope scaling (the rope types of transformers' modeling_rope_utils.py) -----------------------

def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq(rope, head_dim: int, max_position_embeddings: int, position_ids):
    """(inverse frequencies (head_dim/2,), attention scaling of cos/sin) for the rope settings
    `rope` (LlamaConfig.rope). `dynamic` depends on the longest position in `position_ids`:
    past max_position_embeddings the base grows (NTK), as `transformers` recomputes it."""
    rope_type = rope["rope_type"]
    base = rope["rope_theta"]
    dim = head_dim
    exponents = jnp.arange(0, dim, 2, dtype=jnp.float32) / dim
    if rope_type == "default":
        return rotary_inv_freq(dim, base), 1.0
    factor = rope["factor"]
    if rope_type == "linear":
        return rotary_inv_freq(dim, base) / factor, 1.0
    if rope_type == "dynamic":
        # At or below max_position_embeddings `transformers` keeps the frequencies computed at
        # init (in Python floats); beyond, it recomputes them from the current length in float32.
        initial_base = base * ((factor * max_position_embeddings / max_position_embeddings) - (factor - 1)) ** (
            dim / (dim - 2))
        initial = 1.0 / jnp.power(initial_base, exponents)
        seq_len = jnp.asarray(jnp.max(position_ids) + 1, jnp.float32)
        grown_base = base * jnp.power(factor * seq_len / max_position_embeddings - (factor - 1), dim / (dim - 2))
        grown = 1.0 / jnp.power(grown_base, exponents)
        return jnp.where(seq_len > max_position_embeddings, grown, initial), 1.0
    if rope_type == "yarn":
        original = rope["original_max_position_embeddings"]
        attention_factor = rope.get("attention_factor")
        mscale = rope.get("mscale")
        mscale_all_dim = rope.get("mscale_all_dim")
        if attention_factor is None:
            if mscale and mscale_all_dim:
                attention_factor = float(_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim))
            else:
                attention_factor = _yarn_mscale(factor)
        beta_fast = rope.get("beta_fast") or 32
        beta_slow = rope.get("beta_slow") or 1

        def correction_dim(rotations):
            return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

        low = correction_dim(beta_fast)
        high = correction_dim(beta_slow)
        if rope.get("truncate", True):
            low = math.floor(low)
            high = math.ceil(high)
        low = max(low, 0)
        high = min(high, dim - 1)
        if low == high:
            high += 0.001  # as transformers: no division by zero in the ramp
        pos_freqs = jnp.power(base, exponents)
        inv_extrapolation = 1.0 / pos_freqs
        inv_interpolation = 1.0 / (factor * pos_freqs)
        ramp = jnp.clip((jnp.arange(dim // 2, dtype=jnp.float32) - low) / (high - low), 0.0, 1.0)
        extrapolation_factor = 1.0 - ramp
        inv = inv_interpolation * (1.0 - extrapolation_factor) + inv_extrapolation * extrapolation_factor
        return inv, attention_factor
    if rope_type == "llama3":
        inv = rotary_inv_freq(dim, base)
        low_freq_factor = rope["low_freq_factor"]
        high_freq_factor = rope["high_freq_factor"]
        old_context = rope["original_max_position_embeddings"]
        low_freq_wavelen = old_context / low_freq_factor
        high_freq_wavelen = old_context / high_freq_factor
        wavelen = 2 * math.pi / inv
        inv_llama = jnp.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
        is_medium = jnp.logical_and(jnp.logical_not(wavelen < high_freq_wavelen),
                                    jnp.logical_not(wavelen > low_freq_wavelen))
        return jnp.where(is_medium, smoothed, inv_llama), 1.0
    raise ValueError(f"rope_type {rope_type!r} is not supported")
