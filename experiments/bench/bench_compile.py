"""Compiling a group's step at every width it will train at: one width after another (as a
group's first calls did) against all of them at once (`vrash_jax.compile_ahead`, as a group
compiles now).

  vrash-bench compile --data_dir runs/cpu/data [--model vrash] [--group_runs 1] [--compile_threads N]
      [--config.train_steps=1500 ...]

The config is the cpu preset's by default (its small model, batches of 64 melodies of up to 256
notes bucketed by 32, 1500 steps); `--config.*` overrides it (the paper's model: hidden 256,
depth 3, bucket_step 8, train_steps 20000). Each way runs in a process of its own with the
persistent compilation cache off, so neither finds the other's programs; every width the
group's batches take over `train_steps` is compiled (`compile_ahead.group_widths`). Seconds are
wall time from the first lowering to the last compiled program.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from absl import flags

from experiments.configs import SMALL_MODEL
from vrash_jax.errors import VrashError, require

FLAGS = flags.FLAGS  # --data_dir: the harness's
DEFAULTS = {**SMALL_MODEL, 'max_len': 256, 'bucket_step': 32, 'batch_size': 64, 'train_steps': 1500}
DEVICES = 1  # this process never starts JAX: each way compiles in a process of its own
flags.DEFINE_integer('group_runs', 1, 'Runs in the group (seeds 0, 1, ...).', lower_bound=1)
flags.DEFINE_integer('compile_threads', 0, 'Threads compiling at once (0: one per host core).', lower_bound=0)


def compile_seconds(config_json: str, data_dir: str, runs: int, workers: int) -> dict[str, Any]:
  """In this process (cache off): seconds to compile a group's step at every width it takes, in
  `workers` threads."""
  import jax
  import ml_collections

  from vrash_jax import compile_ahead, input_pipeline, sharding, train
  from vrash_jax.study import run_plan
  from vrash_jax.train_state import create_state, purpose_rng

  jax.config.update('jax_enable_compilation_cache', False)
  config = ml_collections.ConfigDict(json.loads(config_json))
  configs = run_plan.seeded(config, runs)
  arrays = input_pipeline.load_split(data_dir, 'train', config.max_len)
  batches = [input_pipeline.TrainBatches(arrays, c.batch_size, c.seed, bucket_step=c.bucket_step) for c in configs]
  widths = compile_ahead.group_widths(batches, 0, config.train_steps)
  mesh = sharding.group_mesh(runs)
  init = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))
  state = train.stack([init(purpose_rng(c.seed, 'init')) for c in configs], mesh)
  rngs, hyper, active = train.group_inputs(configs, mesh)

  def args_at(width: int) -> tuple:
    rows = batches[0](0, rows=slice(0, 0), width=width)
    return state, compile_ahead.abstract_group_batch(rows, runs, config.batch_size, mesh), rngs, hyper, active

  start = time.perf_counter()
  compile_ahead.compile_widths(train.jit_group_step(config, mesh), args_at, widths, workers)
  return {'widths': widths, 'seconds': time.perf_counter() - start, 'workers': min(len(widths), workers)}


def _in_process(config, data_dir: str, runs: int, workers: int) -> dict[str, Any]:
  code = ('import json, sys; from experiments.bench import bench_compile; '
          'print(json.dumps(bench_compile.compile_seconds(*json.loads(sys.argv[1]))))')
  args = json.dumps([config.to_json(), data_dir, runs, workers])
  done = subprocess.run([sys.executable, '-c', code, args], capture_output=True, text=True)
  if done.returncode:
    raise VrashError(f'compiling failed:\n{done.stderr[-2000:]}')
  return json.loads(done.stdout.strip().splitlines()[-1])


def run(config) -> dict:
  require(data_dir=FLAGS.data_dir)
  serial = _in_process(config, FLAGS.data_dir, FLAGS.group_runs, 1)
  ahead = _in_process(config, FLAGS.data_dir, FLAGS.group_runs, FLAGS.compile_threads or os.cpu_count() or 1)
  return {'model': config.model, 'hidden': config.hidden, 'depth': config.depth, 'runs': FLAGS.group_runs,
          'widths': serial['widths'], 'one_at_a_time_s': serial['seconds'], 'at_once_s': ahead['seconds'],
          'workers': ahead['workers']}


def table(result: dict) -> str:
  return '\n'.join([
      '| model | hidden, depth | runs | widths | one at a time | at once (threads) | speed-up |',
      '|---|---|---|---|---|---|---|',
      f"| {result['model']} | {result['hidden']}, {result['depth']} | {result['runs']} | {len(result['widths'])} | "
      f"{result['one_at_a_time_s']:.1f} s | {result['at_once_s']:.1f} s ({result['workers']}) | "
      f"{result['one_at_a_time_s'] / result['at_once_s']:.2f}x |"])
