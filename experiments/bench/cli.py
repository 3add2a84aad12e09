"""`vrash-bench NAME [--model M] [--config.FIELD=VALUE ...] [--steps N] [--repeats R] [--out F.json]`:
every benchmark through one harness (`harness.py`). Figures go to BENCHMARKS.md by hand, with
their date, command and machine.

  train     one train step on synthetic batches, against the matmul peak and the PyTorch peer
  suite     a whole machine: every model x shape x dtype, and the PyTorch peer in each mode
  profile   where a train step spends its time, per compiled kernel
  hlo       what the compiled step's RHN loops launch a micro-layer, in float32 and bfloat16
  buckets   length bucketing on a prepared corpus: padding, and its cost in speed
  groups    runs trained together (one vmapped step) against one at a time
  compile   a group's step at every width it trains at: one after another, and at once
  lanes     a sweep's runs on a CPU: split over the cores, one device each, side by side
  pod       a sweep's runs on a pod slice (processes over localhost): spread, in series, disjoint
  sample    the compiled scan sampler against per-note loops
  read      reading a prepared dataset: ours against TFDS's
  prep      preprocessing throughput with 1 and N workers
"""
from __future__ import annotations

import importlib
import sys

from experiments import launcher
from experiments.configs import base
from vrash_jax.errors import VrashError, exit_with

BENCHMARKS = {name: f'experiments.bench.{module}' for name, module in (
    ('train', 'bench_train'), ('suite', 'suite'), ('profile', 'profile_step'), ('hlo', 'hlo_loops'),
    ('buckets', 'bench_buckets'),
    ('groups', 'bench_groups'), ('compile', 'bench_compile'), ('lanes', 'bench_lanes'), ('pod', 'bench_pod'),
    ('sample', 'bench_sample'), ('read', 'bench_read'), ('prep', 'bench_prep'))}
MODULES = {name: importlib.import_module(module) for name, module in BENCHMARKS.items()}  # their flags


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in BENCHMARKS:
    sys.exit(f'usage: vrash-bench {"|".join(BENCHMARKS)} [--flags]; --helpfull lists them')
  from experiments.bench import harness
  launcher.quiet_library_logs()
  benchmark = MODULES[argv[1]]
  if hasattr(benchmark, 'before_jax'):
    benchmark.before_jax()
  try:
    # DEVICES: checked over this many devices instead of starting JAX here (the suite's processes do)
    config = harness.bench_config(benchmark.DEFAULTS, devices=getattr(benchmark, 'DEVICES', None))
    result = benchmark.run(config)
  except VrashError as e:
    exit_with(e)
  harness.report(benchmark.table(result), result)


def run() -> None:
  launcher.run(main, overridable=base.get_config())


if __name__ == '__main__':
  run()
