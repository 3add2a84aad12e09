"""Training: the pure train step, and the resumable, preemption-safe loop over a group of runs.

A group is one or more runs of one model whose arrays have the same shapes: their states are
stacked along a leading runs axis and one jit-compiled step, the train step vmapped over that
axis, advances them all, split over the devices of a (runs, data) mesh (of the thread's lane,
`sharding.on_devices`): on one accelerator, side by side. Runs of a group may differ in their
seed and in `HYPER` (numbers that change no shape or control flow); each keeps its own folder,
RNG streams, batches (in its own seed's order), checkpoints, best/, metrics log and patience. A
saturated run stops changing while the others go on, and every run trains as it would alone, up
to float rounding. `train_and_evaluate` trains one run: a group of one.
"""
from __future__ import annotations

import contextlib
import functools
import json
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vrash_jax import checkpoint, config_rules, evaluation, input_pipeline, losses, run_log, sharding, storage
from vrash_jax.errors import VrashError
from vrash_jax.train_state import TrainState, learning_rate_schedule, purpose_rng, reset_decoder

Batch = Mapping[str, jax.Array]
HYPER = ('free_bits', 'note_dropout', 'kl_cycles')  # numbers the runs of one group may differ in
SATURATION = 'saturation'  # why a run stopped early: `patience` evaluations without a better valid bound


def enable_compilation_cache(directory: str) -> None:
  """Keeps compiled steps on disk: resumed runs and further seeds skip recompiling."""
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def _rngs(rng: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
  dropout, latent = jax.random.split(jax.random.fold_in(rng, step))
  return {'dropout': dropout, 'latent': latent}


def make_train_step(config: ml_collections.ConfigDict) -> Callable[..., tuple[TrainState, dict]]:
  """train_step(state, batch, rng, hyper=None) -> (state, metrics); pure, randomness from
  fold_in(rng, step). `hyper` ({field of HYPER: array}) replaces the config's numbers."""

  def train_step(state: TrainState, batch: Batch, rng: jax.Array, hyper: Mapping[str, Any] | None = None):
    h = hyper if hyper is not None else {k: config[k] for k in HYPER}
    weight = losses.kl_weight(state.step, config.kl_anneal_steps, config.pretrain_steps,
                              h['kl_cycles'], config.train_steps)

    def loss_fn(params):
      logits, posterior = state.apply_fn({'params': params}, batch, deterministic=False,
                                         rngs=_rngs(rng, state.step), note_dropout=h['note_dropout'])
      return losses.loss_and_sums(logits, posterior, batch, weight, h['free_bits'])

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = dict(sums, loss=loss, kl_weight=weight, grad_norm=optax.global_norm(grads),
                   learning_rate=learning_rate_schedule(config)(state.step))
    return state.apply_gradients(grads=grads), metrics

  return train_step


def group_key(config: ml_collections.ConfigDict) -> str:
  """Runs whose configs agree here (all but the seed and HYPER) can train as one group."""
  return json.dumps({k: v for k, v in config.to_dict().items() if k not in HYPER + ('seed',)}, sort_keys=True)


def jit_group_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """step(states, batch, rngs, hyper, active) -> (states, metrics), every argument stacked over
  the runs and split along them on `mesh`; a run whose `active` is False keeps its state."""
  step = make_train_step(config)

  def one_run(state, batch, rng, hyper, active):
    new, metrics = step(state, batch, rng, hyper)
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), metrics

  per_run = sharding.per_run(mesh)
  return jax.jit(jax.vmap(one_run), donate_argnums=0, out_shardings=(per_run, per_run),
                 in_shardings=(per_run, sharding.group_batch(mesh), per_run, per_run, per_run))


def stack(states: Sequence[TrainState], mesh: jax.sharding.Mesh) -> TrainState:
  """Run states -> one state stacked over runs, split along them (its model and optimizer: the
  first run's, which differ from the others' in seed and HYPER only)."""
  structure = jax.tree.structure(states[0])

  def stacked(*leaves_per_run):
    return structure.unflatten([jnp.stack(x) for x in zip(*leaves_per_run)])

  return jax.jit(stacked, out_shardings=sharding.per_run(mesh))(*(jax.tree.leaves(s) for s in states))


