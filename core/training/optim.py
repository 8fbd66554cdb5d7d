"""Optimiser: AdamW with a weight-decay mask, warmup + decay schedules, global-norm clipping.

Non-canonical training code (free Python/JAX). Parameter categories come from the leaf names
the primitives in `core/layers/prims.py` use: Dense → `kernel`/`bias`, Embed → `embedding`,
LayerNorm/RMSNorm → `scale`/`bias`; raw `self.param` biases are named `bias` too.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from core.checkpoint import keymap as km

DECAY_CATEGORIES = ("bias", "norm", "embedding")
SCHEDULES = ("cosine", "linear", "constant")


def param_categories(path: str) -> frozenset[str]:
    """The decay categories of a flattened param path (`a/b/kernel`): a subset of
    {'bias', 'norm', 'embedding'}; empty for weight matrices. A LayerNorm bias is both
    'bias' and 'norm'."""
    parts = path.split("/")
    leaf, parent = parts[-1], parts[-2].lower() if len(parts) > 1 else ""
    in_norm = "norm" in parent or parent.startswith("ln_") or parent == "ln"
    found = set()
    if leaf == "scale" or (in_norm and leaf in ("bias", "weight")):
        found.add("norm")
    if leaf == "bias":
        found.add("bias")
    if leaf == "embedding":
        found.add("embedding")
    return frozenset(found)


def parse_categories(spec: str) -> tuple[str, ...]:
    """`"bias,norm"` → ('bias', 'norm'); rejects unknown names."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in DECAY_CATEGORIES]
    if unknown:
        raise ValueError(f"optimizer.no_decay: unknown categories {unknown}; use a comma list of "
                         f"{', '.join(DECAY_CATEGORIES)} (or '' to decay everything)")
    return names


def decay_mask(params: Mapping, no_decay: str | tuple[str, ...] = "bias,norm") -> Any:
    """A pytree of bools like `params`: True where weight decay applies."""
    excluded = parse_categories(no_decay) if isinstance(no_decay, str) else tuple(no_decay)
    flat = km.flatten(params)
    return km.unflatten({p: not (param_categories(p) & set(excluded)) for p in flat})


def make_schedule(opt) -> Callable[[jax.Array], jax.Array]:
    """Linear warmup from 0 to `lr` over `warmup_steps`, then `schedule` down to
    `lr * end_lr_ratio` at `decay_steps` (cosine / linear) or constant."""
    lr, warmup, total = float(opt.lr), int(opt.warmup_steps), int(opt.decay_steps)
    end = lr * float(opt.end_lr_ratio)
    if opt.schedule not in SCHEDULES:
        raise ValueError(f"optimizer.schedule={opt.schedule!r}: expected one of {SCHEDULES}")
    decay_len = max(total - warmup, 1)
    if opt.schedule == "cosine":
        after = optax.cosine_decay_schedule(lr, decay_len, alpha=end / lr if lr else 0.0)
    elif opt.schedule == "linear":
        after = optax.linear_schedule(lr, end, decay_len)
    else:
        after = optax.constant_schedule(lr)
    if warmup <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def make_optimizer(opt, params: Mapping) -> tuple[optax.GradientTransformation, Callable]:
    """(transformation, schedule) from the `optimizer` section of an experiment config."""
    if opt.name != "adamw":
        raise ValueError(f"optimizer.name={opt.name!r}: only 'adamw' is implemented")
    schedule = make_schedule(opt)
    parts = []
    if opt.clip_norm and opt.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(float(opt.clip_norm)))
    parts.append(optax.adamw(schedule, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps),
                             weight_decay=float(opt.weight_decay), mask=decay_mask(params, opt.no_decay)))
    return optax.chain(*parts), schedule


def applied_updates(opt_state) -> jax.Array:
    """How many updates the optimiser has applied (skipped non-finite steps do not count)."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "_fields") and "count" in x._fields):
        if hasattr(node, "_fields") and "count" in node._fields:
            return node.count
    return jnp.zeros((), jnp.int32)
