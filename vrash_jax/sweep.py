"""The paper's comparison (Sec. 4, Fig. 5): every model x seed trained, evaluated on test.

Each run lives in WORKDIR/runs/<model>-seed<seed> and resumes like any `vrash-train` run, so
an interrupted sweep picks up where it stopped and finished runs are only re-evaluated.
Beyond the paper, the untrained network's CE (its reference baseline), the ELBO and
importance-weighted NLL bounds, objective metrics of samples, and the latent space of VRASH.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vrash_jax import config_rules, evaluation, input_pipeline, listening, metrics, report, train
from vrash_jax import notes as note_schema
from vrash_jax.melodist import Melodist

FIGURES = ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl', 'kl_per_note', 'nll_bound', 'nll_iw')


def run_dir(workdir: str, model: str, seed: int) -> str:
  return os.path.join(workdir, 'runs', f'{model}-seed{seed}')


def train_run(config: ml_collections.ConfigDict, data_dir: str, directory: str) -> float:
  """Trains (or resumes) one run; returns its training wall time summed over every resume."""
  info_path = os.path.join(directory, 'run.json')
  info = json.load(open(info_path)) if os.path.exists(info_path) else {'train_wall_s': 0.0}
  start = time.perf_counter()
  train.train_and_evaluate(config, data_dir, directory)
  info['train_wall_s'] += time.perf_counter() - start
  if jax.process_index() == 0:
    with open(info_path, 'w') as f:
      json.dump(info, f)
  return info['train_wall_s']


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
  """Mean and standard deviation (over seeds) of every figure."""
  out = {}
  for key in FIGURES:
    values = np.array([r[key] for r in runs if key in r], np.float64)
    if values.size:
      out[key] = {'mean': float(values.mean()), 'std': float(values.std(ddof=1)) if values.size > 1 else 0.0}
  return out


def listening_start(test: list[note_schema.Track], groups: list[str], workdir: str
                    ) -> tuple[dict[str, Any], tuple[int, int], list[str]]:
  """The page's test melodies and the interpolation ends (indices, MIDI files), written as
  MIDI; each model adds its samples and interpolation."""
  a, b = listening.interpolation_ends(groups)
  shown = [test[i] for i in listening.spread(len(test), listening.SHOWN)]
  listen = {'description': "Samples at temperature 1.0 from each model's first seed (z from the "
                           'prior for VAE and VRASH), beside test melodies spread over the test split.',
            'samples': {'test': listening.write_tracks(shown, workdir, os.path.join('samples', 'test'), 'test')},
            'interpolations': {}}
  return listen, (a, b), listening.write_tracks([test[a], test[b]], workdir, 'interpolations', 'end')


def latent_space(melodist: Melodist, test_arrays: dict, test: list[note_schema.Track], path: str
                 ) -> dict[str, Any]:
  """Posterior means of the test melodies: t-SNE plot by style and silhouette score."""
  z = np.concatenate([melodist.encode(test[i:i + 256]) for i in range(0, len(test), 256)])
  return report.plot_latents(z, test_arrays['style'], path)


def run_sweep(data_dir: str, workdir: str, config_for: Callable[[str], ml_collections.ConfigDict],
              models: Sequence[str], seeds: Sequence[int], iw_samples: int = 16,
              num_samples: int = 64, notes: str = '', soundfont: str | None = None) -> dict[str, Any]:
  """Trains and evaluates everything; writes results.json, results.md, the figures and
  results.html (its audio rendered with `soundfont` when given, else sine waves)."""
  started = time.perf_counter()
  for model in models:  # every run's config, before any data is read
    config_rules.validate(config_for(model), devices=jax.device_count())
  train.enable_compilation_cache(os.path.join(workdir, 'jax_cache'))
  max_len = config_for(models[0]).max_len
  test_arrays = input_pipeline.load_split(data_dir, 'test', max_len)
  test_tracks = metrics.tracks_from_arrays(test_arrays)
  training_ngrams = metrics.ngram_set(
      metrics.tracks_from_arrays(input_pipeline.load_split(data_dir, 'train', max_len)), 8)
  results: dict[str, Any] = {'models': {}, 'runs': [], 'untrained': {}, 'samples': {},
                             'data': metrics.melody_metrics(test_tracks, test_tracks, training_ngrams)}
  listen, (a, b), ends = listening_start(test_tracks, test_arrays['style'], workdir)
  if os.path.isfile(os.path.join(data_dir, 'entropy.png')):
    shutil.copy(os.path.join(data_dir, 'entropy.png'), workdir)  # the page links files in the workdir only
  for model in models:
    runs = []
    for seed in seeds:
      config = config_for(model)
      config.seed = seed
      directory = run_dir(workdir, model, seed)
      wall = train_run(config, data_dir, directory)
      _, state = evaluation.restore_for_inference(directory)
      figures = evaluation.evaluate_state(state, config, test_arrays, iw_samples)
      runs.append({'model': model, 'seed': seed, 'steps': int(jax.device_get(state.step)),
                   'train_wall_s': wall, **figures})
      logging.info('%s seed %d: test %s', model, seed, {k: round(figures[k], 4) for k in FIGURES if k in figures})
    results['runs'].extend(runs)
    results['models'][model] = {'seeds': len(runs), **aggregate(runs)}
    results['untrained'][model] = evaluation.evaluate_untrained(config_for(model), test_arrays)
    melodist = Melodist.from_workdir(run_dir(workdir, model, seeds[0]))
    samples = melodist.sample(num_samples, temperature=1.0, seed=0, length=max_len)
    results['samples'][model] = metrics.melody_metrics(samples, test_tracks, training_ngrams)
    written = listening.write_tracks(samples[:8], workdir, os.path.join('samples', model), 'sample')
    listen['samples'][model] = written[:listening.SHOWN]
    if melodist.model.has_latent:
      listen['interpolations'][model] = listening.interpolation(
          melodist, test_tracks[a], test_tracks[b], workdir, model, ends)
    if model == 'vrash':
      results['latent'] = latent_space(melodist, test_arrays, test_tracks,
                                       os.path.join(workdir, 'figure6.png'))
  results['listening'] = listen
  results['config'] = {m: config_for(m).to_dict() for m in models}
  results['iw_samples'] = iw_samples
  results['notes'] = notes
  results['test_notes'] = int(test_arrays['mask'].sum())
  results['wall_time_s'] = time.perf_counter() - started
  if jax.process_index() == 0:
    logging.info('results page: %s', report.write_all(results, workdir, soundfont))
  return results
