"""Training: the pure train step, and the resumable, preemption-safe loop over a group of runs.

A group is one or more runs of one model whose arrays have the same shapes: their states are
stacked along a leading runs axis and one jit-compiled step, the train step vmapped over that
axis, advances them all, split over the devices of a (runs, data) mesh (of the thread's lane,
`sharding.on_devices`): on one accelerator, side by side; on many hosts, each run on one host's
devices (the runs axis spans the hosts). Runs of a group may differ in their
seed and in `HYPER` (numbers that change no shape or control flow); each (a `Run`) keeps its
own folder, RNG streams, batches (in its own seed's order), checkpoints, best/, metrics log and
patience. A saturated run stops changing while the others go on, and every run trains as it
would alone, up to float rounding. `train_and_evaluate` trains one run: a group of one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vrash_jax import (
  checkpoint,
  compile_ahead,
  config_rules,
  evaluation,
  input_pipeline,
  losses,
  run_log,
  sharding,
  storage,
)
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


@dataclasses.dataclass
class Run:
  """One run of a group on this host: its config, folder, checkpoints, batches (in its seed's
  order) and metrics log, and where it stands."""
  index: int  # along the group's runs axis
  config: ml_collections.ConfigDict
  workdir: str
  files: checkpoint.RunCheckpoints
  batches: input_pipeline.TrainBatches
  writer: run_log.MetricWriter
  step: int  # its own: a saturated run stays where it stopped while the others go on
  last_saved: int | None  # its newest checkpoint's step
  valid: dict[str, float] = dataclasses.field(default_factory=dict)  # its latest valid figures
  active: bool = True  # False once saturated


class Group:
  """The runs of a group on this host (one `Run` each), their stacked state, RNG keys and
  hyperparameters on the group's mesh, and the step they share."""

  def __init__(self, configs: Sequence[ml_collections.ConfigDict], data_dir: str, workdirs: Sequence[str],
               files: Sequence[checkpoint.RunCheckpoints], states: Sequence[TrainState]):
    config = self.config = configs[0]
    self.mesh = sharding.group_mesh(len(configs))
    self.replicated, self.per_run = sharding.replicated(self.mesh), sharding.per_run(self.mesh)
    rows = config.batch_size // self.mesh.shape[sharding.DATA_AXIS]
    here = sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)
    logging.info('process %d of %d: %d %s devices, %d of them here; global batch %d, %d per device; compute %s%s',
                 jax.process_index(), jax.process_count(), self.mesh.devices.size, jax.devices()[0].platform.upper(),
                 here, config.batch_size, rows, config.dtype,
                 f'; {len(configs)} runs side by side' if len(configs) > 1 else '')
    train = input_pipeline.load_split(data_dir, 'train', config.max_len)
    orders: dict[int, input_pipeline.TrainBatches] = {}  # every run's whole batches: see `batch`
    batches = [orders.setdefault(c.seed, input_pipeline.TrainBatches(
        train, c.batch_size, c.seed, bucket_step=c.bucket_step)) for c in configs]
    logging.info('%d training examples in %d batches per epoch; %.1f%% of the computed note slots are '
                 'padding (bucket_step %d)', batches[0].size, batches[0].batches_per_epoch,
                 100 * batches[0].padded_share(), config.bucket_step)
    self.valid = (input_pipeline.load_split(data_dir, 'valid', config.max_len)
                  if input_pipeline.has_split(data_dir, 'valid') else None)
    self.runs = [Run(i, c, w, f, b, run_log.MetricWriter(w, enabled=jax.process_index() == 0), 0, None)
                 for i, (c, w, f, b) in enumerate(zip(configs, workdirs, files, batches))]
    self.state, self.step = self._at_one_step(list(states))
    self.first_step = self.step
    for run in self.runs:
      run.step, run.last_saved = self.step, run.files.latest.latest_step()
    self.rngs, self.hyper, self.active_on_device = group_inputs(configs, self.mesh)
    self.step_fn = jit_group_step(config, self.mesh)
    self.compiled: dict[int, Any] = {}  # width -> the step compiled ahead (`compile_ahead`)
    self.widths: set[int] = set()  # padded widths stepped at so far
    self._take = jax.jit(lambda s, i: jax.tree.map(lambda x: x[i], s), out_shardings=self.replicated)

  def _at_one_step(self, states: list[TrainState]) -> tuple[TrainState, int]:
    """The runs' restored states stacked at one step: a run that saved one checkpoint more than
    the others before an interruption goes back to theirs and trains it again with them."""
    steps = [int(jax.device_get(s.step)) for s in states]
    start = min(steps)
    for run, step in zip(self.runs, steps):
      if step > start:
        if start not in run.files.latest.all_steps():
          raise VrashError(f'{run.workdir} is at step {step}, another run of its group at {start}: '
                           'train runs at different steps in groups of their own')
        states[run.index] = run.files.restore_or_init(self.replicated, step=start)
        run.files.latest.drop_after(start)
    return stack(states, self.mesh), start

  def batch(self) -> tuple[dict[str, jax.Array], int]:
    """Every run's batch at this step, padded to the widest, and that width (this host gathers
    the rows on its devices only)."""
    width = max(run.batches.width(run.batches.indices(self.step)) for run in self.runs)
    rows = [functools.partial(run.batches, self.step, width=width) for run in self.runs]
    return sharding.shard_group_batch(rows, self.mesh, self.config.batch_size), width

  def compile_ahead(self) -> None:
    """The step compiled at every width the group's batches take from here on, at once."""
    widths = compile_ahead.group_widths([r.batches for r in self.runs], self.step, self.config.train_steps)

    def args_at(width: int) -> tuple:
      rows = self.runs[0].batches(self.step, rows=slice(0, 0), width=width)  # the fields' shapes
      batch = compile_ahead.abstract_group_batch(rows, len(self.runs), self.config.batch_size, self.mesh)
      return self.state, batch, self.rngs, self.hyper, self.active_on_device

    self.compiled = compile_ahead.compile_widths(self.step_fn, args_at, widths)

  def advance(self, clock: run_log.Stopwatch) -> dict[str, jax.Array]:
    """Every running run one step on: its metrics, stacked over runs (not waited for)."""
    with clock.timing('input'):
      batch, width = self.batch()
    step_fn = self.compiled.get(width, self.step_fn)
    # A width not compiled ahead compiles (or loads from the cache) at its first call.
    first_call = width not in self.compiled and width not in self.widths
    with clock.timing('compilation') if first_call else contextlib.nullcontext():
      self.state, metrics = step_fn(self.state, batch, self.rngs, self.hyper, self.active_on_device)
    self.widths.add(width)
    self.step += 1
    for run in self.running():
      run.step = self.step
    return metrics

  def run_state(self, run: Run) -> TrainState:
    return self._take(self.state, run.index)

  def reset_decoders(self) -> None:
    logging.info('step %d: encoder pretraining done; decoders re-initialized', self.config.pretrain_steps)
    reset = jax.jit(jax.vmap(functools.partial(reset_decoder, config=self.config)), donate_argnums=0,
                    out_shardings=self.per_run)
    self.state = reset(self.state, rng=_keys([r.config for r in self.runs], 'reset', self.mesh))

  def stop(self, run: Run) -> None:
    """Freezes a saturated run while the others go on."""
    run.active = False
    self.active_on_device = sharding.place(np.array([r.active for r in self.runs]), self.per_run)

  def running(self) -> list[Run]:
    return [run for run in self.runs if run.active]

  def name(self, run: Run) -> str:
    return f'{run.workdir}: ' if len(self.runs) > 1 else ''

  def close(self) -> None:
    for run in self.runs:
      run.writer.close()


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
  """Steps the group to `train_steps` (or until every run saturates, or a stop signal): after each
  step, whatever is due (a log line, an evaluation, checkpoints, a saturated run's stop)."""
  config, last = group.config, group.config.train_steps
  clock, interval, stopped_by = run_log.Stopwatch(), run_log.Interval(), None
  try:
    with clock.timing('compilation'):
      group.compile_ahead()
    while group.step < last and group.running():
      if config.pretrain_steps and group.step == config.pretrain_steps:
        group.reset_decoders()
      interval.add(group.step + 1, group.advance(clock))
      step, stopping = group.step, signals.requested(group.step)
      if _due(step, config.log_every, last):
        interval.log(group)
      if _due(step, config.eval_every, last) and group.valid is not None:
        with clock.timing('evaluation'):
          _evaluate(group)
      saturated = [run for run in group.running() if run.files.saturated(step)]
      due = _due(step, config.checkpoint_every, last) or stopping
      if due or saturated:
        interval.check_finite(group)
        with clock.timing('checkpoints'):
          _save(group, group.running() if due else saturated, locks)
      for run in saturated:
        logging.info('%sstep %d: no better valid bound in %d evaluations; the best checkpoint (step %d) '
                     'is kept in best/', group.name(run), step, config.patience, run.files.best_record['step'])
        group.stop(run)
      if stopping:
        stopped_by = signals.received or 'a stop signal (on another host)'
        logging.warning('%s received: stopped after step %d with a checkpoint; run the same command to '
                        'resume', stopped_by, step)
        break
  finally:
    group.close()
  return _outcomes(group, clock, stopped_by)


