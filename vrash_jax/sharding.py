"""Data parallelism over every device of every host: a 1-D `data` mesh; and a 2-D (`runs`,
`data`) mesh for a group of runs trained as one.

Parameters and optimizer state are replicated; each batch is split along its first axis.
Under `jax.jit` the gradient of a loss averaged over the global batch is all-reduced by XLA,
which gives pmap's semantics (per-device shards, mean-reduced gradients) without pmap. In a
group, the stacked states and batches are split along their leading runs axis too, so that
runs on different devices train side by side. A thread may be given a lane, a subset of the
devices (`on_devices`): its meshes then hold those devices only, so that several runs train at
once, each on devices of its own (on a CPU, every lane on its one device: `study.runs`).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS, RUNS_AXIS = 'data', 'runs'
_lane = threading.local()  # .devices: this thread's lane, when it has one


def lane_devices() -> list[Any]:
  """The devices this thread computes on: its lane's (`on_devices`), else every device."""
  return list(getattr(_lane, 'devices', None) or jax.devices())


@contextlib.contextmanager
def on_devices(devices: Sequence[Any]) -> Iterator[None]:
  """Within it, this thread's meshes (`data_mesh`, `group_mesh`) hold `devices` only."""
  previous = getattr(_lane, 'devices', None)
  _lane.devices = list(devices)
  try:
    yield
  finally:
    _lane.devices = previous


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
  """Joins a multi-host run: explicit flags, or auto-detection on TPU pods and clusters."""
  if coordinator_address or num_processes:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  else:
    jax.distributed.initialize()


def data_mesh(devices: list[Any] | None = None) -> Mesh:
  return Mesh(np.asarray(devices if devices is not None else lane_devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def shard_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's rows of a global batch -> global arrays split over the `data` axis."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def group_mesh(runs: int, devices: list[Any] | None = None) -> Mesh:
  """(runs, data) over the lane's devices: as many devices along `runs` as divide both the number
  of runs and of devices (the rest of each run's devices split its batch). Devices are ordered by
  host, so that on many hosts a run's devices are one host's where they can be: its gradients are
  then summed within that host, and the runs axis spans the hosts."""
  devices = devices if devices is not None else lane_devices()
  devices = np.asarray(sorted(devices, key=lambda d: (d.process_index, d.id)))
  along_runs = max(r for r in range(1, runs + 1) if runs % r == 0 and devices.size % r == 0)
  return Mesh(devices.reshape(along_runs, devices.size // along_runs), (RUNS_AXIS, DATA_AXIS))


def per_run(mesh: Mesh) -> NamedSharding:
  """Stacked per-run arrays (states, RNG keys, hyperparameters): split along runs."""
  return NamedSharding(mesh, PartitionSpec(RUNS_AXIS))


def group_batch(mesh: Mesh) -> NamedSharding:
  """A group's batch [runs, rows, ...]: split along runs, then rows."""
  return NamedSharding(mesh, PartitionSpec(RUNS_AXIS, DATA_AXIS))


def shard_group_batch(batches: Sequence[Callable[[slice], Mapping[str, np.ndarray]]], mesh: Mesh,
                      rows: int) -> dict[str, jax.Array]:
  """Each run's batch (a function of the rows wanted, of `rows`) -> one batch [runs, rows, ...]
  split along runs and rows on `mesh`. A host gathers the rows on its own devices only: on many
  hosts a run may live on another host's devices alone (the runs axis spans the hosts)."""
  placed, parts = group_batch(mesh), {}

  def rows_of(run: int, wanted: slice) -> Mapping[str, np.ndarray]:
    key = (run, wanted.start, wanted.stop)
    if key not in parts:
      parts[key] = batches[run](wanted)
    return parts[key]

  def field(name: str, shape: tuple[int, ...]) -> jax.Array:
    return jax.make_array_from_callback((len(batches), rows) + shape, placed, lambda index: np.stack(
        [rows_of(r, index[1])[name] for r in range(len(batches))[index[0]]]))

  return {name: field(name, value.shape[1:]) for name, value in rows_of(0, slice(0, 0)).items()}


def fetch(tree: Any) -> Any:
  """`tree`'s arrays as NumPy values on every host, also those split over other hosts' devices
  (a group's per-run metrics on many hosts: gathered, which every host must call alike)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)


def place(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A host array every process holds alike -> a global array placed with `sharding` (each host
  fills the parts on its devices)."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
