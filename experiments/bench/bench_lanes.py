"""A sweep's runs on a CPU: one run split over the cores, one run on one device, and lanes (runs
side by side, a thread each, `runs.train_groups`).

  XLA_FLAGS=--xla_force_host_platform_device_count=2 vrash-bench lanes --data_dir runs/quick/data
      [--model vrash] [--lanes 2] [--config.max_len=128 --config.bucket_step=64 --config.batch_size=32]

The model is the CPU presets' (`experiments.configs.SMALL_MODEL`), as the quick preset trains
it. Each layout trains from the same real training rows, padded to every width an epoch of
batches has; runs x steps per second are the epoch's steps over their summed step time
(`--steps` warm steps timed at each width, every lane timing at once, after all lanes compiled;
`--rounds` rounds over the layouts in turn, the median reported). Layouts: `split` (one run,
its batch split over every device: what a sweep did before lanes), `one` (one run on one
device), `lanes` (that many runs at once, each on the first device, sharing its compiled step),
`lanes/devices` (the same, each lane on a device of its own). Prints a Markdown table.
"""
from __future__ import annotations

import threading

import jax
import numpy as np
from absl import flags

from experiments.configs import SMALL_MODEL
from vrash_jax import input_pipeline, sharding
from vrash_jax.errors import require
from vrash_jax.study import run_plan, step_timing

FLAGS = flags.FLAGS  # --data_dir and --steps (warm steps timed at each width): the harness's
DEFAULTS = {**SMALL_MODEL, 'batch_size': 32, 'max_len': 128, 'bucket_step': 64}
flags.DEFINE_integer('lanes', 2, 'Runs side by side.')
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
    epoch_s[i] += count * step_timing.seconds_per_call(step, steps)


def measure(config, data_dir: str, lanes: int, steps: int, rounds: int) -> dict:
  """Runs x steps per second of each layout, per round (taken in turn)."""
  train = input_pipeline.load_split(data_dir, 'train', config.max_len)
  widths = run_plan.batch_widths(config, train)
  devices = jax.devices()
  layouts = {f'split: one run over {len(devices)} devices': [devices],
             'one: one run on one device': [devices[:1]],
             f'lanes: {lanes} runs on one device': [devices[:1]] * lanes}
  if len(devices) >= lanes:
    layouts[f'lanes/devices: {lanes} runs, a device each'] = [[d] for d in devices[:lanes]]
  rates: dict[str, list[float]] = {name: [] for name in layouts}
  for _ in range(rounds):  # in turn, so that a slow spell of the machine hits every layout
    for name, lane_devices in layouts.items():
      rates[name].append(lanes_rate(config, train, widths, lane_devices, steps))
  return {'model': config.model, 'hidden': config.hidden, 'depth': config.depth, 'batch': config.batch_size,
          'devices': len(devices), 'platform': devices[0].platform, 'widths': sorted(set(widths.tolist())),
          'rounds': rounds, 'rates': rates}


def run(config) -> dict:
  require(data_dir=FLAGS.data_dir)
  return measure(config, FLAGS.data_dir, FLAGS.lanes, FLAGS.steps, FLAGS.rounds)


def table(result: dict) -> str:
  lines = [f"{result['devices']} {result['platform'].upper()} devices; {result['model']}, {result['hidden']} "
           f"hidden, depth {result['depth']}, batch {result['batch']} per run, widths {result['widths']}", '',
           f"| layout | runs x steps/s, median of {result['rounds']} (range) | against split |", '|---|---|---|']
  base = float(np.median(next(iter(result['rates'].values()))))
  for name, values in result['rates'].items():
    rate = float(np.median(values))
    lines.append(f'| {name} | {rate:.1f} ({min(values):.1f}-{max(values):.1f}) | {rate / base:.2f}x |')
  return '\n'.join(lines)
