"""Orbax checkpoints of a run: the train state, the config, and the data position; the run's
best one by the valid bound, with patience; and the lock on its workdir.

The config travels with every checkpoint so that a model can be rebuilt from its files
alone. Restoring takes an abstract target whose leaves carry the shardings of the current
mesh, so a checkpoint written on 8 devices restores on 1 (or on 2 hosts) and vice versa.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import logging as std_logging
import threading
import time
from typing import Any, Iterator, Mapping

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from vrash_jax import config_rules, storage
from vrash_jax.errors import VrashError
from vrash_jax.train_state import TrainState, create_state, purpose_rng

# Fields that fix the parameter shapes: a checkpoint restores only into the same values.
ARCHITECTURE_FIELDS = ('model', 'hidden', 'depth', 'latent_dim', 'pitch_embed', 'octave_embed',
                       'delay_embed', 'meta_embed')
ITEMS = ('state', 'config', 'data')
LATEST, BEST = 'checkpoints', 'best'  # the run's newest checkpoints; its best one by valid
# Orbax (0.12) keys a save's signals by a process-wide "current operation id" that every save
# advances and then reads again: two threads saving at once (lanes) read each other's id, and one
# waited out orbax's 300 s for a signal sent under the other's. So saves start one at a time;
# asynchronous ones still write in the background.
_SAVES_START = threading.Lock()


def inference_part(state: Any) -> dict[str, Any]:
  """What best/ keeps and what evaluation, export and sampling read: the parameters and the step.
  Only resume needs Adam's moments (twice the parameters again), so only latest/ keeps them."""
  return {'params': state.params, 'step': state.step}


def checkpoint_dir(workdir: str, kind: str = LATEST) -> str:
  return storage.join(workdir, kind)


def saved_steps(workdir: str, kind: str = LATEST) -> list[int]:
  """The steps of a run's finished checkpoints, without opening a manager (a save cut short
  leaves a '<step>.orbax-checkpoint-tmp-...' folder, which is no step)."""
  directory = storage.path(checkpoint_dir(workdir, kind))
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def has_best(workdir: str) -> bool:
  directory = storage.path(checkpoint_dir(workdir, BEST))
  return directory.is_dir() and any(directory.iterdir())


class Checkpoints:
  """A CheckpointManager over WORKDIR/checkpoints (or WORKDIR/best) keeping the newest
  `max_to_keep`. With `asynchronous`, a save copies the state off the devices and returns while
  a thread writes it; the write is waited for at the next save and at `close`."""

  def __init__(self, workdir: str, max_to_keep: int = 3, read_only: bool = False,
               kind: str = LATEST, asynchronous: bool = False):
    directory = checkpoint_dir(workdir, kind)
    if read_only and not storage.path(directory).is_dir():
      raise VrashError(f'no checkpoints in {workdir!r}: train a model there with `vrash-train` first')
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else max_to_keep, create=not read_only,
                                           read_only=read_only, save_interval_steps=0 if read_only else 1,
                                           enable_async_checkpointing=asynchronous)
    with _without_read_only_notice():
      self.manager = ocp.CheckpointManager(directory, item_names=ITEMS, options=options)
    self.asynchronous, self.writing = asynchronous, None  # the step being written, if any

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict,
           data_position: dict[str, Any]) -> None:
    """Writes a checkpoint (a train state, or any tree of arrays) atomically; a failed write
    leaves the earlier ones intact."""
    self.finish_writing()
    with self._failing_as(step), _SAVES_START:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          config=ocp.args.JsonSave(config.to_dict()),
          data=ocp.args.JsonSave(data_position)))
      self.writing = step
    if not self.asynchronous:
      self.finish_writing()

  def finish_writing(self) -> None:
    """Waits for the checkpoint being written, if any; its errors are raised as its own."""
    if self.writing is not None:
      with self._failing_as(self.writing):
        self.manager.wait_until_finished()
      self.writing = None

  @contextlib.contextmanager
  def _failing_as(self, step: int) -> Iterator[None]:
    try:
      yield
    except Exception as e:  # orbax wraps the OSError of a full or read-only disk
      cause = _os_error(e)
      if cause is None:
        raise
      self.writing = None
      reason = 'the disk is full' if cause.errno == errno.ENOSPC else (cause.strerror or str(cause))
      raise VrashError(f'could not write checkpoint {step} in {self.manager.directory} ({reason}); '
                       f'the previous checkpoint (step {self._finished_before(step)}) is intact') from None

  def _finished_before(self, step: int) -> int | None:
    self.manager.reload()
    return max((s for s in self.manager.all_steps() if s < step), default=None)

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def drop_after(self, step: int) -> None:
    """Deletes the checkpoints after `step` (a run rolled back to train them again)."""
    for later in [s for s in self.all_steps() if s > step]:
      self.manager.delete(later)

  def quarantine(self, step: int) -> str:
    """Moves an unreadable checkpoint out of the way (to WORKDIR/corrupt_checkpoints/)."""
    directory = storage.path(self.manager.directory)
    target = directory.parent / 'corrupt_checkpoints' / f'{step}-{int(time.time())}'
    storage.move_aside(directory / str(step), target)
    self.manager.reload()
    return str(target)

  def config(self, step: int | None = None) -> ml_collections.ConfigDict:
    step = self._step(step)
    restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return config_rules.from_saved(restored['config'], f'checkpoint {step} in {self.manager.directory}')

  def data(self, step: int | None = None) -> dict[str, Any]:
    """The JSON saved beside the state (data position, and valid figures for the best)."""
    step = self._step(step)
    return self.manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))['data']

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(state, data position) of `step` (default: latest), placed as `abstract_state` says."""
    step = self._step(step)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored['state'], restored['data']

  def restore_inference_part(self, abstract_state: Any, step: int | None = None) -> dict[str, Any]:
    """`inference_part` of `step`'s state (default: latest), placed as `abstract_state` says,
    from a whole train state (latest/, and best/ as written before it kept less) or from
    best/'s part alone: the moments are not read."""
    step = self._step(step)
    target = inference_part(abstract_state)
    placements = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), target)
    restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=target, restore_args=placements, partial_restore=True)))
    return restored['state']

  def _step(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise VrashError(f'no checkpoint in {self.manager.directory}')
    return step

  def close(self) -> None:
    """Waits for a write in flight (a failure raised as its own), then closes the manager."""
    try:
      self.finish_writing()
    except VrashError:
      with contextlib.suppress(Exception):  # orbax's close may raise the same failure again
        self.manager.close()
      raise
    self.manager.close()


@contextlib.contextmanager
def _without_read_only_notice() -> Iterator[None]:
  """Orbax warns "Given directory is read only" for every manager opened read-only, which is
  what every evaluation and sample asks for: that one line is dropped, other warnings stay."""
  def keep(record: std_logging.LogRecord) -> bool:
    return not record.getMessage().startswith('Given directory is read only')

  logger = std_logging.getLogger('absl')
  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)


