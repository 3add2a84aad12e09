"""The measurements behind the paper's claims that need trained models: the runs of the
rate-distortion frontier, figures by melody length, samples at several temperatures and
seeds, and posterior means for the style probe. `claims.py` turns them into verdicts.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vrash_jax import claims, config_rules, evaluation, metrics, train
from vrash_jax import notes as note_schema
from vrash_jax.errors import VrashError
from vrash_jax.melodist import Melodist

ConfigFor = Callable[[str], ml_collections.ConfigDict]


def run_dir(workdir: str, name: str, seed: int) -> str:
  return os.path.join(workdir, 'runs', f'{name}-seed{seed}')


def train_run(config: ml_collections.ConfigDict, data_dir: str, directory: str) -> float:
  """Trains (or resumes) one run; returns its training wall time summed over every resume.
  A run stopped by SIGTERM or SIGINT stops the whole study (after its checkpoint)."""
  info_path = os.path.join(directory, 'run.json')
  info = json.load(open(info_path)) if os.path.exists(info_path) else {'train_wall_s': 0.0}
  start = time.perf_counter()
  outcome = train.train_and_evaluate(config, data_dir, directory)
  info['train_wall_s'] += time.perf_counter() - start
  if jax.process_index() == 0:
    with open(info_path, 'w') as f:
      json.dump(info, f)
  if outcome['stopped_by'] not in (None, 'saturation'):
    raise VrashError(f"{outcome['stopped_by']} received: {directory} stopped after step "
                     f"{outcome['step']} with a checkpoint; run the same command to resume")
  return info['train_wall_s']


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


def subset(arrays: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
  """The examples `rows` of a loaded split (arrays and str lists alike)."""
  return {k: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows] for k, v in arrays.items()}


def frontier_runs(points: Sequence[Point], config_for: ConfigFor, data_dir: str, workdir: str,
                  splits: Mapping[str, tuple[Mapping[str, Any], int]]) -> list[dict[str, Any]]:
  """Trains every point (seed 0; resumable) and evaluates its best checkpoint on each split,
  `splits` = {name: (arrays, posterior samples of its importance-weighted bound)}."""
  out = []
  for i, point in enumerate(points, 1):
    config = point.config(config_for)
    directory = point.directory(workdir, config.seed)
    logging.info('frontier %d/%d: %s %s (%s)', i, len(points), point.model, point.name, point.technique)
    wall = train_run(config, data_dir, directory)
    _, state = evaluation.restore_for_inference(directory)
    row = {'model': point.model, 'name': point.name, 'technique': point.technique,
           'overrides': dict(point.overrides), 'free_bits': config.free_bits,
           'note_dropout': config.note_dropout, 'steps': int(jax.device_get(state.step)),
           'train_wall_s': wall}
    for split, (arrays, iw_samples) in splits.items():
      row[split] = evaluation.evaluate_state(state, config, arrays, iw_samples)
    out.append(row)
    logging.info('  valid %s', {k: round(row['valid'][k], 4) for k in ('ce_total', 'kl', 'nll_iw')})
  return out


def figures_by_length(directory: str, arrays: Mapping[str, Any], iw_samples: int
                      ) -> dict[str, dict[str, float]]:
  """Test figures of a run's best checkpoint per melody-length bucket (claims.LENGTH_BUCKETS)."""
  config, state = evaluation.restore_for_inference(directory)
  buckets = np.array([claims.length_bucket(int(n)) for n in arrays['length']])
  out = {}
  for low, high in claims.LENGTH_BUCKETS:
    name = claims.length_bucket(low)
    rows = np.flatnonzero(buckets == name)
    if rows.size:
      out[name] = {'melodies': int(rows.size),
                   **evaluation.evaluate_state(state, config, subset(arrays, rows), iw_samples)}
  return out


def sample_metrics(directories: Sequence[str], temperatures: Sequence[float], seeds: int, num: int,
                   length: int, reference: Sequence[note_schema.Track], training_ngrams: set
                   ) -> dict[str, list[dict[str, float]]]:
  """{temperature: [melody metrics of `num` samples, per seed]}; seed s samples from the
  model trained with seed s when there is one, else from the first with sampling seed s."""
  out: dict[str, list[dict[str, float]]] = {str(t): [] for t in temperatures}
  for seed in range(seeds):
    melodist = Melodist.from_workdir(directories[min(seed, len(directories) - 1)])
    for t in temperatures:
      tracks = melodist.sample(num, temperature=t, seed=seed, length=length)
      out[str(t)].append(metrics.melody_metrics(tracks, reference, training_ngrams))
  return out


def posterior_means(directory: str, tracks: Sequence[note_schema.Track], batch: int = 256) -> np.ndarray:
  melodist = Melodist.from_workdir(directory)
  return np.concatenate([melodist.encode(list(tracks[i:i + batch])) for i in range(0, len(tracks), batch)])


def style_probe(directory: str, splits: Sequence[Mapping[str, Any]], seed: int = 0) -> dict[str, Any]:
  """The linear style probe on the posterior means of melodies the model never trained on."""
  tracks = [t for arrays in splits for t in metrics.tracks_from_arrays(arrays)]
  z = posterior_means(directory, tracks)
  meta = np.concatenate([np.stack([a['family'], a['tempo_bucket']], 1) for a in splits])
  labels = [s for arrays in splits for s in arrays['style']]
  return claims.style_probe(z, meta, labels, seed=seed)
