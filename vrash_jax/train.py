"""Training: state, the pure jit-compiled step, evaluation, and the resumable loop."""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax.training import train_state

from vrash_jax import checkpoint, input_pipeline, losses, models, sharding
from vrash_jax.errors import VrashError
from vrash_jax.metric_writers import MetricWriter

Batch = Mapping[str, jax.Array]
TrainState = train_state.TrainState


def enable_compilation_cache(directory: str) -> None:
  """Keeps compiled steps on disk: resumed runs and further seeds skip recompiling."""
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine decay to 10% of it at `train_steps`."""
  return optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, max(config.warmup_steps, 1),
      max(config.train_steps, config.warmup_steps + 1), end_value=0.1 * config.learning_rate)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                     optax.adam(learning_rate_schedule(config)))


def dummy_batch(config: ml_collections.ConfigDict, batch_size: int = 1) -> dict[str, jax.Array]:
  """A batch of the right shapes and dtypes (for initialization and shape inference)."""
  tokens = jnp.zeros((batch_size, config.max_len), jnp.int32)
  batch = {f: tokens for f in input_pipeline.SEQUENCE_FIELDS}
  batch['mask'] = jnp.ones((batch_size, config.max_len), bool)
  batch.update({f: jnp.zeros((batch_size,), jnp.int32) for f in input_pipeline.META_FIELDS})
  return batch


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, dtype: Any = jnp.float32
                 ) -> TrainState:
  model = models.MelodyModel(config, dtype=dtype)
  params = model.init({'params': rng}, dummy_batch(config))['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config))


RNG_PURPOSES = ('init', 'train', 'eval')


def purpose_rng(seed: int, purpose: str) -> jax.Array:
  """The key of one stream of randomness; steps are folded into it later."""
  return jax.random.fold_in(jax.random.key(seed), RNG_PURPOSES.index(purpose))


def _rngs(rng: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
  dropout, latent = jax.random.split(jax.random.fold_in(rng, step))
  return {'dropout': dropout, 'latent': latent}


def make_train_step(config: ml_collections.ConfigDict
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
  """train_step(state, batch, rng) -> (state, metrics); pure, randomness from fold_in(rng, step)."""

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    weight = losses.kl_weight(state.step, config.kl_anneal_steps)

    def loss_fn(params):
      logits, posterior = state.apply_fn({'params': params}, batch, deterministic=False,
                                         rngs=_rngs(rng, state.step))
      return losses.loss_and_sums(logits, posterior, batch, weight, config.free_bits)

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = dict(sums, loss=loss, kl_weight=weight, grad_norm=optax.global_norm(grads),
                   learning_rate=learning_rate_schedule(config)(state.step))
    return state.apply_gradients(grads=grads), metrics

  return train_step


class Trainer:
  """Everything a run needs on this host: mesh, data, compiled steps, checkpoints."""

  def __init__(self, config: ml_collections.ConfigDict, data_dir: str, workdir: str):
    if config.model not in models.MODELS:
      raise VrashError(f'config.model must be one of {", ".join(models.MODELS)}, not {config.model!r}')
    self.config, self.workdir = config, workdir
    self.mesh = sharding.data_mesh()
    sharding.check_batch_size(config.batch_size, self.mesh)
    sharding.check_batch_size(config.eval_batch_size, self.mesh)
    self.process = (jax.process_index(), jax.process_count())
    train = input_pipeline.load_split(data_dir, 'train', config.max_len)
    self.batches = input_pipeline.TrainBatches(train, config.batch_size, config.seed, *self.process)
    self.valid = (input_pipeline.load_split(data_dir, 'valid', config.max_len)
                  if input_pipeline.has_split(data_dir, 'valid') else None)
    self.rng = purpose_rng(config.seed, 'train')
    self.checkpoints = checkpoint.Checkpoints(workdir, config.max_to_keep)
    self.state = self._restore_or_init()
    replicated, batched = sharding.replicated(self.mesh), sharding.batch_sharded(self.mesh)
    self.train_step = jax.jit(make_train_step(config), donate_argnums=0,
                              in_shardings=(replicated, batched, replicated),
                              out_shardings=(replicated, replicated))

  def _restore_or_init(self) -> TrainState:
    init = jax.jit(functools.partial(create_state, self.config),
                   out_shardings=sharding.replicated(self.mesh))
    init_rng = purpose_rng(self.config.seed, 'init')
    latest = self.checkpoints.latest_step()
    if latest is None:
      return init(init_rng)
    checkpoint.check_compatible(self.checkpoints.config(latest), self.config, self.workdir)
    target = checkpoint.abstract_like(jax.eval_shape(init, init_rng), sharding.replicated(self.mesh))
    state, data = self.checkpoints.restore(target, latest)
    logging.info('resumed from step %d (data position %s)', latest, data)
    return state

  def data_position(self, step: int) -> dict[str, Any]:
    return {'step': step, 'seed': self.config.seed, 'examples_seen': step * self.config.batch_size}

  def evaluate_valid(self) -> dict[str, float]:
    if self.valid is None:
      logging.warning('the dataset has no valid split: skipping evaluation')
      return {}
    from vrash_jax import evaluation  # evaluation builds on this module
    return evaluation.evaluate_state(self.state, self.config, self.valid)


SUM_KEYS = ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl', 'notes', 'sequences')


def summarize_train(history: list[dict], seconds: float) -> dict[str, float]:
  """Per-step device metrics of one logging interval -> one record (a single host sync)."""
  history = jax.device_get(history)
  sums = {k: sum(float(m[k]) for m in history) for k in SUM_KEYS}
  out = losses.per_note(sums)
  out['loss'] = sum(float(m['loss']) for m in history) / len(history)
  out['grad_norm'] = sum(float(m['grad_norm']) for m in history) / len(history)
  out['kl_weight'] = float(history[-1]['kl_weight'])
  out['learning_rate'] = float(history[-1]['learning_rate'])
  out['notes_per_s'] = sums['notes'] / max(seconds, 1e-9)
  return out


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, data_dir: str, workdir: str
                       ) -> dict[str, Any]:
  """Trains (resuming from WORKDIR's latest checkpoint) to `config.train_steps`."""
  trainer = Trainer(config, data_dir, workdir)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  step = int(jax.device_get(trainer.state.step))
  valid: dict[str, float] = {}
  history, started = [], time.perf_counter()
  try:
    while step < config.train_steps:
      batch = sharding.shard_batch(trainer.batches(step), trainer.mesh)
      trainer.state, metrics = trainer.train_step(trainer.state, batch, trainer.rng)
      step += 1
      history.append(metrics)
      if _due(step, config.log_every, config.train_steps):
        writer.write(step, 'train', summarize_train(history, time.perf_counter() - started))
        history, started = [], time.perf_counter()
      if _due(step, config.eval_every, config.train_steps):
        valid = trainer.evaluate_valid()
        if valid:
          writer.write(step, 'valid', valid)
      if _due(step, config.checkpoint_every, config.train_steps):
        trainer.checkpoints.save(step, trainer.state, config, trainer.data_position(step))
  finally:
    writer.close()
    trainer.checkpoints.close()
  return {'step': step, 'valid': valid}
