"""A sweep's runs on a CPU: one run split over the cores, one run on one device, and lanes (runs
side by side, a thread each, `runs.train_groups`).

  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m experiments.bench.bench_lanes \\
      --data_dir runs/quick/data [--model vrash --max_len 128 --bucket_step 64 --batch 32 --lanes 2]

The model is the CPU presets' (`experiments.configs.SMALL_MODEL`). Each layout trains from the
same real training rows, padded to every width an epoch of batches has; runs x steps per second
are the epoch's steps over their summed step time (`--steps` warm steps timed at each width,
every lane timing at once, after all lanes compiled; `--rounds` rounds over the layouts in turn,
the median reported). Layouts: `split` (one run, its batch split
over every device: what a sweep did before lanes), `one` (one run on one device), `lanes` (that
many runs at once, each on the first device, sharing its compiled step), `lanes/devices` (the same,
each lane on a device of its own). Prints a Markdown table.
"""
from __future__ import annotations

import threading
import time

import jax
import numpy as np
from absl import app, flags

from experiments.configs import MODELS, SMALL_MODEL, model_config
from vrash_jax import input_pipeline, sharding
from vrash_jax.study import run_plan

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'A prepared dataset (its rows and batch widths).', required=True)
flags.DEFINE_enum('model', 'vrash', list(MODELS), 'Which architecture.')
flags.DEFINE_integer('max_len', 128, 'Longest melody (config.max_len).')
flags.DEFINE_integer('bucket_step', 64, 'config.bucket_step.')
flags.DEFINE_integer('batch', 32, 'Batch size of each run.')
flags.DEFINE_integer('lanes', 2, 'Runs side by side.')
flags.DEFINE_integer('steps', 10, 'Warm steps timed at each width.')
flags.DEFINE_integer('rounds', 3, 'Rounds over every layout, in turn; the median is reported (this machine is noisy).')


def lanes_rate(config, train: dict, widths: np.ndarray, devices: list[list], steps: int) -> float:
  """Runs x steps per second of one run per entry of `devices` (its lane's devices), all at once."""
  epoch_s = [0.0] * len(devices)
  for width in np.unique(widths):
    ready = threading.Barrier(len(devices))
    threads = [threading.Thread(target=_lane, args=(config, train, int(width), int((widths == width).sum()),
                                                    devices[i], steps, ready, epoch_s, i))
               for i in range(len(devices))]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  return sum(len(widths) / s for s in epoch_s)


def _lane(config, train, width, count, devices, steps, ready, epoch_s, i) -> None:
  """One lane at one width: compile, wait for the others, time `steps` steps; adds the width's
  share of an epoch (`count` batches) to epoch_s[i]."""
  with sharding.on_devices(devices):
    step = run_plan.group_stepper(config, 1, train, width)
    jax.block_until_ready(step())  # compiles
    ready.wait()
    start = time.perf_counter()
    for _ in range(steps):
      metrics = step()
    jax.block_until_ready(metrics)
    epoch_s[i] += count * (time.perf_counter() - start) / steps


def main(argv: list[str]) -> None:
  del argv
  config = model_config(FLAGS.model, {**SMALL_MODEL, 'batch_size': FLAGS.batch, 'max_len': FLAGS.max_len,
                                      'bucket_step': FLAGS.bucket_step})
  train = input_pipeline.load_split(FLAGS.data_dir, 'train', config.max_len)
  widths = run_plan.batch_widths(config, train)
  devices, lanes = jax.devices(), FLAGS.lanes
  layouts = {f'split: one run over {len(devices)} devices': [devices],
             'one: one run on one device': [devices[:1]],
             f'lanes: {lanes} runs on one device': [devices[:1]] * lanes}
  if len(devices) >= lanes:
    layouts[f'lanes/devices: {lanes} runs, a device each'] = [[d] for d in devices[:lanes]]
  print(f'{len(devices)} {devices[0].platform.upper()} devices; {FLAGS.model}, {config.hidden} hidden, depth '
        f'{config.depth}, batch {FLAGS.batch} per run, widths {sorted(set(widths.tolist()))}\n')
  rates = {name: [] for name in layouts}
  for _ in range(FLAGS.rounds):  # in turn, so that a slow spell of the machine hits every layout
    for name, lane_devices in layouts.items():
      rates[name].append(lanes_rate(config, train, widths, lane_devices, FLAGS.steps))
  print(f'| layout | runs x steps/s, median of {FLAGS.rounds} (range) | against split |\n|---|---|---|')
  base = float(np.median(next(iter(rates.values()))))
  for name, values in rates.items():
    rate = float(np.median(values))
    print(f'| {name} | {rate:.1f} ({min(values):.1f}-{max(values):.1f}) | {rate / base:.2f}x |', flush=True)


if __name__ == '__main__':
  app.run(main)
