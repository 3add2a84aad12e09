"""Length bucketing on a real corpus: padded share, and training speed against full batches.

  vrash-bench buckets --data_dir DATA [--config.max_len=256 --config.bucket_step=8] [--steps 40]

Loads the train split at `max_len` (prepare it with `vrash-prep --max_len 256` for whole
melodies) and reports, for one epoch of `TrainBatches` without and with bucketing, the share
of computed note slots (rows x padded width) that hold no note. Then it times `--steps`
warm train steps on the bucketed real batches and the same number of steps on synthetic
batches of the same widths with every slot a note: the ratio of real notes/s to synthetic
notes/s is what padding still costs. Every width is compiled before timing. Prints a
Markdown table, then (the last line) one JSON object; `--out` also writes it to a file.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Callable

import jax
import numpy as np
from absl import flags

from experiments.bench.harness import PAPER_SHAPE
from vrash_jax import input_pipeline, sharding, train, train_state
from vrash_jax.errors import require
from vrash_jax.study import step_timing

FLAGS = flags.FLAGS  # --data_dir and --steps (timed steps per kind of batch): the harness's
DEFAULTS = {**PAPER_SHAPE, 'max_len': 256, 'bucket_step': 8}  # whole melodies, the finest buckets


def timed_steps(step_fn: Callable, state, batches: list[dict[str, np.ndarray]], mesh,
                rng: jax.Array) -> tuple[Any, float]:
  """(state, seconds) of running `batches` through the step, waited for at the end."""
  start = time.perf_counter()
  metrics = None
  for batch in batches:
    state, metrics = step_fn(state, sharding.shard_batch(batch, mesh), rng)
  jax.block_until_ready(metrics)
  return state, time.perf_counter() - start


def full_batch_like(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """A synthetic batch of the same shape with a note in every slot."""
  rows, width = batch['mask'].shape
  return step_timing.synthetic_batch(rows, width)


def measure(config, data_dir: str, steps: int) -> dict[str, Any]:
  """Padding without and with buckets over an epoch, and `steps` real against full batches."""
  batch, max_len, bucket_step = config.batch_size, config.max_len, config.bucket_step
  arrays = input_pipeline.load_split(data_dir, 'train', max_len)
  plain = input_pipeline.TrainBatches(arrays, batch, config.seed)
  bucketed = input_pipeline.TrainBatches(arrays, batch, config.seed, bucket_step=bucket_step)
  real = [bucketed(step) for step in range(steps)]
  synthetic = [full_batch_like(b) for b in real]

  mesh = sharding.data_mesh()
  state = jax.jit(lambda r: train_state.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  step_fn = jax.jit(train.make_train_step(config), donate_argnums=0)
  rng = jax.random.key(1)
  widths = sorted({b['mask'].shape[1] for b in real})
  start = time.perf_counter()
  for width in widths:  # compile every width before timing
    state, _ = timed_steps(step_fn, state, [step_timing.synthetic_batch(batch, width)], mesh, rng)
  compile_s = time.perf_counter() - start
  state, real_s = timed_steps(step_fn, state, real, mesh, rng)
  state, synthetic_s = timed_steps(step_fn, state, synthetic, mesh, rng)
  real_notes = sum(int(b['mask'].sum()) for b in real)
  synthetic_notes = sum(b['mask'].size for b in synthetic)
  epoch_widths = collections.Counter(
      bucketed.width(bucketed.indices(s)) for s in range(bucketed.batches_per_epoch))
  return {
      'model': config.model, 'batch': batch, 'max_len': max_len, 'bucket_step': bucket_step,
      'hidden': config.hidden, 'depth': config.depth, 'steps': steps, 'examples': bucketed.size,
      'mean_length': float(arrays['length'].mean()),
      'batches_per_epoch': bucketed.batches_per_epoch,
      'padded_share_without_buckets': plain.padded_share(),
      'padded_share_with_buckets': bucketed.padded_share(),
      'epoch_batches_per_width': dict(sorted(epoch_widths.items())),
      'compile_s': compile_s, 'real_notes_per_s': real_notes / real_s,
      'synthetic_notes_per_s': synthetic_notes / synthetic_s,
      'real_over_synthetic': (real_notes / real_s) / (synthetic_notes / synthetic_s),
      'padded_share_of_timed_steps': 1 - real_notes / synthetic_notes,
  }


def table(r: dict[str, Any]) -> str:
  return '\n'.join([
      '| examples | mean notes | padded, no buckets | padded, buckets | widths per epoch '
      '| real notes/s | full notes/s | real / full |',
      '|---|---|---|---|---|---|---|---|',
      f"| {r['examples']:,} | {r['mean_length']:.1f} | {r['padded_share_without_buckets']:.1%} "
      f"| {r['padded_share_with_buckets']:.1%} | {r['epoch_batches_per_width']} "
      f"| {r['real_notes_per_s']:,.0f} | {r['synthetic_notes_per_s']:,.0f} "
      f"| {r['real_over_synthetic']:.2f} |"])


def run(config) -> dict[str, Any]:
  require(data_dir=FLAGS.data_dir)
  return measure(config, FLAGS.data_dir, FLAGS.steps)
