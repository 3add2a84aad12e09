"""The runs of a study: where each lives, how it is trained or resumed, and the frontier's
points (a model trained with overrides of its preset config)."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections

from vrash_jax import config_rules, train
from vrash_jax.errors import VrashError

ConfigFor = Callable[[str], ml_collections.ConfigDict]


def run_dir(workdir: str, name: str, seed: int) -> str:
  return os.path.join(workdir, 'runs', f'{name}-seed{seed}')


def train_run(config: ml_collections.ConfigDict, data_dir: str, directory: str, progress=None
              ) -> dict[str, Any]:
  """Trains (or resumes) one run; returns and keeps in its run.json the training wall time
  (`train_wall_s`) and where it went (`seconds`: compilation, evaluation, ...), both summed over
  every sitting, the step it reached and why it stopped. `progress` (a `run_plan.Progress`) is
  told when it starts. A run stopped by SIGTERM or SIGINT stops the whole study (after its
  checkpoint)."""
  info_path = os.path.join(directory, 'run.json')
  info = json.load(open(info_path)) if os.path.exists(info_path) else {'train_wall_s': 0.0}
  if progress is not None:
    progress.starting(directory)
  start = time.perf_counter()
  outcome = train.train_and_evaluate(config, data_dir, directory)
  info['train_wall_s'] += time.perf_counter() - start
  info.update(step=outcome['step'], stopped_by=outcome['stopped_by'])
  seconds = info.setdefault('seconds', {})
  for part, value in outcome['seconds'].items():
    seconds[part] = seconds.get(part, 0.0) + value
  if jax.process_index() == 0:
    with open(info_path, 'w') as f:
      json.dump(info, f)
  if outcome['stopped_by'] not in (None, 'saturation'):
    raise VrashError(f"{outcome['stopped_by']} received: {directory} stopped after step "
                     f"{outcome['step']} with a checkpoint; run the same command to resume")
  return info


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of the frontier: a model trained with `overrides` of its preset config."""
  model: str
  name: str  # unique per model, e.g. 'fb0.25'; its run is runs/<model>-<name>-seed0, and
  # 'default' (no overrides) is the comparison's own run, runs/<model>-seed0
  technique: str  # what it tries, for the table: 'rate', 'encoder pretraining', ...
  overrides: tuple[tuple[str, Any], ...] = ()

  def config(self, config_for: ConfigFor) -> ml_collections.ConfigDict:
    config = config_for(self.model)
    config.update_from_flattened_dict(dict(self.overrides))
    config_rules.validate(config, source=f'frontier point {self.model} {self.name}')
    return config

  def directory(self, workdir: str, seed: int) -> str:
    return run_dir(workdir, self.model if self.name == 'default' else f'{self.model}-{self.name}', seed)


def rate_points(model: str, free_bits: Sequence[float]) -> tuple[Point, ...]:
  """Frontier points of `model` at other free-bits floors (nats per latent dimension)."""
  return tuple(Point(model, f'fb{f:g}', 'rate', (('free_bits', f),)) for f in free_bits)