def group_inputs(configs: Sequence[ml_collections.ConfigDict], mesh: jax.sharding.Mesh
                 ) -> tuple[jax.Array, dict[str, jax.Array], jax.Array]:
  """The runs' training RNG keys, HYPER values and all-active mask, stacked and split over runs."""
  per_run = sharding.per_run(mesh)
  keys = _keys(configs, 'train', mesh)
  hyper = {k: sharding.place(np.array([c[k] for c in configs], np.float32), per_run) for k in HYPER}
  return keys, hyper, sharding.place(np.ones(len(configs), bool), per_run)


def _keys(configs: Sequence[ml_collections.ConfigDict], purpose: str, mesh: jax.sharding.Mesh) -> jax.Array:
  """Each run's key of one purpose, stacked and split over runs."""
  seeds = sharding.place(np.array([c.seed for c in configs], np.int32), sharding.per_run(mesh))
  return jax.jit(jax.vmap(lambda seed: purpose_rng(seed, purpose)), out_shardings=sharding.per_run(mesh))(seeds)


def shard_group_batch(batches: Sequence[Mapping[str, np.ndarray]], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This host's rows of each run's batch (equal widths) -> one batch [runs, rows, ...] on `mesh`."""
  placed = sharding.group_batch(mesh)
  return {k: jax.make_array_from_process_local_data(placed, np.stack([b[k] for b in batches]))
          for k in batches[0]}


class Group:
  """The runs of a group on this host: data, checkpoints and metrics logs per run, and their
  stacked state, RNG keys and hyperparameters on the group's mesh."""

  def __init__(self, configs: Sequence[ml_collections.ConfigDict], data_dir: str, workdirs: Sequence[str],
               files: Sequence[checkpoint.RunCheckpoints], states: Sequence[TrainState]):
    self.configs, self.workdirs, self.files = list(configs), list(workdirs), list(files)
    config = self.config = configs[0]
    self.mesh = sharding.group_mesh(len(configs))
    self.replicated, self.per_run = sharding.replicated(self.mesh), sharding.per_run(self.mesh)
    rows = config.batch_size // self.mesh.shape[sharding.DATA_AXIS]
    here = sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)
    logging.info('process %d of %d: %d %s devices, %d of them here; global batch %d, %d per device; compute %s%s',
                 jax.process_index(), jax.process_count(), self.mesh.devices.size, jax.devices()[0].platform.upper(),
                 here, config.batch_size, rows, config.dtype,
                 f'; {len(configs)} runs side by side' if len(configs) > 1 else '')
    process = (jax.process_index(), jax.process_count())
    train = input_pipeline.load_split(data_dir, 'train', config.max_len)
    orders: dict[int, input_pipeline.TrainBatches] = {}
    self.batches = [orders.setdefault(c.seed, input_pipeline.TrainBatches(
        train, c.batch_size, c.seed, *process, bucket_step=c.bucket_step)) for c in configs]
    logging.info('%d training examples in %d batches per epoch; %.1f%% of the computed note slots are '
                 'padding (bucket_step %d)', self.batches[0].size, self.batches[0].batches_per_epoch,
                 100 * self.batches[0].padded_share(), config.bucket_step)
    self.valid = (input_pipeline.load_split(data_dir, 'valid', config.max_len)
                  if input_pipeline.has_split(data_dir, 'valid') else None)
    self.writers = [run_log.MetricWriter(w, enabled=jax.process_index() == 0) for w in workdirs]
    self.state, self.step = self._at_one_step(list(states))
    self.steps = [self.step] * len(configs)  # each run's own: a saturated run stays where it stopped
    self.rngs, self.hyper, self.active_on_device = group_inputs(configs, self.mesh)
    self.active = np.ones(len(configs), bool)
    self.step_fn = jit_group_step(config, self.mesh)
    self._take = jax.jit(lambda s, i: jax.tree.map(lambda x: x[i], s), out_shardings=self.replicated)

  def _at_one_step(self, states: list[TrainState]) -> tuple[TrainState, int]:
    """The runs' restored states stacked at one step: a run that saved one checkpoint more than
    the others before an interruption goes back to theirs and trains it again with them."""
    steps = [int(jax.device_get(s.step)) for s in states]
    start = min(steps)
    for i, (files, step) in enumerate(zip(self.files, steps)):
      if step > start:
        if start not in files.latest.all_steps():
          raise VrashError(f'{self.workdirs[i]} is at step {step}, another run of its group at {start}: '
                           'train runs at different steps in groups of their own')
        states[i] = files.restore_or_init(self.replicated, step=start)
        files.latest.drop_after(start)
    return stack(states, self.mesh), start

  def batch(self, step: int) -> tuple[dict[str, jax.Array], int]:
    """This host's rows of every run's batch at `step`, padded to the widest, and that width."""
    indices = [b.indices(step) for b in self.batches]
    width = max(b.width(i) for b, i in zip(self.batches, indices))
    rows = [input_pipeline.gather(b.arrays, i[b.rows], width) for b, i in zip(self.batches, indices)]
    return shard_group_batch(rows, self.mesh), width

  def run_state(self, i: int) -> TrainState:
    return self._take(self.state, i)

  def train(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    self.state, metrics = self.step_fn(self.state, batch, self.rngs, self.hyper, self.active_on_device)
    return metrics

  def reset_decoders(self) -> None:
    logging.info('step %d: encoder pretraining done; decoders re-initialized', self.config.pretrain_steps)
    reset = jax.jit(jax.vmap(functools.partial(reset_decoder, config=self.config)), donate_argnums=0,
                    out_shardings=self.per_run)
    self.state = reset(self.state, rng=_keys(self.configs, 'reset', self.mesh))

  def stop(self, i: int) -> None:
    """Freezes run i (saturated) while the others go on."""
    self.active[i] = False
    self.active_on_device = sharding.place(self.active, self.per_run)

  def running(self) -> list[int]:
    return [i for i in range(len(self.configs)) if self.active[i]]

  def name(self, i: int) -> str:
    return f'{self.workdirs[i]}: ' if len(self.configs) > 1 else ''


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


def _finished(files: checkpoint.RunCheckpoints, step: int) -> dict[str, Any]:
  return {'step': step, 'valid': {}, 'steps_run': 0, 'seconds': {'total': 0.0},
          'stopped_by': SATURATION if files.saturated(step) else None}


def train_runs(configs: Sequence[ml_collections.ConfigDict], data_dir: str, workdirs: Sequence[str]
               ) -> list[dict[str, Any]]:
  """Trains runs as one group (each resuming from its workdir's latest checkpoint) to
  `train_steps`; returns per run {'step', 'valid', 'steps_run', 'seconds', 'stopped_by'}.

  Stops early, after checkpointing, on SIGTERM or SIGINT; refuses workdirs another process trains
  in; never checkpoints a state whose loss went NaN or Inf; finished runs are not trained. Configs
  that break a rule of `config_rules`, or differ in more than the seed and HYPER, are refused
  before anything is read or compiled.
  """
  for config in configs:
    config_rules.validate(config, devices=len(sharding.lane_devices()))
  if len({group_key(c) for c in configs}) > 1:
    raise VrashError('the runs of a group may differ only in seed and ' + ', '.join(HYPER))
  if len(configs) > 1 and jax.process_count() > 1:
    raise VrashError('groups of runs train on one host; train multi-host runs one at a time')
  with contextlib.ExitStack() as stack_:
    locks = ([stack_.enter_context(storage.WorkdirLock(w)) for w in workdirs]
             if jax.process_index() == 0 else [])
    signals = stack_.enter_context(run_log.StopSignals())
    files = [checkpoint.RunCheckpoints(c, w) for c, w in zip(configs, workdirs)]
    for f in files:
      stack_.callback(f.close)
    states = [f.restore_or_init(sharding.replicated(sharding.data_mesh())) for f in files]
    steps = [int(jax.device_get(s.step)) for s in states]
    todo = [i for i, (f, s) in enumerate(zip(files, steps)) if not f.finished(s)]
    outcomes = {i: _finished(files[i], steps[i]) for i in range(len(files)) if i not in todo}
    if todo:
      group = Group([configs[i] for i in todo], data_dir, [workdirs[i] for i in todo],
                    [files[i] for i in todo], [states[i] for i in todo])
      outcomes.update(zip(todo, _loop(group, signals, locks)))
  return [outcomes[i] for i in range(len(configs))]


def train_and_evaluate(config: ml_collections.ConfigDict, data_dir: str, workdir: str) -> dict[str, Any]:
  """Trains one run (a group of one): see `train_runs`."""
  return train_runs([config], data_dir, [workdir])[0]


def _loop(group: Group, signals: run_log.StopSignals, locks: Sequence[storage.WorkdirLock]
          ) -> list[dict[str, Any]]:
  """Steps the group to `train_steps` (or until every run saturates, or a stop signal)."""
  config, files = group.config, group.files
  step = first = group.step
  last_saved = [f.latest.latest_step() for f in files]
  valid: list[dict[str, float]] = [{} for _ in files]
  history, unchecked, started = [], [], time.perf_counter()
  clock, widths = run_log.Stopwatch(), set()
  try:
    while step < config.train_steps and group.running():
      if config.pretrain_steps and step == config.pretrain_steps:
        group.reset_decoders()
      with clock.timing('input'):
        batch, width = group.batch(step)
      # A width's first call compiles (or loads from the cache) before it dispatches the step.
      with clock.timing('compilation') if width not in widths else contextlib.nullcontext():
        metrics = group.train(batch)
      widths.add(width)
      step += 1
      for i in group.running():
        group.steps[i] = step
      history.append(metrics)
      unchecked.append((step, metrics))
      stopping = signals.requested(step)
      if _due(step, config.log_every, config.train_steps):
        _check_finite(group, unchecked, last_saved)
        unchecked = []
        records, seconds = fetch_interval(history, started)
        for i in group.running():
          group.writers[i].write(step, 'train', run_log.summarize_interval(
              [{k: v[i] for k, v in r.items()} for r in records], seconds))
        run_log.log_progress(step, config.train_steps, len(history), seconds)
        history, started = [], time.perf_counter()
      if _due(step, config.eval_every, config.train_steps) and group.valid is not None:
        with clock.timing('evaluation'):
          for i in group.running():
            state = group.run_state(i)
            valid[i] = evaluation.evaluate_state(state, group.configs[i], group.valid,
                                                 group.configs[i].valid_iw_samples)
            group.writers[i].write(step, 'valid', valid[i])
            files[i].keep_if_best(step, valid[i], state)
      saturated = [i for i in group.running() if files[i].saturated(step)]
      due = _due(step, config.checkpoint_every, config.train_steps) or stopping
      if due or saturated:
        _check_finite(group, unchecked, last_saved)
        unchecked = []
        with clock.timing('checkpoints'):
          for lock in locks:
            lock.check()  # a workdir taken over by another trainer gets no more of our files
          for i in (group.running() if due else saturated):
            files[i].save(step, group.run_state(i))
            last_saved[i] = step
      for i in saturated:
        logging.info('%sstep %d: no better valid bound in %d evaluations; the best checkpoint (step %d) '
                     'is kept in best/', group.name(i), step, config.patience, files[i].best_record['step'])
        group.stop(i)
      if stopping:
        logging.warning('%s received: stopped after step %d with a checkpoint; run the same command to '
                        'resume', signals.received, step)
        break
  finally:
    for writer in group.writers:
      writer.close()
  seconds = clock.summary()
  logging.info('%d steps in %.0f s: %s; %d widths compiled', step - first, seconds['total'],
               ', '.join(f'{k} {v:.1f} s' for k, v in seconds.items() if k != 'total'), len(widths))
  share = {k: v / len(files) for k, v in seconds.items()}  # each run's share of the group's time
  return [{'step': s, 'valid': v, 'steps_run': s - first, 'seconds': share,
           'stopped_by': signals.received or (SATURATION if f.saturated(s) else None)}
          for s, v, f in zip(group.steps, valid, files)]


def fetch_interval(history: list[dict], started: float) -> tuple[list[dict], float]:
  """A logging interval's per-step metrics, fetched from the device, and its seconds: read after
  the fetch, which waits for the device (the loop dispatches ahead of the computation)."""
  records = jax.device_get(history)
  return records, time.perf_counter() - started


def _check_finite(group: Group, unchecked: list[tuple[int, dict]], last_saved: list[int | None]) -> None:
  """Raises, naming the run, the step and the term, if a running run's loss went NaN or Inf."""
  if not unchecked:
    return
  values = jax.device_get([(s, {k: m[k] for k, _ in run_log.FINITE_TERMS}) for s, m in unchecked])
  for i in group.running():
    try:
      run_log.check_finite([(s, {k: v[i] for k, v in terms.items()}) for s, terms in values], last_saved[i])
    except VrashError as e:
      raise VrashError(group.name(i) + str(e)) from None
