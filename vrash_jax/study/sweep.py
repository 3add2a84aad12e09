"""The paper's comparison (Sec. 4, Fig. 5): every model x seed trained, evaluated on test.

Every run of a sweep (each model's seeds, then the frontier's points with theirs) trains first,
in groups (`run_plan`); each lives in WORKDIR/runs/<name>-seed<seed> and resumes like any
`vrash-train` run, so an interrupted sweep picks up where it stopped and finished runs are only
re-evaluated. Beyond the paper, the untrained network's CE (its reference baseline), the ELBO
and importance-weighted NLL bounds, objective metrics of samples, and the latent space of VRASH.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vrash_jax import checkpoint, config_rules, evaluation, input_pipeline, sharding, storage, train
from vrash_jax import notes as note_schema
from vrash_jax.errors import PROGRESS
from vrash_jax.melodist import Melodist
from vrash_jax.study import RESULTS, claims, listening, measurements, melody_metrics, run_plan, runs
from vrash_jax.study.measurements import ClaimsPlan
from vrash_jax.study.rundir import RunDir, run_path
from vrash_jax.study.runs import Point, Seeds, seeds_of
from vrash_jax.study.stages import Stages

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
  folder = RunDir(directory)
  return {'train_ce': [[r['step'], r['ce_total']] for r in folder.metrics('train')],
          'valid_bound': [[r['step'], checkpoint.valid_bound(r)] for r in folder.metrics('valid')]}


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
  """Every run of a sweep: each model's seeds, then each frontier point's."""
  out = []
  for model in models:
    for seed in seeds_of(seeds, model):
      config = config_for(model)
      config.seed = seed
      out.append(run_plan.planned_run(config, run_path(workdir, model, seed)))
  for point in frontier:
    out += [run_plan.planned_run(point.config(config_for, s), point.directory(workdir, s)) for s in point.seeds]
  return out


def plan_sweep(data_dir: str, workdir: str, config_for: Callable[[str], ml_collections.ConfigDict],
               models: Sequence[str], seeds: Seeds, claims_plan: ClaimsPlan, group_size: int = 0,
               measure: bool = True, mix_seeds: bool | None = None
               ) -> tuple[list[list[run_plan.PlannedRun]], run_plan.Progress]:
  """The sweep's runs in their groups (of up to `group_size` runs; 0: chosen here, see
  `run_plan.group_size`; seeds mixed in a group with `mix_seeds`, None: `run_plan.mixes_seeds`),
  with the plan logged (groups, widths; with `measure`, a wall time
  projected from group steps timed here, a minute or so of compilation a model) and the progress
  reporter the groups tell when they start and end. Compilations go to the sweep's persistent
  cache, where its runs find them."""
  storage.require_local(workdir, 'a sweep\'s --workdir')
  train.enable_compilation_cache(os.path.join(workdir, 'jax_cache'))
  max_len = config_for(models[0]).max_len
  train_arrays = input_pipeline.load_split(data_dir, 'train', max_len)
  all_runs = sweep_runs(workdir, config_for, models, seeds, claims_plan.frontier)
  pending = [r for r in all_runs if r.remaining_steps]
  mix = run_plan.mixes_seeds() if mix_seeds is None else mix_seeds
  largest = max((len(g) for g in run_plan.form_groups(pending, len(pending), mix)), default=1)
  size = group_size or (run_plan.group_size(config_for(pending[-1].config.model), train_arrays, largest)
                        if pending else 1)
  groups = run_plan.form_groups(all_runs, size, mix)
  lanes = run_plan.lanes()
  measured = {}
  if measure:
    valid_arrays = (input_pipeline.load_split(data_dir, 'valid', max_len)
                    if input_pipeline.has_split(data_dir, 'valid') else None)
    with sharding.on_devices(runs.devices_of_lane(0, lanes)):
      for model in dict.fromkeys(g[0].config.model for g in groups):
        measured[model] = run_plan.measure_model(config_for(model), size, train_arrays, valid_arrays)
    runs.release_compiled()
  plan = run_plan.describe(all_runs, groups, measured, run_plan.project(groups, measured, lanes) if measure else None,
                           f'{jax.device_count()} {jax.devices()[0].device_kind}', lanes)
  for line in plan.splitlines():
    PROGRESS.info('%s', line)
  return groups, run_plan.Progress(groups, measured, lanes)


def evaluate_runs(workdir: str, config_for: Callable[[str], ml_collections.ConfigDict], model: str,
                  seeds: Sequence[int], test_arrays: dict[str, Any], iw_samples: int) -> list[dict[str, Any]]:
  """Test figures of each trained run of `model` (its best checkpoint), with its training time."""
  out = []
  for seed in seeds:
    config, directory = config_for(model), run_path(workdir, model, seed)
    config.seed = seed
    _, state = evaluation.restore_for_inference(directory)
    record = RunDir(directory).record()
    figures = evaluation.evaluate_state(state, config, test_arrays, iw_samples)
    out.append({'model': model, 'seed': seed, 'steps': int(jax.device_get(state.step)),
                'train_wall_s': record.train_wall_s, 'seconds': record.seconds, **figures})
    logging.info('%s seed %d: test %s', model, seed, {k: round(figures[k], 4) for k in FIGURES if k in figures})
  return out


STAGES = ('training', 'test figures', 'claims')  # what `run_sweep` says as it goes (`stages.Stages`)


def run_sweep(data_dir: str, workdir: str, config_for: Callable[[str], ml_collections.ConfigDict],
              models: Sequence[str], seeds: Seeds, iw_samples: int = 16, num_samples: int = 64,
              notes: str = '', plan: ClaimsPlan = ClaimsPlan(), group_size: int = 0,
              mix_seeds: bool | None = None, stages: Stages | None = None) -> dict[str, Any]:
  """Trains every run (in groups of up to `group_size`, seeds mixed with `mix_seeds`; both
  chosen by `plan_sweep` by default), evaluates
  them, then measures the paper's claims (`plan`); writes WORKDIR/results.json (and the MIDI
  files it names), which `vrash_jax.report` renders. Says its STAGES on `stages` (by default
  its own)."""
  started = time.perf_counter()
  stages = stages or Stages(STAGES)
  for model in models:  # every run's config, before any data is read
    config_rules.validate(config_for(model), devices=jax.device_count())
  stages.begin('training')
  groups, progress = plan_sweep(data_dir, workdir, config_for, models, seeds, plan, group_size, measure=False,
                                mix_seeds=mix_seeds)
  runs.train_groups(groups, data_dir, progress, run_plan.lanes())
  stages.begin('test figures', f'{", ".join(claims.MODEL_NAMES[m] for m in models)}')
  max_len = config_for(models[0]).max_len
  test_arrays = input_pipeline.load_split(data_dir, 'test', max_len)
  test_tracks = input_pipeline.tracks_from_arrays(test_arrays)
  training_ngrams = melody_metrics.ngram_set(
      input_pipeline.tracks_from_arrays(input_pipeline.load_split(data_dir, 'train', max_len)), 8)
  results: dict[str, Any] = {'models': {}, 'runs': [], 'untrained': {}, 'samples': {}, 'iw_samples': iw_samples,
                             'data': melody_metrics.melody_metrics(test_tracks, test_tracks, training_ngrams)}
  listen, (a, b), ends = listening_start(test_tracks, test_arrays['style'], workdir)
  entropy = storage.path(storage.join(data_dir, 'entropy.png'))
  if entropy.is_file():  # the page links files in the workdir only; the data may be in a bucket
    entropy.copy(storage.path(storage.join(workdir, 'entropy.png')), overwrite=True)
  for i, model in enumerate(models, 1):
    model_runs = evaluate_runs(workdir, config_for, model, seeds_of(seeds, model), test_arrays, iw_samples)
    results['runs'].extend(model_runs)
    results['models'][model] = {'seeds': len(model_runs), **aggregate(model_runs)}
    results['untrained'][model] = evaluation.evaluate_untrained(config_for(model), test_arrays, iw_samples)
    melodist = Melodist.from_workdir(run_path(workdir, model, seeds_of(seeds, model)[0]))
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
    runs.release_compiled()
    stages.done(i, len(models), f'{claims.MODEL_NAMES[model]} ({len(model_runs)} seed{"s" * (len(model_runs) > 1)})')
  results['listening'] = listen
  results['curves'] = {m: learning_curves(run_path(workdir, m, seeds_of(seeds, m)[0])) for m in models}
  stages.begin('claims')
  results['claims'] = measurements.measure_claims(plan, data_dir, workdir, config_for, models, seeds, num_samples,
                                                  results, test_arrays, test_tracks, training_ngrams, stages)
  results['config'] = {m: config_for(m).to_dict() for m in models}
  results['notes'] = notes
  results['test_notes'] = int(test_arrays['mask'].sum())
  results['wall_time_s'] = time.perf_counter() - started
  if jax.process_index() == 0:  # whole or not at all: a reader never sees half a results.json
    storage.write_text(storage.join(workdir, RESULTS), json.dumps(results, indent=2))
  return results
