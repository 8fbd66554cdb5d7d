"""Train and eval steps for every task, written once for all parallel modes.

Losses are computed here from the model's logits as (sum, count) pairs rather than taken from
the model's own mean `loss`: a step sums over its micro-batches (gradient accumulation) and, in
`pmap` mode, over devices (`lax.psum`), and only then divides by the global count. So a step's
loss and gradients are the token-weighted mean over the whole global batch, whatever the split,
and 1-device, `pmap` and sharded runs compute the same thing.

Dropout RNG (`train.dropout_rng`): "per_example" (default) gives example `i` of the global
batch at step `s` the key `fold_in(fold_in(key, s), i)`, with the forward pass `vmap`ped over
examples, so dropout masks do not depend on the device count or the micro-batching either.
"per_batch" draws one mask for each (micro-)batch and device: faster (no vmap), but the masks
then depend on the layout.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

from core.training import optim

IGNORE_INDEX = -100
SUM_KEYS = ("loss_sum", "count", "correct")


@dataclasses.dataclass(frozen=True)
class StepConfig:
    task: str
    input_names: tuple[str, ...]        # model inputs present in every batch
    grad_accum: int = 1
    nan_policy: str = "stop"            # "stop" | "skip": both leave params untouched on a bad step
    inject_nan_at_step: int = -1        # test hook: make this step's loss and gradients NaN
    num_labels: int = 2
    dropout_rng: str = "per_example"    # "per_example" | "per_batch"

    def __post_init__(self):
        if self.dropout_rng not in ("per_example", "per_batch"):
            raise ValueError(f"train.dropout_rng={self.dropout_rng!r}: expected 'per_example' or 'per_batch'")
        if self.grad_accum < 1:
            raise ValueError(f"train.grad_accum={self.grad_accum}: expected >= 1")


def task_sums(task: str, logits, batch, num_labels: int = 2) -> dict[str, jax.Array]:
    """Sum of per-item losses, number of items and number of correct predictions; items are
    masked tokens (masked-lm), next tokens (causal-lm) or examples (classification), each
    weighted by its row's `weights` (0 for eval padding)."""
    weights = jnp.asarray(batch["weights"], jnp.float32)
    logits = jnp.asarray(logits, jnp.float32)
    if task in ("masked-lm", "causal-lm"):
        if task == "masked-lm":
            labels = batch["labels"]
            valid = (labels != IGNORE_INDEX) & (batch["attention_mask"] > 0)
        else:
            logits, labels = logits[:, :-1], batch["input_ids"][:, 1:]
            valid = batch["attention_mask"][:, 1:] > 0
        w = jnp.asarray(valid, jnp.float32) * weights[:, None]
        safe = jnp.where(valid, labels, 0)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
        correct = jnp.asarray(jnp.argmax(logits, axis=-1) == safe, jnp.float32)
        return {"loss_sum": jnp.sum(nll * w), "count": jnp.sum(w), "correct": jnp.sum(correct * w)}
    if task == "sequence-classification":
        labels = batch["labels"]
        if num_labels == 1:
            err = jnp.square(logits[:, 0] - jnp.asarray(labels, jnp.float32))
            return {"loss_sum": jnp.sum(err * weights), "count": jnp.sum(weights),
                    "correct": jnp.zeros((), jnp.float32)}
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
        correct = jnp.asarray(jnp.argmax(logits, axis=-1) == labels, jnp.float32)
        return {"loss_sum": jnp.sum(nll * weights), "count": jnp.sum(weights),
                "correct": jnp.sum(correct * weights)}
    raise ValueError(f"task {task!r}: no training loss (supported: masked-lm, causal-lm, sequence-classification)")


def forward(module, params, batch, input_names, keys=None):
    """Logits; deterministic when `keys` is None, one dropout mask for the batch when `keys` is
    a single key, else per-example dropout with `keys[i]`."""
    inputs = {k: batch[k] for k in input_names}
    if keys is None:
        return module.apply({"params": params}, **inputs, deterministic=True).logits
    if keys.ndim == 0:
        return module.apply({"params": params}, **inputs, deterministic=False, rngs={"dropout": keys}).logits

    def one(example, key):
        single = {k: v[None] for k, v in example.items()}
        out = module.apply({"params": params}, **single, deterministic=False, rngs={"dropout": key})
        return out.logits[0]

    return jax.vmap(one)(inputs, keys)


