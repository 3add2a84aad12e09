"""The paper's comparison (Sec. 4, Fig. 5): every model x seed trained, evaluated on test.

Each run lives in WORKDIR/runs/<model>-seed<seed> and resumes like any `vrash-train` run, so
an interrupted sweep picks up where it stopped and finished runs are only re-evaluated.
Beyond the paper, the untrained network's CE (its reference baseline), the ELBO and
importance-weighted NLL bounds, objective metrics of samples, and the latent space of VRASH.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vrash_jax import config_rules, evaluation, input_pipeline, train
from vrash_jax import notes as note_schema
from vrash_jax.melodist import Melodist
from vrash_jax.study import RESULTS, claims, listening, measurements, melody_metrics, run_plan
from vrash_jax.study.runs import Point, run_dir, train_run


@dataclasses.dataclass(frozen=True)
class ClaimsPlan:
  """What a sweep measures beyond the comparison (the paper's claims; see `claims`)."""
  frontier: tuple[Point, ...] = ()  # extra runs at other rates or with other techniques
  temperatures: tuple[float, ...] = (0.5, 0.8, 1.0)  # of the repetition/structure/diversity samples
  sample_seeds: int = 3  # sampling seeds per temperature (one per trained seed where there are)
  sample_length: int = 64  # notes per sample; the data's row uses test melodies cut to this
  frontier_iw_samples: int = 64  # K of the importance-weighted bound of test frontier and length figures
  valid_iw_samples: int = 16  # K of the valid bound that picks the recommended point


Seeds = Sequence[int] | Mapping[str, Sequence[int]]  # the same seeds for every model, or per model


def seeds_of(seeds: Seeds, model: str) -> Sequence[int]:
  return seeds[model] if isinstance(seeds, Mapping) else seeds


FIGURES = ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl', 'kl_per_note', 'nll_bound', 'nll_iw')


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
  """Mean and standard deviation (over seeds) of every figure."""
  out = {}
  for key in FIGURES:
    values = np.array([r[key] for r in runs if key in r], np.float64)
    if values.size:
      out[key] = {'mean': float(values.mean()), 'std': float(values.std(ddof=1)) if values.size > 1 else 0.0}
  return out


def learning_curves(directory: str) -> dict[str, list[list[float]]]:
  """[[step, figure], ...] of a run's metrics.jsonl: train CE and the valid NLL bound."""
  out: dict[str, list[list[float]]] = {'train_ce': [], 'valid_bound': []}
  path = os.path.join(directory, 'metrics.jsonl')
  for line in open(path) if os.path.exists(path) else []:
    record = json.loads(line)
    if record['split'] == 'train':
      out['train_ce'].append([record['step'], record['ce_total']])
    elif record['split'] == 'valid':
      out['valid_bound'].append([record['step'], train.valid_bound(record)])
  return out


def measure_claims(plan: ClaimsPlan, data_dir: str, workdir: str, config_for, models: Sequence[str],
                   seeds: Seeds, num_samples: int, results: dict[str, Any], test_arrays: dict,
                   test_tracks: list[note_schema.Track], training_ngrams: set,
                   progress: run_plan.Progress | None = None) -> dict[str, Any]:
  """The frontier, figures by length, samples by temperature, the style probe, and verdicts."""
  out: dict[str, Any] = {'plan': dataclasses.asdict(plan)}
  k = plan.frontier_iw_samples
  valid_arrays = input_pipeline.load_split(data_dir, 'valid', config_for(models[0]).max_len)
  splits = {'valid': (valid_arrays, plan.valid_iw_samples), 'test': (test_arrays, k)}
  defaults = [Point(m, 'default', 'preset config') for m in models]
  points = measurements.frontier_runs(defaults + list(plan.frontier), config_for, data_dir, workdir, splits,
                                      progress)
  lm = next((p for p in points if p['model'] == 'lm'), None)
  out['frontier'] = {'points': [p for p in points if p['model'] != 'lm'], 'lm': lm}
  verdicts = []
  if lm is not None and 'vrash' in models:
    frontier = out['frontier']
    frontier['recommended'] = claims.recommend(frontier['points'], lm['valid'])
    frontier['paper_point'] = claims.paper_point(frontier['points'], lm['valid'])
    frontier['goals'] = claims.frontier_goals(frontier['points'], lm['test'])
    out['by_length'] = {m: measurements.figures_by_length(run_dir(workdir, m, seeds_of(seeds, m)[0]),
                                                          test_arrays, k) for m in models}
    verdicts.append(claims.length_claim(out['by_length']))
  cut = [t.cropped(plan.sample_length) for t in test_tracks]
  out['data_samples'] = melody_metrics.melody_metrics(cut, test_tracks, training_ngrams)
  per_seed = {m: measurements.sample_metrics([run_dir(workdir, m, s) for s in seeds_of(seeds, m)], plan.temperatures,
                                      plan.sample_seeds, num_samples, plan.sample_length,
                                      test_tracks, training_ngrams) for m in models}
  out['samples'] = claims.summarize_samples(per_seed)
  hottest = str(max(plan.temperatures))
  if {'lm', 'vrash'} <= set(models):
    verdicts.append(claims.repetition_claim(out['samples']))
    verdicts.append(claims.structure_claim(out['samples'], out['data_samples'], hottest))
  if {'vae', 'vrash'} <= set(models):
    verdicts.append(claims.diversity_claim(out['samples'], hottest))
  if 'vrash' in models:
    out['style_probe'] = measurements.style_probe(run_dir(workdir, 'vrash', seeds_of(seeds, 'vrash')[0]),
                                                  [valid_arrays, test_arrays])
    verdicts.append(claims.style_claim(out['style_probe'],
                                       results.get('latent', {}).get('silhouette_by_style')))
  out['verdicts'] = verdicts
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


def sweep_runs(workdir: str, config_for: Callable[[str], ml_collections.ConfigDict], models: Sequence[str],
               seeds: Seeds, frontier: Sequence[Point]) -> list[run_plan.PlannedRun]:
  """Every run a sweep trains, in the order it trains them: each model's seeds, then the
  frontier's extra points."""
  runs = []
  for model in models:
    for seed in seeds_of(seeds, model):
      config = config_for(model)
      config.seed = seed
      runs.append(run_plan.planned_run(config, run_dir(workdir, model, seed)))
  for point in frontier:
    config = point.config(config_for)
    runs.append(run_plan.planned_run(config, point.directory(workdir, config.seed)))
  return runs


def plan_sweep(data_dir: str, workdir: str, config_for: Callable[[str], ml_collections.ConfigDict],
               models: Sequence[str], seeds: Seeds, claims_plan: ClaimsPlan) -> run_plan.Progress:
  """Logs the sweep's plan (runs, widths, a projected wall time from steps measured here) and
  returns the progress reporter its runs tell when they start. Compilations go to the sweep's
  persistent cache, where its runs find them."""
  train.enable_compilation_cache(os.path.join(workdir, 'jax_cache'))
  max_len = config_for(models[0]).max_len
  train_arrays = input_pipeline.load_split(data_dir, 'train', max_len)
  valid_arrays = (input_pipeline.load_split(data_dir, 'valid', max_len)
                  if input_pipeline.has_split(data_dir, 'valid') else None)
  runs = sweep_runs(workdir, config_for, models, seeds, claims_plan.frontier)
  to_train = sorted({r.config.model for r in runs if r.remaining_steps})
  measured = {m: run_plan.measure_model(config_for(m), train_arrays, valid_arrays) for m in to_train}
  logging.info('%s', run_plan.describe(runs, measured, run_plan.project(runs, measured),
                                   f'{jax.device_count()} {jax.devices()[0].device_kind}'))
  return run_plan.Progress(runs, measured)


def run_sweep(data_dir: str, workdir: str, config_for: Callable[[str], ml_collections.ConfigDict],
              models: Sequence[str], seeds: Seeds, iw_samples: int = 16,
              num_samples: int = 64, notes: str = '', plan: ClaimsPlan = ClaimsPlan()) -> dict[str, Any]:
  """Trains and evaluates everything, then measures the paper's claims (`plan`); writes
  WORKDIR/results.json (and the MIDI files it names), which `vrash_jax.report` renders."""
  started = time.perf_counter()
  for model in models:  # every run's config, before any data is read
    config_rules.validate(config_for(model), devices=jax.device_count())
  progress = plan_sweep(data_dir, workdir, config_for, models, seeds, plan)
  max_len = config_for(models[0]).max_len
  test_arrays = input_pipeline.load_split(data_dir, 'test', max_len)
  test_tracks = input_pipeline.tracks_from_arrays(test_arrays)
  training_ngrams = melody_metrics.ngram_set(
      input_pipeline.tracks_from_arrays(input_pipeline.load_split(data_dir, 'train', max_len)), 8)
  results: dict[str, Any] = {'models': {}, 'runs': [], 'untrained': {}, 'samples': {},
                             'data': melody_metrics.melody_metrics(test_tracks, test_tracks, training_ngrams)}
  listen, (a, b), ends = listening_start(test_tracks, test_arrays['style'], workdir)
  if os.path.isfile(os.path.join(data_dir, 'entropy.png')):
    shutil.copy(os.path.join(data_dir, 'entropy.png'), workdir)  # the page links files in the workdir only
  for model in models:
    runs = []
    for seed in seeds_of(seeds, model):
      config = config_for(model)
      config.seed = seed
      directory = run_dir(workdir, model, seed)
      info = train_run(config, data_dir, directory, progress)
      _, state = evaluation.restore_for_inference(directory)
      figures = evaluation.evaluate_state(state, config, test_arrays, iw_samples)
      runs.append({'model': model, 'seed': seed, 'steps': int(jax.device_get(state.step)),
                   'train_wall_s': info['train_wall_s'], 'seconds': info['seconds'], **figures})
      logging.info('%s seed %d: test %s', model, seed, {k: round(figures[k], 4) for k in FIGURES if k in figures})
    results['runs'].extend(runs)
    results['models'][model] = {'seeds': len(runs), **aggregate(runs)}
    results['untrained'][model] = evaluation.evaluate_untrained(config_for(model), test_arrays)
    melodist = Melodist.from_workdir(run_dir(workdir, model, seeds_of(seeds, model)[0]))
    samples = melodist.sample(num_samples, temperature=1.0, seed=0, length=max_len)
    results['samples'][model] = melody_metrics.melody_metrics(samples, test_tracks, training_ngrams)
    written = listening.write_tracks(samples[:8], workdir, os.path.join('samples', model), 'sample')
    listen['samples'][model] = written[:listening.SHOWN]
    if melodist.model.has_latent:
      listen['interpolations'][model] = listening.interpolation(
          melodist, test_tracks[a], test_tracks[b], workdir, model, ends)
    if model == 'vrash':
      results['latent'] = claims.latent_map(measurements.posterior_means(melodist, test_tracks),
                                            test_arrays['style'])
  results['listening'] = listen
  results['curves'] = {m: learning_curves(run_dir(workdir, m, seeds_of(seeds, m)[0])) for m in models}
  results['claims'] = measure_claims(plan, data_dir, workdir, config_for, models, seeds, num_samples, results,
                                     test_arrays, test_tracks, training_ngrams, progress)
  results['config'] = {m: config_for(m).to_dict() for m in models}
  results['iw_samples'] = iw_samples
  results['notes'] = notes
  results['test_notes'] = int(test_arrays['mask'].sum())
  results['wall_time_s'] = time.perf_counter() - started
  if jax.process_index() == 0:
    with open(os.path.join(workdir, RESULTS), 'w') as f:
      json.dump(results, f, indent=2)
  return results