def valid_bound(figures: Mapping[str, float]) -> float:
  """The figure that picks the best checkpoint: the importance-weighted NLL bound per note
  when it was computed, else the ELBO bound (for the LM both are its exact NLL)."""
  return figures.get('nll_iw', figures['nll_bound'])


class RunCheckpoints:
  """A training run's checkpoints: the newest `max_to_keep` in WORKDIR/checkpoints (written while
  training goes on, on one host), and its best state's `inference_part` by the valid bound in
  WORKDIR/best/, which `patience` watches."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, workdir
    # Training goes on while its checkpoints are written, on one host. On many, orbax's writing
    # threads must meet at barriers of their own, which the hosts' stepping does not wait for:
    # there every save is whole before the next step.
    self.latest = Checkpoints(workdir, config.max_to_keep, asynchronous=jax.process_count() == 1)
    self.best = Checkpoints(workdir, 1, kind=BEST)
    self.best_record = self.best.data() if self.best.latest_step() is not None else None

  def restore_or_init(self, sharding: jax.sharding.Sharding, step: int | None = None) -> TrainState:
    """The newest readable checkpoint's state (or `step`'s), else a fresh one, placed with
    `sharding`; unreadable checkpoints are set aside with a warning."""
    init = jax.jit(functools.partial(create_state, self.config), out_shardings=sharding)
    init_rng = purpose_rng(self.config.seed, 'init')
    target = None
    for candidate in reversed(self.latest.all_steps() if step is None else [step]):
      try:
        saved = self.latest.config(candidate)
      except VrashError:  # readable, but written for another version: not corrupt
        raise
      except Exception as e:  # a truncated or garbled checkpoint raises anything
        self._set_aside(candidate, e)
        continue
      check_compatible(saved, self.config, self.workdir)
      if target is None:
        target = abstract_like(jax.eval_shape(init, init_rng), sharding)
      try:
        state, data = self.latest.restore(target, candidate)
      except Exception as e:
        self._set_aside(candidate, e)
        continue
      logging.info('%s: resumed from step %d (data position %s)', self.workdir, candidate, data)
      return state
    return init(init_rng)

  def _set_aside(self, step: int, error: Exception) -> None:
    where = self.latest.quarantine(step) if jax.process_index() == 0 else 'aside'
    logging.warning('checkpoint %d is unreadable (%s: %s); moved to %s, falling back to the previous one',
                    step, type(error).__name__, str(error)[:200], where)

  def save(self, step: int, state: TrainState) -> None:
    position = {'step': step, 'seed': self.config.seed, 'examples_seen': step * self.config.batch_size}
    self.latest.save(step, state, self.config, position)

  def improves(self, step: int, valid: Mapping[str, float]) -> bool:
    """Whether figures at `step` beat every earlier valid bound: finite, and after pretraining
    (an autoencoder's bound is not the model's)."""
    bound = valid_bound(valid)
    return (step > self.config.pretrain_steps and bool(np.isfinite(bound))
            and (self.best_record is None or bound < self.best_record['valid_bound']))

  def keep_if_best(self, step: int, valid: Mapping[str, float], state: TrainState) -> None:
    """Saves the state to WORKDIR/best/ when its figures `improve` on every earlier one."""
    if self.improves(step, valid):
      self.best_record = {'step': step, 'valid_bound': valid_bound(valid)}
      self.best.save(step, inference_part(state), self.config, self.best_record)

  def saturated(self, step: int) -> bool:
    """Whether `patience` evaluations have passed without a better valid bound."""
    best = self.best_record if self.config.patience else None
    return best is not None and step - best['step'] >= self.config.patience * self.config.eval_every

  def finished(self, step: int) -> bool:
    """Whether a run at `step` has nothing left to train: at `train_steps`, or saturated."""
    return step >= self.config.train_steps or self.saturated(step)

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def _os_error(e: BaseException | None) -> OSError | None:
  while e is not None:
    if isinstance(e, OSError):
      return e
    e = e.__cause__ or e.__context__
  return None


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
