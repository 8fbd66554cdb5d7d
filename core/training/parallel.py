"""Where the train state and batches live, chosen by `config.parallel.mode`:

- "single":  one device, `jax.jit`.
- "pmap":    data parallel with `jax.pmap` over the local devices: params and optimiser state
             replicated, each device a slice of the host batch, gradients summed with `lax.psum`
             (then divided by the global token count: the mean over the global batch).
- "sharded": `jax.jit` over a ("data", "fsdp") device mesh with `NamedSharding`: the batch is
             split over both axes; every param and optimiser-state leaf is split over "fsdp"
             along its largest divisible axis (FSDP / ZeRO-3 style; XLA inserts the gathers).
             `mesh_fsdp=1` is plain data parallelism with replicated params.

Multi-host: call `initialize_distributed` first; every process then feeds only its slice of the
global batch (see `core.training.data`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MODES = ("single", "pmap", "sharded")
DATA_AXES = ("data", "fsdp")


def initialize_distributed(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, auto: bool = False) -> tuple[int, int]:
    """Start `jax.distributed` (multi-host) from arguments or the environment variables
    ROSETTA_COORDINATOR_ADDRESS / ROSETTA_NUM_PROCESSES / ROSETTA_PROCESS_ID; with `auto`,
    let JAX detect the cluster (TPU pods, SLURM, Open MPI, ...). No-op for one process."""
    env = os.environ
    coordinator_address = coordinator_address or env.get("ROSETTA_COORDINATOR_ADDRESS") or None
    if num_processes is None and env.get("ROSETTA_NUM_PROCESSES"):
        num_processes = int(env["ROSETTA_NUM_PROCESSES"])
    if process_id is None and env.get("ROSETTA_PROCESS_ID"):
        process_id = int(env["ROSETTA_PROCESS_ID"])
    if coordinator_address:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif auto:
        jax.distributed.initialize()
    if jax.process_count() > 1:
        logging.info("process %d of %d; %d local / %d global devices", jax.process_index(),
                     jax.process_count(), jax.local_device_count(), jax.device_count())
    return jax.process_index(), jax.process_count()


def fsdp_spec(shape: tuple[int, ...], fsdp: int, min_size: int = 0) -> P:
    """Shard the largest axis divisible by `fsdp` (ties: the last one); replicate small leaves."""
    if fsdp <= 1 or not shape or int(np.prod(shape)) < min_size:
        return P()
    best = None
    for axis, dim in enumerate(shape):
        if dim % fsdp == 0 and (best is None or dim >= shape[best]):
            best = axis
    if best is None:
        return P()
    spec = [None] * len(shape)
    spec[best] = "fsdp"
    return P(*spec)


class Placement:
    """Puts state and batches on devices and compiles the steps for one parallel mode."""

    def __init__(self, mode: str = "single", mesh_data: int = -1, mesh_fsdp: int = 1, fsdp_min_size: int = 0):
        if mode not in MODES:
            raise ValueError(f"parallel.mode={mode!r}: expected one of {MODES}")
        self.mode = mode
        self.fsdp_min_size = fsdp_min_size
        self.process_count = jax.process_count()
        self.process_index = jax.process_index()
        if mode == "single":
            self.devices = [jax.local_devices()[0]]
            if self.process_count > 1:
                raise ValueError("parallel.mode='single' runs on one device; use 'pmap' or 'sharded' "
                                 "with several processes")
        elif mode == "pmap":
            self.devices = jax.local_devices()
            self.local_mesh = Mesh(np.asarray(self.devices), ("data",))
        else:
            n = jax.device_count()
            data, fsdp = int(mesh_data), int(mesh_fsdp)
            if fsdp == -1 and data == -1:
                raise ValueError("parallel.mesh_data and parallel.mesh_fsdp cannot both be -1")
            if data == -1:
                data = n // fsdp
            if fsdp == -1:
                fsdp = n // data
            if data * fsdp != n:
                raise ValueError(f"parallel mesh {data}x{fsdp} (data x fsdp) does not use the {n} devices")
            self.mesh = jax.make_mesh((data, fsdp), DATA_AXES,
                                      axis_types=(jax.sharding.AxisType.Auto,) * 2)
            self.devices = jax.devices()
            self.fsdp = fsdp
        logging.info("parallel: mode=%s, %d device(s)%s", mode, len(self.devices),
                     f", mesh {dict(self.mesh.shape)}" if mode == "sharded" else "")

    # -- sizes ------------------------------------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        """Devices the batch is split over (all of them)."""
        return len(self.devices) * (self.process_count if self.mode == "pmap" else 1)

    def check_batch(self, global_batch: int, grad_accum: int, what: str = "train.batch_size") -> None:
        unit = grad_accum * self.num_replicas
        if global_batch % unit:
            raise ValueError(f"{what}={global_batch} must be a multiple of grad_accum ({grad_accum}) x "
                             f"devices ({self.num_replicas}) = {unit}")

    # -- state ------------------------------------------------------------------------------------
    def state_shardings(self, state_like) -> Any:
        """Per-leaf `NamedSharding` of the state in "sharded" mode (params and optimiser state
        by `fsdp_spec`; scalars replicated)."""
        return jax.tree.map(lambda x: NamedSharding(self.mesh, fsdp_spec(tuple(x.shape), self.fsdp,
                                                                         self.fsdp_min_size)), state_like)

    def put_state(self, state) -> Any:
        """A host or single-device state (the checkpoint form) onto the devices."""
        if self.mode == "single":
            return jax.device_put(state, self.devices[0])
        if self.mode == "pmap":
            n = len(self.devices)
            sharding = NamedSharding(self.local_mesh, P("data"))
            return jax.tree.map(lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)),
                                                         sharding), state)
        return jax.device_put(state, self.state_shardings(state))

    def abstract_state(self, state_like) -> Any:
        """Restore targets: shapes, dtypes and the shardings arrays should be restored with."""
        if self.mode == "sharded":
            shardings = self.state_shardings(state_like)
            return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                state_like, shardings)
        single = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=single), state_like)

    def saveable(self, device_state) -> Any:
        """The checkpoint form: replicated copies collapsed to one (pmap; as host numpy when
        there are several processes, which orbax then writes from process 0)."""
        if self.mode == "pmap":
            if self.process_count > 1:
                return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], device_state)
            return jax.tree.map(lambda x: x[0], device_state)
        return device_state

    def host_metrics(self, metrics) -> dict:
        metrics = jax.device_get(metrics)
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return metrics

    # -- batches ----------------------------------------------------------------------------------
    def put_batch(self, batch: dict[str, np.ndarray]) -> Any:
        """A host-local batch (this process's rows of the global batch) onto the devices."""
        if self.mode == "single":
            return jax.device_put(batch, self.devices[0])
        if self.mode == "pmap":
            n = len(self.devices)
            sharding = NamedSharding(self.local_mesh, P("data"))
            return {k: jax.device_put(v.reshape((n, v.shape[0] // n) + v.shape[1:]), sharding)
                    for k, v in batch.items()}
        sharding = NamedSharding(self.mesh, P(DATA_AXES))
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}

    # -- compiling --------------------------------------------------------------------------------
    def step_hooks(self) -> dict[str, Any]:
        """Keyword arguments for `steps.make_train_step` / `make_eval_step` in this mode:
        the collective axis (pmap) or the FSDP gather and micro-batch constraints (sharded)."""
        if self.mode == "single":
            return {"axis_name": None}
        if self.mode == "pmap":
            return {"axis_name": "data"}
        replicated = NamedSharding(self.mesh, P())
        micro = NamedSharding(self.mesh, P(None, DATA_AXES))
        hooks: dict[str, Any] = {
            "axis_name": None,
            "constrain_micro": lambda tree: jax.lax.with_sharding_constraint(
                tree, jax.tree.map(lambda _: micro, tree))}
        if self.fsdp > 1:
            hooks["gather"] = lambda tree: jax.lax.with_sharding_constraint(
                tree, jax.tree.map(lambda _: replicated, tree))
        return hooks

    def compile_train(self, make_step: Callable[..., Callable], state) -> Callable:
        """`make_step(**self.step_hooks())` compiled for this mode."""
        step = make_step(**self.step_hooks())
        if self.mode == "single":
            return jax.jit(step, donate_argnums=0)
        if self.mode == "pmap":
            return jax.pmap(step, axis_name="data", donate_argnums=0)
        shardings = self.state_shardings(state)
        batch = NamedSharding(self.mesh, P(DATA_AXES))
        replicated = NamedSharding(self.mesh, P())
        return jax.jit(step, in_shardings=(shardings, batch), out_shardings=(shardings, replicated),
                       donate_argnums=0)

    def compile_eval(self, make_step: Callable[..., Callable], params) -> Callable:
        hooks = {k: v for k, v in self.step_hooks().items() if k != "constrain_micro"}
        step = make_step(**hooks)
        if self.mode == "single":
            return jax.jit(step)
        if self.mode == "pmap":
            return jax.pmap(step, axis_name="data")
        shardings = self.state_shardings(params)
        batch = NamedSharding(self.mesh, P(DATA_AXES))
        return jax.jit(step, in_shardings=(shardings, batch), out_shardings=NamedSharding(self.mesh, P()))

    def params_of(self, device_state):
        """The params in the form the eval step takes (still replicated for pmap)."""
        return device_state["params"]
