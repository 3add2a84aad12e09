"""What every benchmark shares: its config from `--model` and `--config.FIELD=VALUE` overrides
over the benchmark's own defaults, checked like a training run's; the flags of timing and
output; and how a result is printed and written.

A benchmark is a module with `DEFAULTS` (config overrides it starts from), `run(config) -> dict`
(its figures; its own flags read there) and `table(result) -> str` (Markdown). Steps are timed
by `vrash_jax.study.step_timing`, as a sweep's plan times them, on `step_timing.synthetic_batch` where
no dataset is read.
"""
from __future__ import annotations

import json
from typing import Any

import jax
import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments import launcher
from experiments.configs import MODELS, model_config
from vrash_jax import config_rules

FLAGS = flags.FLAGS
flags.DEFINE_enum('model', 'vrash', list(MODELS), 'Which architecture (its experiments/configs file).')
flags.DEFINE_integer('steps', 10, 'Warm steps per timing.', lower_bound=1)
flags.DEFINE_integer('repeats', 5, 'Timings; the median is reported.', lower_bound=1)
flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'Compute dtypes of our train step (suite, profile).')
flags.DEFINE_string('out', None, 'Also write the figures to this JSON file.')
launcher.define_once(flags.DEFINE_string, 'data_dir', None, 'A prepared dataset, for the benchmarks that read one.')

PAPER_SHAPE = {'batch_size': 64, 'max_len': 64, 'hidden': 256, 'depth': 3}  # the base config's, 64 notes


def overrides() -> dict[str, Any]:
  """The `--config.FIELD=VALUE` flags given."""
  return config_flags.get_override_values(FLAGS['config']) if 'config' in FLAGS else {}


def bench_config(defaults: dict[str, Any], model: str | None = None, devices: int | None = None
                 ) -> ml_collections.ConfigDict:
  """The model's config (`--model` unless given) with the benchmark's `defaults`, then the
  `--config.*` overrides, checked like a training run's over `devices` (by default every device
  JAX sees; the PyTorch peer passes 1 so that JAX never starts)."""
  return _checked(model or FLAGS.model, {**defaults, **overrides()}, devices)


def shape_config(model: str, batch: int, length: int, hidden: int, depth: int, dtype: str = 'float32',
                 custom_backward: bool = True, devices: int | None = None) -> ml_collections.ConfigDict:
  """The model's config at one shape (the suite's rows, the PyTorch peer's), checked."""
  return _checked(model, {'batch_size': batch, 'max_len': length, 'hidden': hidden, 'depth': depth,
                          'dtype': dtype, 'custom_backward': custom_backward}, devices)


def _checked(model: str, fields: dict[str, Any], devices: int | None) -> ml_collections.ConfigDict:
  config = model_config(model, fields)
  config_rules.validate(config, devices=devices or jax.device_count())
  return config


def report(table: str, result: dict[str, Any]) -> None:
  """Prints the table, then (the last line) the figures as one JSON object; `--out` also gets them."""
  print(table)
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      json.dump(result, f, indent=1)
  print(json.dumps(result), flush=True)
