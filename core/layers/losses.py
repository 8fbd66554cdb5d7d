"""Losses with `transformers`' semantics (torch.nn defaults: mean reduction)."""
import jax
import jax.numpy as jnp


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