def _evaluate(group: Group) -> None:
  """Each running run's valid figures (in one compiled step for the group where that pays:
  `evaluation.evaluates_groups_in_one_step`), logged; its best checkpoint kept if they are its best."""
  iw_samples = group.config.valid_iw_samples
  if evaluation.evaluates_groups_in_one_step():
    figures = evaluation.evaluate_group(group.state, [r.config for r in group.runs], group.mesh, group.valid,
                                        iw_samples)
  else:
    figures = {r.index: evaluation.evaluate_state(group.run_state(r), r.config, group.valid, iw_samples)
               for r in group.running()}
  for run in group.running():
    run.valid = figures[run.index]
    run.writer.write(group.step, 'valid', run.valid)
    if run.files.improves(group.step, run.valid):
      run.files.keep_if_best(group.step, run.valid, group.run_state(run))


def _save(group: Group, runs: Sequence[Run], locks: Sequence[storage.WorkdirLock]) -> None:
  """Checkpoints `runs` at the group's step, unless another trainer took over a workdir."""
  for lock in locks:
    lock.check()  # a workdir taken over by another trainer gets no more of our files
  for run in runs:
    run.files.save(group.step, group.run_state(run))
    run.last_saved = group.step


def _outcomes(group: Group, clock: run_log.Stopwatch, stopped_by: str | None) -> list[dict[str, Any]]:
  """Per run: the step reached, its latest valid figures, steps run, its share of the group's
  time, and why it stopped (`stopped_by`: the signal every host agreed to stop on)."""
  seconds, first = clock.summary(), group.first_step
  logging.info('%d steps in %.0f s: %s; %d widths compiled', group.step - first, seconds['total'],
               ', '.join(f'{k} {v:.1f} s' for k, v in seconds.items() if k != 'total'),
               len(group.widths.union(group.compiled)))
  share = {k: v / len(group.runs) for k, v in seconds.items()}  # each run's share of the group's time
  return [{'step': run.step, 'valid': run.valid, 'steps_run': run.step - first, 'seconds': share,
           'stopped_by': stopped_by or (SATURATION if run.files.saturated(run.step) else None)}
          for run in group.runs]
