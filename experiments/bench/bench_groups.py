"""Runs trained together: a group's throughput against runs trained one after another.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m experiments.bench.bench_groups \\
      --data_dir D --max_len 128 --bucket_step 32 [--sizes 1,2,4] [--hidden 128 --depth 2 --batch 32]

The model is the CPU presets' (`experiments.configs.SMALL_MODEL`: for tlm and tvrash, 2 blocks of
width 56) with the RHN's size from the flags.

For each group size G, the step of G runs (`run_plan.time_group_step`: one jitted vmapped step,
the runs split over the devices) is timed at every padded width of the training batches (the
mean of `--steps` warm steps), and
an epoch's time is projected for two batch orders: every run of the group in the same order (the
runs of one seed: a batch's width is its own) and each run in its own seed's order (the group's
batch padded to its widest run's width). Prints runs x steps per second, and the speed-up over
G = 1, for both.
"""
from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from experiments.configs import MODELS, SMALL_MODEL, model_config
from vrash_jax import input_pipeline, sharding
from vrash_jax.study import run_plan

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'A prepared dataset (its batch widths).', required=True)
flags.DEFINE_enum('model', 'vrash', list(MODELS), 'Which architecture.')
flags.DEFINE_list('sizes', ['1', '2', '4'], 'Group sizes.')
flags.DEFINE_integer('max_len', 128, 'Longest melody (config.max_len).')
flags.DEFINE_integer('bucket_step', 32, 'config.bucket_step.')
flags.DEFINE_integer('hidden', 128, 'RHN state size.')
flags.DEFINE_integer('depth', 2, 'RHN recurrence depth.')
flags.DEFINE_integer('batch', 32, 'Batch size of each run.')
flags.DEFINE_integer('steps', 10, 'Warm steps timed at each width.')



def epoch_widths(train: dict, config, runs: int) -> tuple[np.ndarray, np.ndarray]:
  """Per step of one epoch: the width in one shared order, and the widest of `runs` own orders."""
  orders = [input_pipeline.TrainBatches(train, config.batch_size, seed, bucket_step=config.bucket_step)
            for seed in range(runs)]
  steps = range(orders[0].batches_per_epoch)
  widths = np.array([[b.width(b.indices(s)) for s in steps] for b in orders])
  return widths[0], widths.max(axis=0)


def main(argv: list[str]) -> None:
  del argv
  config = model_config(FLAGS.model, {**SMALL_MODEL, 'hidden': FLAGS.hidden, 'depth': FLAGS.depth,
                                      'batch_size': FLAGS.batch, 'max_len': FLAGS.max_len,
                                      'bucket_step': FLAGS.bucket_step})
  train = input_pipeline.load_split(FLAGS.data_dir, 'train', config.max_len)
  sizes = [int(s) for s in FLAGS.sizes]
  print(f'{jax.device_count()} {jax.devices()[0].platform.upper()} devices; {FLAGS.model}, hidden {FLAGS.hidden}, '
        f'depth {FLAGS.depth}, batch {FLAGS.batch} per run\n')
  print('| runs | devices along runs | shared order: runs x steps/s | speed-up | own orders: runs x steps/s '
        '| speed-up |\n|---|---|---|---|---|---|')
  base = None
  for runs in sizes:
    shared, own = epoch_widths(train, config, runs)
    seconds = {w: run_plan.time_group_step(config, runs, train, int(w), FLAGS.steps)[1] for w in set(shared) | set(own)}
    rates = [runs * len(w) / sum(seconds[x] for x in w) for w in (shared, own)]
    base = base or rates[0]
    along = dict(sharding.group_mesh(runs).shape)['runs']
    print(f'| {runs} | {along} | {rates[0]:.1f} | {rates[0] / base:.2f}x | {rates[1]:.1f} | {rates[1] / base:.2f}x |',
          flush=True)


if __name__ == '__main__':
  app.run(main)
