"""The measurements behind the paper's claims that need trained models: the runs of the
rate-distortion frontier evaluated, figures by melody length, samples at several temperatures
and seeds, and posterior means for the style probe and the latent map. `claims` turns them into
verdicts.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from vrash_jax import evaluation, input_pipeline
from vrash_jax import notes as note_schema
from vrash_jax.melodist import Melodist
from vrash_jax.study import claims, melody_metrics
from vrash_jax.study.runs import ConfigFor, Point, train_run


def subset(arrays: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
  """The examples `rows` of a loaded split (arrays and str lists alike)."""
  return {k: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows] for k, v in arrays.items()}


def frontier_runs(points: Sequence[Point], config_for: ConfigFor, data_dir: str, workdir: str,
                  splits: Mapping[str, tuple[Mapping[str, Any], int]], progress=None) -> list[dict[str, Any]]:
  """Trains every point (seed 0; resumable) and evaluates its best checkpoint on each split,
  `splits` = {name: (arrays, posterior samples of its importance-weighted bound)}; `progress`
  (a `run_plan.Progress`) is told as each starts."""
  out = []
  for i, point in enumerate(points, 1):
    config = point.config(config_for)
    directory = point.directory(workdir, config.seed)
    logging.info('frontier %d/%d: %s %s (%s)', i, len(points), point.model, point.name, point.technique)
    info = train_run(config, data_dir, directory, progress)
    _, state = evaluation.restore_for_inference(directory)
    row = {'model': point.model, 'name': point.name, 'technique': point.technique,
           'overrides': dict(point.overrides), 'free_bits': config.free_bits,
           'note_dropout': config.note_dropout, 'steps': int(jax.device_get(state.step)),
           'train_wall_s': info['train_wall_s'], 'seconds': info['seconds']}
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
  for low, _ in claims.LENGTH_BUCKETS:
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
      out[str(t)].append(melody_metrics.melody_metrics(tracks, reference, training_ngrams))
  return out


def posterior_means(melodist: Melodist, tracks: Sequence[note_schema.Track], batch: int = 256) -> np.ndarray:
  """z [N, Z] of `tracks`, encoded `batch` at a time."""
  return np.concatenate([melodist.encode(list(tracks[i:i + batch])) for i in range(0, len(tracks), batch)])


def style_probe(directory: str, splits: Sequence[Mapping[str, Any]], seed: int = 0) -> dict[str, Any]:
  """The linear style probe on the posterior means of melodies the model never trained on."""
  tracks = [t for arrays in splits for t in input_pipeline.tracks_from_arrays(arrays)]
  z = posterior_means(Melodist.from_workdir(directory), tracks)
  meta = np.concatenate([np.stack([a['family'], a['tempo_bucket']], 1) for a in splits])
  labels = [s for arrays in splits for s in arrays['style']]
  return claims.style_probe(z, meta, labels, seed=seed)
