"""Training: the pure jit-compiled step, the resumable, preemption-safe loop, and its metrics log."""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import ml_collections
import numpy as np
import optax
from absl import logging

from vrash_jax import checkpoint, config_rules, evaluation, input_pipeline, losses, sharding
from vrash_jax.errors import VrashError
from vrash_jax.train_state import TrainState, create_state, learning_rate_schedule, purpose_rng, reset_decoder

Batch = Mapping[str, jax.Array]


def enable_compilation_cache(directory: str) -> None:
  """Keeps compiled steps on disk: resumed runs and further seeds skip recompiling."""
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def _rngs(rng: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
  dropout, latent = jax.random.split(jax.random.fold_in(rng, step))
  return {'dropout': dropout, 'latent': latent}


def make_train_step(config: ml_collections.ConfigDict
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
  """train_step(state, batch, rng) -> (state, metrics); pure, randomness from fold_in(rng, step)."""

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    weight = losses.kl_weight(state.step, config.kl_anneal_steps, config.pretrain_steps,
                              config.kl_cycles, config.train_steps)

    def loss_fn(params):
      logits, posterior = state.apply_fn({'params': params}, batch, deterministic=False,
                                         rngs=_rngs(rng, state.step))
      return losses.loss_and_sums(logits, posterior, batch, weight, config.free_bits)

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = dict(sums, loss=loss, kl_weight=weight, grad_norm=optax.global_norm(grads),
                   learning_rate=learning_rate_schedule(config)(state.step))
    return state.apply_gradients(grads=grads), metrics

  return train_step


class MetricWriter:
  """Writes WORKDIR/metrics.jsonl and WORKDIR/tensorboard/<split>/ (when TensorFlow is present)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._tb: dict[str, Any] = {}
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self.workdir = workdir
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', encoding='utf-8')
      try:
        import tensorboard  # noqa: F401  (tf.summary needs it)
        import tensorflow as tf
        self._tf = tf
      except ImportError:  # the training side runs without TensorFlow: JSONL only
        logging.warning('TensorFlow/TensorBoard not installed (the `prep` extra): metrics go to '
                        'metrics.jsonl only')
        self._tf = None

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps({'step': step, 'split': split, **metrics}) + '\n')
    self._jsonl.flush()
    if self._tf is not None:
      if split not in self._tb:
        self._tb[split] = self._tf.summary.create_file_writer(
            os.path.join(self.workdir, 'tensorboard', split))
      with self._tb[split].as_default():
        for key, value in metrics.items():
          self._tf.summary.scalar(key, value, step=step)
      self._tb[split].flush()
    shown = ' '.join(f'{k}={v:.4g}' for k, v in metrics.items() if isinstance(v, (int, float)))
    logging.info('[%s] step %d %s', split, step, shown)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    for writer in self._tb.values():
      writer.close()


def jit_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """The train step compiled for the data mesh: state replicated, batch split, state donated
  (a plan that times it shares the run's compilations through the persistent cache)."""
  replicated, batched = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  return jax.jit(make_train_step(config), donate_argnums=0, in_shardings=(replicated, batched, replicated),
                 out_shardings=(replicated, replicated))


class Stopwatch:
  """Where a run's time goes: seconds per part of the loop; the rest is the steps themselves."""

  def __init__(self):
    self.started, self.seconds = time.perf_counter(), collections.Counter()

  @contextlib.contextmanager
  def timing(self, part: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    self.seconds[part] += time.perf_counter() - start

  def summary(self) -> dict[str, float]:
    """{part: seconds} with 'steps' (the remainder) and 'total'."""
    total = time.perf_counter() - self.started
    return {**self.seconds, 'steps': total - sum(self.seconds.values()), 'total': total}


class Trainer:
  """Everything a run needs on this host: mesh, data, compiled steps, checkpoints."""

  def __init__(self, config: ml_collections.ConfigDict, data_dir: str, workdir: str):
    self.config, self.workdir = config, workdir
    self.mesh = sharding.data_mesh()
    logging.info('process %d of %d: %d of %d %s devices here; global batch %d, %d per device; '
                 'compute %s', jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count(), jax.devices()[0].platform.upper(), config.batch_size,
                 config.batch_size // jax.device_count(), config.dtype)
    self.process = (jax.process_index(), jax.process_count())
    train = input_pipeline.load_split(data_dir, 'train', config.max_len)
    self.batches = input_pipeline.TrainBatches(train, config.batch_size, config.seed, *self.process,
                                               bucket_step=config.bucket_step)
    logging.info('%d training examples in %d batches per epoch; %.1f%% of the computed note '
                 'slots are padding (bucket_step %d)', self.batches.size,
                 self.batches.batches_per_epoch, 100 * self.batches.padded_share(),
                 config.bucket_step)
    self.valid = (input_pipeline.load_split(data_dir, 'valid', config.max_len)
                  if input_pipeline.has_split(data_dir, 'valid') else None)
    self.rng = purpose_rng(config.seed, 'train')
    self.checkpoints = checkpoint.Checkpoints(workdir, config.max_to_keep)
    self.best = checkpoint.Checkpoints(workdir, 1, kind=checkpoint.BEST)
    self._best_record = self.best.data() if self.best.latest_step() is not None else None
    self.state = self._restore_or_init()
    self.train_step = jit_train_step(config, self.mesh)

  def _restore_or_init(self) -> TrainState:
    """The newest readable checkpoint's state; unreadable ones are set aside with a warning."""
    init = jax.jit(functools.partial(create_state, self.config),
                   out_shardings=sharding.replicated(self.mesh))
    init_rng = purpose_rng(self.config.seed, 'init')
    target = None
    for step in reversed(self.checkpoints.all_steps()):
      try:
        saved = self.checkpoints.config(step)
      except VrashError:  # readable, but written for another version: not corrupt
        raise
      except Exception as e:  # a truncated or garbled checkpoint raises anything
        self._set_aside(step, e)
        continue
      checkpoint.check_compatible(saved, self.config, self.workdir)
      if target is None:
        target = checkpoint.abstract_like(jax.eval_shape(init, init_rng), sharding.replicated(self.mesh))
      try:
        state, data = self.checkpoints.restore(target, step)
      except Exception as e:
        self._set_aside(step, e)
        continue
      logging.info('resumed from step %d (data position %s)', step, data)
      return state
    return init(init_rng)

  def _set_aside(self, step: int, error: Exception) -> None:
    where = self.checkpoints.quarantine(step) if jax.process_index() == 0 else 'aside'
    logging.warning('checkpoint %d is unreadable (%s: %s); moved to %s, falling back to the previous one',
                    step, type(error).__name__, str(error)[:200], where)

  def data_position(self, step: int) -> dict[str, Any]:
    return {'step': step, 'seed': self.config.seed, 'examples_seen': step * self.config.batch_size}

  def evaluate_valid(self) -> dict[str, float]:
    if self.valid is None:
      logging.warning('the dataset has no valid split: skipping evaluation')
      return {}
    return evaluation.evaluate_state(self.state, self.config, self.valid,
                                     self.config.valid_iw_samples)

  def best_record(self) -> dict[str, Any] | None:
    """{'step', 'valid_bound'} of the best checkpoint so far, or None."""
    return self._best_record

  def keep_if_best(self, step: int, valid: Mapping[str, float]) -> None:
    """Saves the state to WORKDIR/best/ when its valid bound is finite and beats every earlier
    one (after pretraining: an autoencoder's bound is not the model's)."""
    bound = valid_bound(valid)
    if step <= self.config.pretrain_steps or not np.isfinite(bound):
      return
    best = self.best_record()
    if best is None or bound < best['valid_bound']:
      self._best_record = {'step': step, 'valid_bound': bound}
      self.best.save(step, self.state, self.config, self._best_record)

  def saturated(self, step: int) -> bool:
    """Whether `patience` evaluations have passed without a better valid bound."""
    best = self.best_record() if self.config.patience else None
    return best is not None and step - best['step'] >= self.config.patience * self.config.eval_every

  def reset_decoder(self) -> None:
    logging.info('step %d: encoder pretraining done; decoder re-initialized', self.config.pretrain_steps)
    reset = jax.jit(functools.partial(reset_decoder, config=self.config),
                    out_shardings=sharding.replicated(self.mesh), donate_argnums=0)
    self.state = reset(self.state, rng=purpose_rng(self.config.seed, 'reset'))


def valid_bound(figures: Mapping[str, float]) -> float:
  """The figure that picks the best checkpoint: the importance-weighted NLL bound per note
  when it was computed, else the ELBO bound (for the LM both are its exact NLL)."""
  return figures.get('nll_iw', figures['nll_bound'])


SUM_KEYS = ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl', 'notes', 'sequences')
FINITE_TERMS = (('ce_total', 'cross-entropy'), ('kl', 'KL'), ('grad_norm', 'gradient norm'))
STOP_CHECK_EVERY = 10  # steps between multi-host agreements on a stop signal


def summarize_train(history: list[dict], started: float) -> dict[str, float]:
  """Per-step device metrics of one logging interval -> one record (a single host sync).

  `started` is when the interval began; the clock is read after the fetch, which waits for
  the device, since with asynchronous dispatch the loop runs ahead of the computation.
  """
  history = jax.device_get(history)
  seconds = time.perf_counter() - started
  sums = {k: sum(float(m[k]) for m in history) for k in SUM_KEYS}
  out = losses.per_note(sums)
  out['loss'] = sum(float(m['loss']) for m in history) / len(history)
  out['grad_norm'] = sum(float(m['grad_norm']) for m in history) / len(history)
  out['kl_weight'] = float(history[-1]['kl_weight'])
  out['learning_rate'] = float(history[-1]['learning_rate'])
  out['notes_per_s'] = sums['notes'] / max(seconds, 1e-9)
  return out


def check_finite(steps: list[tuple[int, dict]], last_good: int | None) -> None:
  """Raises, naming the first step and term that went bad, if any loss term is NaN or Inf."""
  values = jax.device_get([(step, {k: m[k] for k, _ in FINITE_TERMS}) for step, m in steps])
  for step, terms in values:
    for key, name in FINITE_TERMS:
      if not np.isfinite(terms[key]):
        raise VrashError(f'the {name} became {float(terms[key])} at step {step}: training stopped '
                         f'and the last good checkpoint (step {last_good}) is kept; lower the '
                         'learning rate or check the data')


class StopSignals:
  """SIGTERM/SIGINT (a preemption, Ctrl-C) ask the loop to checkpoint and return."""

  def __init__(self):
    self.received: str | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> 'StopSignals':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def requested(self, step: int) -> bool:
    """Whether to stop after `step`; every host agrees (multi-host: every few steps)."""
    if jax.process_count() == 1:
      return self.received is not None
    if step % STOP_CHECK_EVERY:
      return False
    from jax.experimental import multihost_utils
    return bool(multihost_utils.process_allgather(np.int32(self.received is not None)).any())


def log_progress(step: int, last: int, steps: int, seconds: float) -> None:
  """How far the run is, and how long the rest takes at the pace of the last interval."""
  rate = steps / max(seconds, 1e-9)
  logging.info('step %d of %d (%.0f%%), %.1f steps/s: about %.1f min to go', step, last,
               100 * step / last, rate, (last - step) / rate / 60)


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, data_dir: str, workdir: str
                       ) -> dict[str, Any]:
  """Trains (resuming from WORKDIR's latest checkpoint) to `config.train_steps`.

  Stops early, after checkpointing, on SIGTERM or SIGINT; refuses a workdir another process
  trains in; never checkpoints a state whose loss went NaN or Inf. A config that breaks a
  rule of `config_rules` is refused before anything is read or compiled.
  """
  config_rules.validate(config, devices=jax.device_count())
  lock = checkpoint.WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock, StopSignals() as signals:
    trainer = Trainer(config, data_dir, workdir)
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    step = first_step = int(jax.device_get(trainer.state.step))
    last_saved = trainer.checkpoints.latest_step()
    valid: dict[str, float] = {}
    history, unchecked, started = [], [], time.perf_counter()
    clock, widths = Stopwatch(), set()
    try:
      while step < config.train_steps and not trainer.saturated(step):
        if config.pretrain_steps and step == config.pretrain_steps:
          trainer.reset_decoder()
        with clock.timing('input'):
          host_batch = trainer.batches(step)
          batch = sharding.shard_batch(host_batch, trainer.mesh)
        width = host_batch['mask'].shape[1]
        # A width's first call compiles (or loads from the cache) before it dispatches the step.
        with clock.timing('compilation') if width not in widths else contextlib.nullcontext():
          trainer.state, metrics = trainer.train_step(trainer.state, batch, trainer.rng)
        widths.add(width)
        step += 1
        history.append(metrics)
        unchecked.append((step, metrics))
        stopping = signals.requested(step)
        if _due(step, config.log_every, config.train_steps):
          check_finite(unchecked, last_saved)
          unchecked = []
          writer.write(step, 'train', summarize_train(history, started))
          log_progress(step, config.train_steps, len(history), time.perf_counter() - started)
          history, started = [], time.perf_counter()
        if _due(step, config.eval_every, config.train_steps):
          with clock.timing('evaluation'):
            valid = trainer.evaluate_valid()
          if valid:
            writer.write(step, 'valid', valid)
            trainer.keep_if_best(step, valid)
        saturated = trainer.saturated(step)
        if _due(step, config.checkpoint_every, config.train_steps) or stopping or saturated:
          check_finite(unchecked, last_saved)
          unchecked = []
          with clock.timing('checkpoints'):
            trainer.checkpoints.save(step, trainer.state, config, trainer.data_position(step))
          last_saved = step
        if saturated:
          logging.info('step %d: no better valid bound in %d evaluations; the best checkpoint '
                       '(step %d) is kept in best/', step, config.patience, trainer.best_record()['step'])
        if stopping:
          logging.warning('%s received: stopped after step %d with a checkpoint; run the same '
                          'command to resume', signals.received, step)
          break
    finally:
      writer.close()
      trainer.checkpoints.close()
      trainer.best.close()
  seconds = clock.summary()
  logging.info('%d steps in %.0f s: %s; %d widths compiled', step - first_step, seconds['total'],
               ', '.join(f'{k} {v:.1f} s' for k, v in seconds.items() if k != 'total'), len(widths))
  return {'step': step, 'valid': valid, 'steps_run': step - first_step, 'seconds': seconds,
          'stopped_by': signals.received or ('saturation' if trainer.saturated(step) else None)}
