"""Evaluation: per-note cross-entropy, KL and two upper bounds on the NLL per note.

* `ce_*`: reconstruction (VAE, VRASH) or next-note (LM) cross-entropy, z drawn once from the
  posterior q(z | melody) -- what the paper's Fig. 5 compares.
* `nll_bound`: CE + KL per note, the negative ELBO: an upper bound on -log p(melody) per note.
* `nll_iw`: the importance-weighted bound with K posterior samples (Burda et al. 2015),
  tighter than the ELBO; for the LM both bounds equal its exact NLL (the CE).
The gap between `ce_total` and these bounds is how much the latent code, which has seen the
melody, helps the decoder beyond what the model could predict without it.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vrash_jax import checkpoint, config_rules, input_pipeline, losses, models, sharding
from vrash_jax.errors import VrashError
from vrash_jax.train_state import TrainState, create_state, purpose_rng

Batch = Mapping[str, jax.Array]


def importance_weighted_log_likelihood(state: TrainState, batch: Batch, posterior,
                                       rng: jax.Array, samples: int) -> jax.Array:
  """log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x), per sequence [B]."""
  mean, log_var = posterior

  def weight(key):
    z = models.reparameterize(key, mean, log_var)
    logits, _ = state.apply_fn({'params': state.params}, batch, z, True,
                               method=models.MelodyModel.decode)
    return (losses.sequence_log_likelihood(logits, batch) + losses.gaussian_log_density(z, 0.0, 0.0)
            - losses.gaussian_log_density(z, mean, log_var))

  weights = jax.vmap(weight)(jax.random.split(rng, samples))
  return jax.nn.logsumexp(weights, axis=0) - jnp.log(samples)


def eval_step(state: TrainState, batch: Batch, rng: jax.Array, iw_samples: int = 0
              ) -> dict[str, jax.Array]:
  """Summed statistics with dropout off and z sampled from the posterior."""
  sample_rng, iw_rng = jax.random.split(rng)
  logits, posterior = state.apply_fn({'params': state.params}, batch, deterministic=True,
                                     sample_latent=True, rngs={'latent': sample_rng})
  sums = losses.loss_and_sums(logits, posterior, batch, jnp.ones(()), 0.0)[1]
  if iw_samples > 0:
    if posterior is None:
      sums['iw_nll'] = sums['ce_total']  # no latent: the CE is the exact NLL
    else:
      real = batch['mask'].any(axis=1)
      log_likelihood = importance_weighted_log_likelihood(state, batch, posterior, iw_rng, iw_samples)
      sums['iw_nll'] = -jnp.where(real, log_likelihood, 0.0).sum()
  return sums


@functools.lru_cache(maxsize=None)
def _compiled_eval_step(iw_samples: int):
  return jax.jit(functools.partial(eval_step, iw_samples=iw_samples))


def clear_compiled() -> None:
  """Forgets the compiled evaluation steps (see `study.runs.release_compiled`)."""
  _compiled_eval_step.cache_clear()
  _compiled_group_eval_step.cache_clear()


def evaluate(state: TrainState, batches: Iterable[dict], mesh, rng: jax.Array,
             iw_samples: int = 0) -> dict[str, float]:
  """Per-note figures over every batch."""
  step = _compiled_eval_step(iw_samples)
  totals = None
  for i, batch in enumerate(batches):
    sums = step(state, sharding.shard_batch(batch, mesh), jax.random.fold_in(rng, i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise VrashError('nothing to evaluate: the split is empty')
  return losses.per_note(jax.device_get(totals))


@functools.lru_cache(maxsize=None)
def _compiled_group_eval_step(iw_samples: int, mesh: jax.sharding.Mesh):
  def one_run(state, batch, rng, index):
    return eval_step(state, batch, jax.random.fold_in(rng, index), iw_samples)

  per_run = sharding.per_run(mesh)
  return jax.jit(jax.vmap(one_run, in_axes=(0, None, 0, None)), out_shardings=per_run,
                 in_shardings=(per_run, sharding.batch_sharded(mesh), per_run, sharding.replicated(mesh)))


def evaluates_groups_in_one_step() -> bool:
  """Whether a training group's valid evaluation is one compiled step for all its runs: on
  accelerators, where a step is launch latency more than arithmetic. On a CPU run by run: one
  step was 1.10-1.18x slower there (BENCHMARKS.md, "The paper preset on one GPU")."""
  return jax.devices()[0].platform != 'cpu'


def eval_bucket_step(config: ml_collections.ConfigDict) -> int:
  """How evaluation batches are padded. On a CPU by the config's `bucket_step`, each batch to its
  widest member, since a step's time grows with its width there. On accelerators 0: every batch
  to `max_len`, one compiled program per model and K instead of one per width (4 for valid and 3
  for test at the paper's length, BENCHMARKS.md): there a step costs launch latency more than
  width, a split is a few batches, and each program costs seconds to compile."""
  return 0 if pads_evaluation_to_max_len() else config.bucket_step


def pads_evaluation_to_max_len() -> bool:
  """Whether evaluation pads every batch to max_len (`eval_bucket_step`): on accelerators."""
  return jax.devices()[0].platform != 'cpu'


def evaluate_group(state: TrainState, configs: list[ml_collections.ConfigDict], mesh: jax.sharding.Mesh,
                   arrays: dict[str, Any], iw_samples: int = 0) -> list[dict[str, float]]:
  """Figures of every run of a group's state (stacked over runs, split along them on the group's
  `mesh`) on a loaded split, in one compiled step a batch width. Each run sees the batches and
  latent noise `evaluate_state` gives it, so its figures are the same up to float rounding.
  Every host passes the same arrays; each batch is split over a run's devices (`data`)."""
  config = configs[0]
  if config.model not in config_rules.LATENT_MODELS:
    iw_samples = min(iw_samples, 1)
  step, per_run = _compiled_group_eval_step(iw_samples, mesh), sharding.per_run(mesh)
  seeds = sharding.place(np.array([c.seed for c in configs], np.int32), per_run)
  rngs = jax.jit(jax.vmap(lambda seed: purpose_rng(seed, 'eval')), out_shardings=per_run)(seeds)
  totals = None
  for i, batch in enumerate(input_pipeline.eval_batches(arrays, eval_batch_size(config, mesh),
                                                        bucket_step=eval_bucket_step(config))):
    placed = {k: sharding.place(v, sharding.batch_sharded(mesh)) for k, v in batch.items()}
    sums = step(state, placed, rngs, jnp.int32(i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise VrashError('nothing to evaluate: the split is empty')
  totals = sharding.fetch(totals)
  return [losses.per_note({k: v[r] for k, v in totals.items()}) for r in range(len(configs))]


def restore_for_inference(workdir: str, step: int | None = None
                          ) -> tuple[ml_collections.ConfigDict, TrainState]:
  """(config, state) of WORKDIR's best checkpoint by the valid bound (WORKDIR/best/), else its
  latest one; or of the given step among its latest; replicated on every device. The state is
  for inference: its parameters and step, and no optimizer state (`opt_state` is None)."""
  kind = checkpoint.BEST if step is None and checkpoint.has_best(workdir) else checkpoint.LATEST
  store = checkpoint.Checkpoints(workdir, read_only=True, kind=kind)
  config = store.config(step)
  mesh = sharding.data_mesh()
  init = jax.jit(functools.partial(create_state, config), out_shardings=sharding.replicated(mesh))
  target = checkpoint.abstract_like(jax.eval_shape(init, jax.random.key(0)), sharding.replicated(mesh))
  part = store.restore_inference_part(target, step)
  store.close()
  return config, target.replace(opt_state=None, **part)


def eval_batch_size(config: ml_collections.ConfigDict, mesh) -> int:
  """The largest multiple of the device count not above eval_batch_size (at least one row each)."""
  return max(config.eval_batch_size - config.eval_batch_size % mesh.size, mesh.size)


def evaluate_state(state: TrainState, config: ml_collections.ConfigDict,
                   arrays: dict[str, Any], iw_samples: int = 0) -> dict[str, float]:
  """Figures of `state` on a loaded split (every host passes the same arrays)."""
  mesh = sharding.data_mesh()
  if config.model not in config_rules.LATENT_MODELS:  # its bound is its CE at any K: one compiled step for all
    iw_samples = min(iw_samples, 1)
  return evaluate(state, input_pipeline.eval_batches(arrays, eval_batch_size(config, mesh), jax.process_index(),
                                                     jax.process_count(), eval_bucket_step(config)),
                  mesh, purpose_rng(config.seed, 'eval'), iw_samples)


def evaluate_checkpoint(workdir: str, data_dir: str, split: str = 'test', step: int | None = None,
                        iw_samples: int = 0) -> dict[str, Any]:
  """Figures of WORKDIR's best (else latest, or given) checkpoint on a split, config from the
  checkpoint."""
  config, state = restore_for_inference(workdir, step)
  arrays = input_pipeline.load_split(data_dir, split, config.max_len)
  figures = evaluate_state(state, config, arrays, iw_samples)
  return {'model': config.model, 'split': split, 'step': int(jax.device_get(state.step)), **figures}


def evaluate_untrained(config: ml_collections.ConfigDict, arrays: dict[str, Any], iw_samples: int = 0
                       ) -> dict[str, float]:
  """The paper's reference baseline: the same network with its initial parameters (its CE is
  the same at any `iw_samples`: give the trained runs' to share their compiled step)."""
  mesh = sharding.data_mesh()
  init = jax.jit(functools.partial(create_state, config), out_shardings=sharding.replicated(mesh))
  return evaluate_state(init(purpose_rng(config.seed, 'init')), config, arrays, iw_samples)
