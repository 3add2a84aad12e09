"""Runs trained together: a group's throughput against runs trained one after another.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 vrash-bench groups --data_dir D [--sizes 1,2,4]
      [--config.max_len=128 --config.bucket_step=32 --config.batch_size=32 --config.hidden=128]

The model is the CPU presets' (`experiments.configs.SMALL_MODEL`: for tlm and tvrash, 2 blocks of
width 56), batches of 32 melodies of up to 128 notes, unless overridden.

For each group size G, the step of G runs (`run_plan.time_group_step`: one jitted vmapped step,
the runs split over the devices) is timed at every padded width of the training batches (the
mean of `--steps` warm steps), and
an epoch's time is projected for two batch orders: every run of the group in the same order (the
runs of one seed: a batch's width is its own) and each run in its own seed's order (the group's
batch padded to its widest run's width). Prints runs x steps per second, and the speed-up over
G = 1, for both; and the seconds of the group's valid evaluation (`--config.valid_iw_samples`
posterior samples a melody) run by run (`evaluation.evaluate_state`, as before) and in its one
compiled step (`evaluation.evaluate_group`, as a group evaluates now), each after a first call
that compiles.
"""
from __future__ import annotations

import jax
import numpy as np
from absl import flags

from experiments.configs import SMALL_MODEL
from vrash_jax import evaluation, input_pipeline, sharding, train
from vrash_jax.errors import require
from vrash_jax.study import run_plan, step_timing
from vrash_jax.train_state import create_state, purpose_rng

FLAGS = flags.FLAGS  # --data_dir and --steps (warm steps timed at each width): the harness's
DEFAULTS = {**SMALL_MODEL, 'batch_size': 32, 'max_len': 128, 'bucket_step': 32}
flags.DEFINE_list('sizes', ['1', '2', '4'], 'Group sizes.')



def epoch_widths(train: dict, config, runs: int) -> tuple[np.ndarray, np.ndarray]:
  """Per step of one epoch: the width in one shared order, and the widest of `runs` own orders
  (the same since seeds share their batches' widths step by step: `input_pipeline.TrainBatches`)."""
  orders = [input_pipeline.TrainBatches(train, config.batch_size, seed, bucket_step=config.bucket_step)
            for seed in range(runs)]
  steps = range(orders[0].batches_per_epoch)
  widths = np.array([[b.width(b.indices(s)) for s in steps] for b in orders])
  return widths[0], widths.max(axis=0)


def evaluation_seconds(config, valid: dict, runs: int) -> tuple[float, float]:
  """Seconds of a valid evaluation of `runs` runs: one after another, and as one group."""
  configs = run_plan.seeded(config, runs)
  mesh = sharding.group_mesh(runs)
  states = [create_state(c, purpose_rng(c.seed, 'init')) for c in configs]
  stacked = train.stack(states, mesh)
  k = config.valid_iw_samples

  def one_at_a_time():
    return [evaluation.evaluate_state(s, c, valid, k) for s, c in zip(states, configs)]

  def together():
    return evaluation.evaluate_group(stacked, configs, mesh, valid, k)

  return tuple(step_timing.time_steps(fn, 1)[1] for fn in (one_at_a_time, together))


def measure(config, data_dir: str, sizes: list[int], steps: int) -> dict:
  """Runs x steps per second of each group size, in a shared batch order and in each run's own."""
  train = input_pipeline.load_split(data_dir, 'train', config.max_len)
  valid = input_pipeline.load_split(data_dir, 'valid', config.max_len)
  rows = []
  for runs in sizes:
    shared, own = epoch_widths(train, config, runs)
    seconds = {w: run_plan.time_group_step(config, runs, train, int(w), steps)[1] for w in set(shared) | set(own)}
    shared_rate, own_rate = (runs * len(w) / sum(seconds[x] for x in w) for w in (shared, own))
    alone_s, group_s = evaluation_seconds(config, valid, runs)
    rows.append({'runs': runs, 'devices_along_runs': dict(sharding.group_mesh(runs).shape)['runs'],
                 'shared_order': shared_rate, 'own_orders': own_rate, 'evaluation_run_by_run_s': alone_s,
                 'evaluation_one_step_s': group_s})
  return {'model': config.model, 'hidden': config.hidden, 'depth': config.depth, 'batch': config.batch_size,
          'devices': jax.device_count(), 'platform': jax.devices()[0].platform, 'rows': rows}


def run(config) -> dict:
  require(data_dir=FLAGS.data_dir)
  return measure(config, FLAGS.data_dir, [int(s) for s in FLAGS.sizes], FLAGS.steps)


def table(result: dict) -> str:
  base = result['rows'][0]['shared_order']
  lines = [f"{result['devices']} {result['platform'].upper()} devices; {result['model']}, hidden {result['hidden']}, "
           f"depth {result['depth']}, batch {result['batch']} per run", '',
           '| runs | devices along runs | shared order: runs x steps/s | speed-up | own orders: runs x steps/s '
           '| speed-up | valid evaluation: run by run | one step |', '|---|---|---|---|---|---|---|---|']
  for r in result['rows']:
    lines.append(f"| {r['runs']} | {r['devices_along_runs']} | {r['shared_order']:.1f} | "
                 f"{r['shared_order'] / base:.2f}x | {r['own_orders']:.1f} | {r['own_orders'] / base:.2f}x | "
                 f"{r['evaluation_run_by_run_s']:.2f} s | {r['evaluation_one_step_s']:.2f} s |")
  return '\n'.join(lines)
