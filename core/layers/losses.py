"""Losses with `transformers`' semantics (torch.nn defaults: mean reduction)."""
import jax
import jax.numpy as jnp

from core.layers import heads

NEG = -1e30       # log(0) of the CTC recursion: finite, so no inf - inf NaNs


def cross_entropy(logits, labels, ignore_index: int = -100):
    """Mean token cross-entropy over positions whose label != ignore_index (NaN if none, as torch)."""
    num_classes = jnp.shape(logits)[-1]
    flat_logits = jnp.reshape(logits, (-1, num_classes))
    flat_labels = jnp.reshape(labels, (-1,))
    valid = flat_labels != ignore_index
    safe_labels = jnp.where(valid, flat_labels, 0)
    log_probs = jax.nn.log_softmax(jnp.asarray(flat_logits, jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_probs, jnp.expand_dims(safe_labels, -1), axis=-1)
    nll = -jnp.squeeze(picked, -1)
    valid_f = jnp.asarray(valid, jnp.float32)
    return jnp.sum(nll * valid_f) / jnp.sum(valid_f)


def mse(predictions, targets):
    diff = jnp.asarray(predictions, jnp.float32) - jnp.asarray(targets, jnp.float32)
    return jnp.mean(jnp.square(diff))


def binary_cross_entropy_with_logits(logits, targets, mask=None):
    """Mean BCE-with-logits; with `mask`, over the positions where mask == 1 only (NaN if none,
    as torch's mean over an empty selection)."""
    x = jnp.asarray(logits, jnp.float32)
    y = jnp.asarray(targets, jnp.float32)
    # log(1 + exp(-|x|)) form: stable for large |x|, as torch computes it.
    per_item = jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
    if mask is None:
        return jnp.mean(per_item)
    active = jnp.asarray(mask == 1, jnp.float32)
    return jnp.sum(per_item * active) / jnp.sum(active)


def sequence_classification_loss(logits, labels, problem_type, num_labels: int):
    """Dispatch as `transformers` does when `problem_type` is unset: one label → regression,
    integer labels → single-label, float labels → multi-label."""
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif jnp.issubdtype(jnp.result_type(labels), jnp.integer):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    if problem_type == "regression":
        if num_labels == 1:
            return mse(jnp.reshape(logits, (-1,)), jnp.reshape(labels, (-1,)))
        return mse(logits, labels)
    if problem_type == "single_label_classification":
        return cross_entropy(logits, labels)
    return binary_cross_entropy_with_logits(logits, labels)


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """Extractive QA: positions outside the sequence are clamped to `length` and ignored."""
    length = jnp.shape(start_logits)[1]
    start = jnp.clip(jnp.reshape(start_positions, (-1,)), 0, length)
    end = jnp.clip(jnp.reshape(end_positions, (-1,)), 0, length)
    return (cross_entropy(start_logits, start, ignore_index=length)
            + cross_entropy(end_logits, end, ignore_index=length)) / 2.0


def am_softmax_loss(embeddings, weight, labels, scale: float = 30.0, margin: float = 0.4):
    """transformers' AMSoftmaxLoss: cosines between the normalized embeddings (rows) and the
    normalized class vectors (columns of `weight` (dim, num_labels)), the margin subtracted at
    the label, times `scale`, then mean cross-entropy."""
    cos_theta = jnp.dot(heads.l2_normalize(embeddings, 1), heads.l2_normalize(weight, 0))
    flat_labels = jnp.reshape(labels, (-1,))
    onehot = jnp.equal(jnp.expand_dims(flat_labels, -1), jnp.expand_dims(jnp.arange(jnp.shape(weight)[1]), 0))
    logits = scale * jnp.where(onehot, cos_theta - margin, cos_theta)
    return cross_entropy(logits, flat_labels)


def ctc_loss(logits, labels, logit_lengths, blank: int, reduction: str, zero_infinity: bool):
    """torch's `ctc_loss` as `transformers` calls it: labels equal to -100 or to the blank are
    dropped (the rest move to the front, torch's masked_select), log-softmax in float32, the
    forward (alpha) recursion in log space over the static number of frames, frames past each
    example's length ignored. reduction "mean" divides each loss by its target length (at least
    1) and averages; "sum" adds; "none" returns per-example losses. An impossible alignment
    gives inf (0 with zero_infinity)."""
    batch, time, _ = jnp.shape(logits)
    width = jnp.shape(labels)[1]
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    valid = jnp.logical_and(jnp.not_equal(labels, -100), jnp.not_equal(labels, blank))
    valid_i = jnp.asarray(valid, jnp.int32)
    target_lengths = jnp.sum(valid_i, axis=-1)
    slot = jnp.cumsum(valid_i, axis=-1) - 1
    moves = jnp.logical_and(jnp.equal(jnp.expand_dims(slot, -1), jnp.reshape(jnp.arange(width), (1, 1, width))),
                            jnp.expand_dims(valid, -1))
    targets = jnp.sum(jnp.where(moves, jnp.expand_dims(labels, -1), jnp.zeros_like(jnp.expand_dims(labels, -1))),
                      axis=1)
    blanks = jnp.full((batch, width), blank, jnp.result_type(targets))
    states = jnp.concatenate([jnp.reshape(jnp.stack([blanks, targets], axis=-1), (batch, 2 * width)),
                              blanks[:, :1]], axis=1)
    num_states = 2 * width + 1
    before = jnp.concatenate([blanks[:, :1], blanks[:, :1], states[:, :-2]], axis=1)
    skip = jnp.logical_and(jnp.not_equal(states, blank), jnp.not_equal(states, before))
    emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(jnp.expand_dims(states, 1), (batch, time, num_states)),
                               axis=-1)
    index = jnp.arange(num_states)
    # transitions[b, i, j] = 1 where state i may move to state j: stay, advance, or skip a blank.
    source = jnp.expand_dims(index, 1)
    dest = jnp.expand_dims(index, 0)
    moves = jnp.asarray(jnp.equal(source, dest), jnp.float32) + jnp.asarray(jnp.equal(source + 1, dest), jnp.float32)
    skips = jnp.logical_and(jnp.expand_dims(jnp.equal(source + 2, dest), 0), jnp.expand_dims(skip, 1))
    transitions = jnp.expand_dims(moves, 0) + jnp.asarray(skips, jnp.float32)      # the three are disjoint
    alpha = jnp.where(jnp.expand_dims(index, 0) < 2, emit[:, 0], jnp.full_like(emit[:, 0], NEG))
    for t in range(1, time):
        # log-sum-exp over predecessors as one contraction per frame (few ops per step: a long
        # unrolled chain of small elementwise ops compiles very slowly on XLA:CPU).
        top = jnp.max(alpha, axis=-1, keepdims=True)
        total = jnp.einsum("bi,bij->bj", jnp.exp(alpha - top), transitions)
        reached = total > 0.0
        step = jnp.where(reached, jnp.log(jnp.where(reached, total, jnp.full_like(total, 1.0))) + top,
                         jnp.full_like(total, NEG)) + emit[:, t]
        alpha = jnp.where(jnp.expand_dims(t < logit_lengths, -1), step, alpha)
    last = jnp.take_along_axis(alpha, jnp.expand_dims(2 * target_lengths, -1), axis=-1)[:, 0]
    before_last = jnp.take_along_axis(alpha, jnp.expand_dims(jnp.maximum(2 * target_lengths - 1, 0), -1),
                                      axis=-1)[:, 0]
    before_last = jnp.where(target_lengths > 0, before_last, jnp.full_like(before_last, NEG))
    m = jnp.maximum(last, before_last)
    loss = -(m + jnp.log(jnp.exp(last - m) + jnp.exp(before_last - m)))
    impossible = loss > 1e29
    fill = 0.0 if zero_infinity else float("inf")
    loss = jnp.where(impossible, jnp.full_like(loss, fill), loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    lengths = jnp.asarray(jnp.maximum(target_lengths, 1), jnp.float32)
    return jnp.mean(loss / lengths)
