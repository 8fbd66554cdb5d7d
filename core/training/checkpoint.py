"""Checkpoints with orbax `CheckpointManager`: atomic, keep-N, best-by-metric, corruption-tolerant.

Layout under the workdir:
    checkpoints/<step>/state   params, optimiser state (leaves by index), step, RNG key data
    checkpoints/<step>/meta    JSON: step, data position, metrics, the run's task and model type
    best/<step>/params, meta   the best params so far by `checkpoint.best_metric`
    corrupt/<step>-<time>/     checkpoints that failed to restore, moved aside (kept for inspection)

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a
process killed mid-save leaves no half-written step (the temporary directory is removed on the
next start). A checkpoint that still fails to restore (disk corruption, a truncated file) is
reported with its step, moved to `corrupt/`, and the previous one is used.
"""
from __future__ import annotations

import pathlib
import shutil
import time
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging


def pack_state(state: dict) -> dict:
    """The train state in a form orbax stores without caring about optax's NamedTuples:
    the optimiser state as {"00000": leaf, ...} in tree order."""
    leaves = jax.tree.leaves(state["opt_state"])
    return {"step": state["step"], "params": state["params"], "rng": state["rng"],
            "opt_state": {f"{i:05d}": leaf for i, leaf in enumerate(leaves)}}


def unpack_state(packed: dict, opt_state_like) -> dict:
    treedef = jax.tree.structure(opt_state_like)
    leaves = [packed["opt_state"][k] for k in sorted(packed["opt_state"])]
    return {"step": packed["step"], "params": packed["params"], "rng": packed["rng"],
            "opt_state": jax.tree.unflatten(treedef, leaves)}


class CheckpointStore:
    def __init__(self, workdir, keep: int = 3, async_save: bool = True, best_metric: str = "",
                 best_mode: str = "min", keep_best: int = 1, read_only: bool = False):
        self.workdir = pathlib.Path(workdir)
        self.best_metric = best_metric
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               cleanup_tmp_directories=not read_only, create=not read_only,
                                               read_only=read_only)
        self.latest = ocp.CheckpointManager(self.workdir / "checkpoints", options=options,
                                            item_names=("state", "meta"))
        self.best = None
        if best_metric and (not read_only or (self.workdir / "best").is_dir()):
            if best_mode not in ("min", "max"):
                raise ValueError(f"checkpoint.best_mode={best_mode!r}: expected 'min' or 'max'")
            best_options = ocp.CheckpointManagerOptions(
                max_to_keep=keep_best, best_fn=lambda m: float(m[best_metric]), best_mode=best_mode,
                keep_checkpoints_without_metrics=False, enable_async_checkpointing=async_save,
                cleanup_tmp_directories=not read_only, create=not read_only, read_only=read_only)
            self.best = ocp.CheckpointManager(self.workdir / "best", options=best_options,
                                              item_names=("params", "meta"))

    # -- saving ---------------------------------------------------------------------------------------
    def save(self, step: int, state: dict, meta: dict) -> None:
        self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(pack_state(state)),
                                                       meta=ocp.args.JsonSave(meta)))

    def save_best(self, step: int, params, meta: dict, metrics: dict) -> None:
        if self.best is None:
            return
        if self.best_metric not in metrics:
            raise KeyError(f"checkpoint.best_metric={self.best_metric!r} is not among the eval metrics "
                           f"{sorted(metrics)}")
        self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                                     meta=ocp.args.JsonSave(meta)),
                       metrics={k: float(v) for k, v in metrics.items()})

    def wait(self) -> None:
        self.latest.wait_until_finished()
        if self.best is not None:
            self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        if self.best is not None:
            self.best.close()

    # -- restoring -----------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        return sorted(self.latest.all_steps())

    def restore_latest(self, abstract_state: dict) -> Optional[tuple[dict, dict]]:
        """(state, meta) of the newest checkpoint that restores, or None if there is none.
        `abstract_state` (ShapeDtypeStructs with shardings) is the unpacked train state's target."""
        target = pack_state(abstract_state)
        for step in reversed(self.steps()):
            try:
                restored = self.latest.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
                state = unpack_state(restored["state"], abstract_state["opt_state"])
                meta = dict(restored["meta"])
                if int(np.asarray(jax.device_get(state["step"]))) != step or meta.get("step") != step:
                    raise ValueError(f"step mismatch inside checkpoint {step}")
                return state, meta
            except Exception as e:   # noqa: BLE001 -- any failure means: fall back to the previous step
                self._quarantine(step, e)
        return None

    def _quarantine(self, step: int, error: Exception) -> None:
        source = self.workdir / "checkpoints" / str(step)
        dest = self.workdir / "corrupt" / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        logging.error("checkpoint at step %d (%s) cannot be restored: %s: %s; moving it to %s and "
                      "trying the previous one", step, source, type(error).__name__,
                      str(error).splitlines()[0][:300] if str(error) else "", dest)
        if jax.process_index() == 0 and source.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(dest))
        self.latest.reload()

    def restore_params(self, which: str, abstract_params) -> tuple[Any, dict]:
        """(params, meta) of a checkpoint: "latest", "best" or a step number. Only the params
        are read (not the optimiser state); `abstract_params` (ShapeDtypeStructs, optionally
        with shardings) is the target."""
        if which == "best":
            if self.best is None or self.best.latest_step() is None:
                raise FileNotFoundError(f"{self.workdir}: no best checkpoint (checkpoint.best_metric unset, "
                                        "or no evaluation ran)")
            step = self.best.best_step()
            restored = self.best.restore(step, args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()))
            return restored["params"], dict(restored["meta"])
        step = self.latest.latest_step() if which == "latest" else int(which)
        if step is None or step not in self.latest.all_steps():
            raise FileNotFoundError(f"{self.workdir}: no checkpoint {which!r} under {self.workdir / 'checkpoints'} "
                                    f"(steps: {self.steps()})")
        item = {"params": abstract_params}
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                                         partial_restore=True),
            meta=ocp.args.JsonRestore()))
        return restored["state"]["params"], dict(restored["meta"])


def save_params_checkpoint(workdir, step: int, params, meta: dict) -> pathlib.Path:
    """A params-only Rosetta checkpoint (no optimiser state) in the training layout, e.g. a
    Hugging Face model converted to start training or evaluation from."""
    manager = ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints",
                                    options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False),
                                    item_names=("state", "meta"))
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave({"step": np.asarray(step, np.int32),
                                                                              "params": params}),
                                               meta=ocp.args.JsonSave({"step": step, **meta})))
    manager.wait_until_finished()
    manager.close()
    return pathlib.Path(workdir) / "checkpoints" / str(step)
