"""Per-note cross-entropy per head, KL to N(0, I), KL annealing and free bits."""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from vrash_jax.models import HEADS

Array = jax.Array


def cross_entropy_sums(logits: Mapping[str, Array], batch: Mapping[str, Array]) -> dict[str, Array]:
  """Summed cross-entropy (nats) of each head over the real (unmasked) notes."""
  mask = batch['mask'].astype(jnp.float32)
  return {f: (optax.softmax_cross_entropy_with_integer_labels(logits[f], batch[f]) * mask).sum()
          for f in HEADS}


def sequence_log_likelihood(logits: Mapping[str, Array], batch: Mapping[str, Array]) -> Array:
  """log p(melody) summed over the real notes and the three heads, per sequence [B]."""
  mask = batch['mask'].astype(jnp.float32)
  return -sum((optax.softmax_cross_entropy_with_integer_labels(logits[f], batch[f]) * mask).sum(-1)
              for f in HEADS)


def gaussian_log_density(z: Array, mean: Array, log_var: Array) -> Array:
  """log N(z; mean, exp(log_var)) summed over the last axis."""
  return -0.5 * (jnp.log(2 * jnp.pi) + log_var + (z - mean) ** 2 / jnp.exp(log_var)).sum(-1)


def gaussian_kl(mean: Array, log_var: Array) -> Array:
  """KL(N(mean, exp(log_var)) || N(0, 1)) per latent dimension, [B, Z]."""
  return 0.5 * (mean**2 + jnp.exp(log_var) - 1.0 - log_var)


def free_bits_kl(kl: Array, free_bits: float | Array, sequences: Array | None = None) -> Array:
  """Summed KL where each dimension's batch mean is not penalized below `free_bits` nats.

  kl [B, Z]; `sequences`: how many rows are real melodies (the rest are empty rows with zero
  KL that complete a batch and must not lower the mean); default: all B.
  """
  if not isinstance(free_bits, jax.Array) and free_bits <= 0:
    return kl.sum()
  count = kl.shape[0] if sequences is None else sequences
  floored = jnp.maximum(kl.sum(axis=0) / jnp.maximum(count, 1), free_bits).sum() * count
  return floored if not isinstance(free_bits, jax.Array) else jnp.where(free_bits > 0, floored, kl.sum())


def kl_weight(step: Array, anneal_steps: int, pretrain_steps: int = 0, cycles: int | Array = 0,
              train_steps: int = 0) -> Array:
  """The KL term's weight at `step`.

  0 for the first `pretrain_steps` (an autoencoder, Li et al. 2019); then either one linear
  rise from 0 to 1 over `anneal_steps` (Bowman et al. 2015), or, when `cycles` > 0, the
  remaining steps up to `train_steps` cut into that many cycles whose first half rises
  linearly from 0 to 1 and whose second half stays at 1 (Fu et al. 2019, R = 0.5).
  """
  since = step.astype(jnp.float32) - pretrain_steps
  linear = jnp.minimum(1.0, since / anneal_steps) if anneal_steps > 0 else jnp.ones((), jnp.float32)
  if isinstance(cycles, jax.Array):  # runs of one group, each with its own number of cycles
    period = jnp.maximum((train_steps - pretrain_steps) / jnp.maximum(cycles, 1), 1.0)
    weight = jnp.where(cycles > 0, jnp.minimum(1.0, jnp.mod(since, period) / (period / 2)), linear)
  elif cycles > 0:
    period = max((train_steps - pretrain_steps) / cycles, 1.0)
    weight = jnp.minimum(1.0, jnp.mod(since, period) / (period / 2))
  else:
    weight = linear
  return jnp.where(since < 0, 0.0, weight)


def loss_and_sums(logits: Mapping[str, Array], posterior, batch: Mapping[str, Array],
                  weight: Array, free_bits: float | Array) -> tuple[Array, dict[str, Array]]:
  """(training loss per note, summed statistics for metrics).

  The loss is (CE + weight * free-bits KL) / notes: the negative ELBO per note when the
  weight is 1 and free bits are off. Sums (not means) let metrics add up exactly across
  batches, devices and hosts.
  """
  ce = cross_entropy_sums(logits, batch)
  notes = batch['mask'].astype(jnp.float32).sum()
  sequences = (batch['mask'].sum(axis=1) > 0).astype(jnp.float32).sum()
  sums = {f'ce_{f}': v for f, v in zip(('pitch', 'octave', 'delay'), (ce[f] for f in HEADS))}
  sums['ce_total'] = sum(ce.values())
  sums['notes'], sums['sequences'] = notes, sequences
  kl = jnp.zeros(())
  penalized = jnp.zeros(())
  if posterior is not None:
    per_dim = gaussian_kl(*posterior) * (batch['mask'].sum(axis=1) > 0)[:, None]
    kl, penalized = per_dim.sum(), free_bits_kl(per_dim, free_bits, sequences)
  sums['kl'] = kl
  loss = (sums['ce_total'] + weight * penalized) / jnp.maximum(notes, 1.0)
  return loss, sums


def per_note(sums: Mapping[str, float]) -> dict[str, float]:
  """Summed statistics -> the reported figures: CE per note per head, KL per sequence, bound."""
  notes = max(float(sums['notes']), 1.0)
  out = {k: float(sums[k]) / notes for k in ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay')}
  out['kl'] = float(sums['kl']) / max(float(sums['sequences']), 1.0)  # nats per sequence
  out['kl_per_note'] = float(sums['kl']) / notes
  out['nll_bound'] = out['ce_total'] + out['kl_per_note']
  if 'iw_nll' in sums:  # importance-weighted bound, tighter than nll_bound
    out['nll_iw'] = float(sums['iw_nll']) / notes
  out['notes'] = int(sums['notes'])
  return out