def split_micro(batch, k: int):
    """(b, ...) → (k, b/k, ...): micro-batch m holds rows m, m+k, ... so that, when the batch
    axis is sharded, every micro-batch is spread over all devices."""
    def split(x):
        b = x.shape[0]
        return jnp.swapaxes(jnp.reshape(x, (b // k, k) + x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def _tree_where(cond, new, old):
    return jax.tree.map(lambda n, o: jnp.where(cond, n, o), new, old)


def make_train_step(module, tx: optax.GradientTransformation, schedule: Callable, cfg: StepConfig,
                    axis_name: Optional[str] = None, gather: Optional[Callable] = None,
                    constrain_micro: Optional[Callable] = None) -> Callable:
    """step(state, batch) → (state, metrics). `state` = {step, params, opt_state, rng}.

    gather: applied to the params before the forward pass (sharded mode: a sharding
    constraint to replicated, i.e. the FSDP all-gather; gradients are reduce-scattered back
    to the params' sharding by the step's output shardings). constrain_micro: applied to the
    stacked micro-batches (sharded mode: keep each micro-batch split over all devices)."""

    def loss_fn(params, micro, key):
        if gather is not None:
            params = gather(params)
        if cfg.dropout_rng == "per_example":
            key = jax.vmap(lambda i: jax.random.fold_in(key, i))(micro["index"])
        logits = forward(module, params, micro, cfg.input_names, key)
        sums = task_sums(cfg.task, logits, micro, cfg.num_labels)
        return sums["loss_sum"], sums

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(state, batch):
        params, step_no = state["params"], state["step"]
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step_no)
        if cfg.dropout_rng == "per_batch" and axis_name is not None:
            step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))

        def body(acc, xs):
            micro_index, micro = xs
            key = step_key if cfg.dropout_rng == "per_example" else jax.random.fold_in(step_key, micro_index)
            grads, sums = grad_fn(params, micro, key)
            return jax.tree.map(jnp.add, acc, (grads, sums)), None

        zeros = (jax.tree.map(jnp.zeros_like, params), {k: jnp.zeros((), jnp.float32) for k in SUM_KEYS})
        micro = split_micro(batch, cfg.grad_accum)
        if constrain_micro is not None:
            micro = constrain_micro(micro)
        (grads, sums), _ = jax.lax.scan(body, zeros, (jnp.arange(cfg.grad_accum), micro))
        if axis_name is not None:
            grads, sums = jax.lax.psum((grads, sums), axis_name)
        count = sums["count"]
        grads = jax.tree.map(lambda g: g / count, grads)
        loss = sums["loss_sum"] / count
        if cfg.inject_nan_at_step >= 0:
            poison = jnp.where(step_no == cfg.inject_nan_at_step, jnp.nan, 1.0)
            loss = loss * poison
            grads = jax.tree.map(lambda g: g * poison, grads)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        # A non-finite step changes nothing: "skip" goes on, "stop" makes the host raise.
        new_params = _tree_where(finite, new_params, params)
        new_opt = _tree_where(finite, new_opt, state["opt_state"])
        metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "count": count,
                   "accuracy": sums["correct"] / count,
                   "lr": schedule(optim.applied_updates(state["opt_state"]))}
        return {"step": step_no + 1, "params": new_params, "opt_state": new_opt, "rng": state["rng"]}, metrics

    return step


def make_eval_step(module, cfg: StepConfig, axis_name: Optional[str] = None,
                   gather: Optional[Callable] = None) -> Callable:
    """eval(params, batch) → {loss_sum, count, correct} over the (global) batch."""

    def step(params, batch):
        if gather is not None:
            params = gather(params)
        logits = forward(module, params, batch, cfg.input_names)
        sums = task_sums(cfg.task, logits, batch, cfg.num_labels)
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        return sums

    return step


def summarize_eval(task: str, totals: dict[str, float], num_labels: int = 2) -> dict[str, float]:
    count = max(totals["count"], 1e-9)
    loss = totals["loss_sum"] / count
    out = {"loss": loss, "count": totals["count"]}
    if task in ("masked-lm", "causal-lm"):
        out["perplexity"] = float(jnp.exp(jnp.minimum(loss, 80.0)))
        out["accuracy"] = totals["correct"] / count
    elif num_labels > 1:
        out["accuracy"] = totals["correct"] / count
    return out
