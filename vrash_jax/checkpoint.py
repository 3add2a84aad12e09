"""Orbax checkpoints of a run: the train state, the config, and the data position.

The config travels with every checkpoint so that a model can be rebuilt from its files
alone. Restoring takes an abstract target whose leaves carry the shardings of the current
mesh, so a checkpoint written on 8 devices restores on 1 (or on 2 hosts) and vice versa.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from vrash_jax.errors import VrashError

# Fields that fix the parameter shapes: a checkpoint restores only into the same values.
ARCHITECTURE_FIELDS = ('model', 'hidden', 'depth', 'latent_dim', 'pitch_embed', 'octave_embed',
                       'delay_embed', 'meta_embed')
ITEMS = ('state', 'config', 'data')


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


class Checkpoints:
  """A CheckpointManager over WORKDIR/checkpoints keeping the newest `max_to_keep`."""

  def __init__(self, workdir: str, max_to_keep: int = 3, read_only: bool = False):
    directory = checkpoint_dir(workdir)
    if read_only and not os.path.isdir(directory):
      raise VrashError(f'no checkpoints in {workdir!r}: train a model there with `vrash-train` first')
    self.manager = ocp.CheckpointManager(
        directory, item_names=ITEMS,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                             read_only=read_only,
                                             enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict,
           data_position: dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        config=ocp.args.JsonSave(config.to_dict()),
        data=ocp.args.JsonSave(data_position)))
    self.manager.wait_until_finished()

  def config(self, step: int | None = None) -> ml_collections.ConfigDict:
    step = self._step(step)
    restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored['config'])

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(state, data position) of `step` (default: latest), placed as `abstract_state` says."""
    step = self._step(step)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored['state'], restored['data']

  def _step(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise VrashError(f'no checkpoint in {self.manager.directory}')
    return step

  def close(self) -> None:
    self.manager.close()


def check_compatible(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                     workdir: str) -> None:
  """Refuses to resume a workdir whose checkpoint holds a different architecture."""
  for field in ARCHITECTURE_FIELDS:
    if saved.get(field) != config.get(field):
      raise VrashError(f'{workdir!r} holds a checkpoint with {field}={saved.get(field)!r}, but the '
                       f'config asks for {field}={config.get(field)!r}: use another --workdir')


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Shape/dtype structs of `tree` (arrays or structs), every leaf placed with `sharding`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
