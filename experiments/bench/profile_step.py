"""Where a train step spends its time: a `jax.profiler` trace summed per compiled kernel.

  vrash-bench profile [--model vrash] [--config.FIELD=VALUE ...] [--steps 10] [--top 30] [--trace_dir D]

(The shape as in `vrash-bench train`: the base config's, 64 notes, unless overridden.)

Traces `--steps` warm steps of the benchmark's synthetic batch and prints a Markdown table of
the kernels (XLA thunks) that took the most time, per step: total ms, calls per step, output
shape and the JAX operation they came from. Kernels called ~T times per step sit inside a scan
over notes; a `while` row spans its whole loop. The trace stays in `--trace_dir` for
TensorBoard/Perfetto. Reading it needs the XPlane protobuf that ships with TensorFlow (a
dependency of the data pipeline).
"""
from __future__ import annotations

import collections
import glob
import re
import tempfile

import jax
from absl import flags

from experiments.bench import bench_train
from experiments.bench.harness import PAPER_SHAPE

FLAGS = flags.FLAGS
DEFAULTS = PAPER_SHAPE
flags.DEFINE_integer('top', 30, 'Kernels to list.')
flags.DEFINE_string('trace_dir', None, 'Where the trace goes (default: a new temporary folder).')


def kernel_times(trace_dir: str, steps: int) -> tuple[collections.Counter, collections.Counter]:
  """(ms per step, calls per step) of every kernel the XLA CPU runtime ran in the trace."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  path = glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True)[0]
  space = xplane_pb2.XSpace()
  with open(path, 'rb') as f:
    space.ParseFromString(f.read())
  ms, calls = collections.Counter(), collections.Counter()
  for plane in space.planes:
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      if 'XLAEigen' not in line.name:  # the runtime's worker threads
        continue
      for event in line.events:
        name = names.get(event.metadata_id, '?')
        if name.startswith(('ThunkExecutor', 'SlinkyThreadPool')):  # scheduling, not kernels
          continue
        ms[name] += event.duration_ps / 1e9 / steps
        calls[name] += 1 / steps
  return ms, calls


def describe(hlo: str, kernel: str) -> tuple[str, str]:
  """(output shape, JAX op name) of a kernel, from the compiled HLO text."""
  line = re.search(rf'%{re.escape(kernel)} = (.*)', hlo)
  if not line:
    return '', ''
  shape = line.group(1).split(' ')[0] if not line.group(1).startswith('(') else 'tuple'
  op_name = re.search(r'op_name="([^"]+)"', line.group(1))
  return shape, op_name.group(1).replace('jit(train_step)/', '') if op_name else ''


def profile(config, steps: int, trace_dir: str) -> list[dict]:
  """Every kernel of `steps` traced warm steps, the slowest first."""
  compiled, state, data, rng, _ = bench_train.compiled_train_step(config)
  for _ in range(2):  # warm
    state, metrics = compiled(state, data, rng)
  jax.block_until_ready(metrics)
  with jax.profiler.trace(trace_dir):
    for _ in range(steps):
      state, metrics = compiled(state, data, rng)
    jax.block_until_ready(metrics)
  ms, calls = kernel_times(trace_dir, steps)
  hlo = compiled.as_text()
  rows = []
  for kernel, t in ms.most_common():
    shape, op = describe(hlo, kernel)
    rows.append({'kernel': kernel, 'ms_per_step': t, 'calls_per_step': calls[kernel],
                 'shape': shape, 'op': op})
  return rows


def run(config) -> dict:
  trace_dir = FLAGS.trace_dir or tempfile.mkdtemp(prefix='vrash-trace-')
  return {'trace_dir': trace_dir, 'steps': FLAGS.steps,
          'kernels': profile(config, FLAGS.steps, trace_dir)[:FLAGS.top]}


def table(result: dict) -> str:
  lines = [f"trace: {result['trace_dir']}; kernel time per step, summed over the worker threads; a while "
           'row spans its whole loop, whose body kernels are listed too', '',
           '| ms/step | calls/step | kernel | shape | from |', '|---|---|---|---|---|']
  for r in result['kernels']:
    lines.append(f"| {r['ms_per_step']:.2f} | {r['calls_per_step']:.0f} | {r['kernel']} | {r['shape']} "
                 f"| {r['op'][-80:]} |")
  return '\n'.join(lines)
