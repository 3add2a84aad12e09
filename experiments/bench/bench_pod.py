"""A sweep's runs on a pod slice, played on one machine: processes joined by jax.distributed over
localhost, each with forced CPU devices (as the tests play a slice).

  vrash-bench pod --data_dir runs/quick/data [--model vrash] [--runs 4] [--processes 2] [--devices 8]
      [--config.max_len=128 --config.bucket_step=64 --config.batch_size=32]

Each layout runs in processes of its own, started here; every process times the same group step
(`run_plan.group_stepper`: real training rows at the widest width of an epoch) over `--steps`
warm steps, `--repeats` times after a barrier, and the median is taken. Runs x steps per second:

* `one device`: one process with JAX's one CPU device, a run per lane (a lane per core), as a
  sweep trains on this machine by default (`bench_lanes.lanes_rate`): the strongest one process;
* `one process`: `--devices` devices, one group of `--runs` runs on a (runs, data) mesh;
* `spread`: `--processes` processes of devices/processes each, one group of `--runs` runs whose
  runs axis spans the processes (each run's batch split over one process's devices): what a
  sweep does on many hosts;
* `series`: the same processes, the runs one at a time, each split over every device of every
  process (its gradients summed across processes every step): what a sweep did before;
* `disjoint`: the same processes, each training a group of runs/processes runs of its own on its
  own devices (no step spans processes): the other design, measured, not shipped (BENCHMARKS.md,
  "Pod slices", says why).

All processes share this machine's cores: see BENCHMARKS.md for how to read the figures.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
from typing import Any

from absl import flags

from experiments.configs import SMALL_MODEL
from vrash_jax.errors import VrashError, require
from vrash_jax.study import run_plan

FLAGS = flags.FLAGS  # --data_dir, --steps and --repeats: the harness's
DEFAULTS = {**SMALL_MODEL, 'batch_size': 32, 'max_len': 128, 'bucket_step': 64}
DEVICES = 1  # this process never starts JAX: every layout runs in processes of its own
LAYOUTS = ('one device', 'one process', 'spread', 'series', 'disjoint')
flags.DEFINE_integer('runs', 4, 'Runs of the sweep timed together.', lower_bound=1)
flags.DEFINE_integer('processes', 2, 'Processes playing the hosts of a slice.', lower_bound=2)
flags.DEFINE_integer('devices', 8, 'CPU devices in all.', lower_bound=2)


def worker(layout: str, process: int, processes: int, port: int, config_json: str, data_dir: str, runs: int,
           steps: int, repeats: int) -> None:
  """One process of a layout: prints {'rate': median runs x steps per second of its own runs}."""
  import jax
  if processes > 1:
    jax.distributed.initialize(f'127.0.0.1:{port}', processes, process)
  import ml_collections
  import numpy as np
  from jax.experimental import multihost_utils

  from experiments.bench import bench_lanes
  from vrash_jax import input_pipeline, sharding
  from vrash_jax.study import run_plan, step_timing
  config = ml_collections.ConfigDict(json.loads(config_json))
  train = input_pipeline.load_split(data_dir, 'train', config.max_len)
  width = int(run_plan.batch_widths(config, train).max())
  if layout == 'one device':  # as a sweep trains on this CPU by default: a run per lane, all on its device
    lanes = [jax.devices()] * run_plan.lanes()
    rates = [bench_lanes.lanes_rate(config, train, np.array([width]), lanes, steps) for _ in range(repeats)]
    print(json.dumps({'rate': statistics.median(rates)}), flush=True)
    return
  own = runs // processes if layout == 'disjoint' else 1 if layout == 'series' else runs
  devices = jax.local_devices() if layout == 'disjoint' else jax.devices()
  with sharding.on_devices(devices):
    step = run_plan.group_stepper(config, own, train, width)
    jax.block_until_ready(step())  # compiles
    timings = []
    for i in range(repeats):
      if processes > 1:
        multihost_utils.sync_global_devices(f'repeat {i}')
      timings.append(step_timing.seconds_per_call(step, steps))
  print(json.dumps({'rate': own / statistics.median(timings)}), flush=True)
  if processes > 1:
    jax.distributed.shutdown()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def measure_layout(layout: str, config, data_dir: str, runs: int, processes: int, devices: int, steps: int,
                   repeats: int) -> float:
  """Runs x steps per second of `layout`, from its processes' step times."""
  count = 1 if layout.startswith('one') else processes
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices // count}')
  if layout == 'one device':  # JAX's own CPU device: no forced devices
    env.pop('XLA_FLAGS')
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, '-m', 'experiments.bench.bench_pod', layout, str(i), str(count), str(port),
                             json.dumps(config.to_dict()), data_dir, str(runs), str(steps), str(repeats)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(count)]
  outs = [p.communicate(timeout=1800) for p in procs]
  for p, (_, err) in zip(procs, outs):
    if p.returncode:
      raise RuntimeError(f'{layout}: a process failed:\n{err[-3000:]}')
  rates = [json.loads(out.strip().splitlines()[-1])['rate'] for out, _ in outs]
  # disjoint: each process trains runs of its own; else one step, done when its slowest part is
  return sum(rates) if layout == 'disjoint' else min(rates)


def run(config) -> dict[str, Any]:
  require(data_dir=FLAGS.data_dir)
  if FLAGS.devices % FLAGS.processes or FLAGS.runs % FLAGS.processes:
    raise VrashError(f'--devices ({FLAGS.devices}) and --runs ({FLAGS.runs}) must be multiples of --processes '
                     f'({FLAGS.processes})')
  rates = {layout: measure_layout(layout, config, FLAGS.data_dir, FLAGS.runs, FLAGS.processes, FLAGS.devices,
                                  FLAGS.steps, FLAGS.repeats) for layout in LAYOUTS}
  return {'model': config.model, 'hidden': config.hidden, 'depth': config.depth, 'batch': config.batch_size,
          'runs': FLAGS.runs, 'processes': FLAGS.processes, 'devices': FLAGS.devices, 'steps': FLAGS.steps,
          'repeats': FLAGS.repeats, 'cores': len(os.sched_getaffinity(0)), 'lanes': min(len(os.sched_getaffinity(0)),
                                                                                       run_plan.MAX_LANES),
          'rates': rates}


def table(result: dict[str, Any]) -> str:
  p, d = result['processes'], result['devices']
  what = {'one device': f'1 process, its one CPU device, {result["lanes"]} runs side by side in lanes (a sweep here)',
          'one process': f'1 process x {d} devices, a group of {result["runs"]} runs',
          'spread': f'{p} processes x {d // p} devices, a group of {result["runs"]} runs spread over them (shipped)',
          'series': f'{p} processes x {d // p} devices, runs one at a time over all {d} (before)',
          'disjoint': f'{p} processes x {d // p} devices, each a group of {result["runs"] // p} runs of its own'}
  one, before = result['rates']['one device'], result['rates']['series']
  lines = [f"{result['model']}, {result['hidden']} hidden, depth {result['depth']}, batch {result['batch']} per run; "
           f"{result['cores']} cores; median of {result['repeats']} x {result['steps']} steps", '',
           '| layout | runs x steps/s | against one process (its one device) | against series |', '|---|---|---|---|']
  lines += [f'| {what[k]} | {v:.2f} | {v / one:.2f}x | {v / before:.2f}x |' for k, v in result['rates'].items()]
  return '\n'.join(lines)


if __name__ == '__main__':
  worker(sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5], sys.argv[6], *map(int, sys.argv[7:10]))
