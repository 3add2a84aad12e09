"""The paper's comparison (Sec. 4, Fig. 5): every model x seed trained, evaluated on test.

`run_sweep(study)` reads as its stages: plan the groups, train them, evaluate every run on test,
measure and judge each claim (`claim_registry`), write results.json. Every run of a sweep (each
model's seeds, then the frontier's points with theirs) lives in WORKDIR/runs/<name>-seed<seed>
and resumes like any `vrash-train` run, so an interrupted sweep picks up where it stopped and
finished runs are only re-evaluated. Beyond the paper, the untrained network's CE (its reference
baseline), the ELBO and importance-weighted NLL bounds, objective metrics of samples, and the
latent space of VRASH. The workdir may be a bucket, and the sweep may run on many hosts at once
(every host the same call): see `run_sweep` and `report_folder`.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any, Iterator, Sequence

import jax
import numpy as np
from absl import logging

from vrash_jax import checkpoint, evaluation, sharding, storage, train
from vrash_jax import notes as note_schema
from vrash_jax.config_rules import MODEL_SPECS
from vrash_jax.errors import PROGRESS
from vrash_jax.melodist import Melodist
from vrash_jax.study import RESULTS, claim_registry, claims, listening, measurements, melody_metrics, run_plan, runs
from vrash_jax.study.rundir import RunDir
from vrash_jax.study.stages import Stages
from vrash_jax.study.study import Study

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


def listening_start(test: list[note_schema.Track], groups: list[str], folder: str
                    ) -> tuple[dict[str, Any], tuple[int, int], list[str]]:
  """The page's test melodies and the interpolation ends (indices, MIDI files), written as
  MIDI into `folder`; each model adds its samples and interpolation."""
  a, b = listening.interpolation_ends(groups)
  shown = [test[i] for i in listening.spread(len(test), listening.SHOWN)]
  listen = {'description': "Samples at temperature 1.0 from each model's first seed (z from the "
                           'prior for VAE and VRASH), beside test melodies spread over the test split.',
            'samples': {'test': listening.write_tracks(shown, folder, os.path.join('samples', 'test'), 'test')},
            'interpolations': {}}
  return listen, (a, b), listening.write_tracks([test[a], test[b]], folder, 'interpolations', 'end')


@contextlib.contextmanager
def report_folder(workdir: str) -> Iterator[str]:
  """A local folder for the study's files a person opens (MIDI, figures, the page, its log),
  whichever the workdir: on process 0 the workdir itself when local, else a folder that starts
  with the bucket's logs (a log goes on across sittings) and whose files are uploaded into the
  bucket once the study is done (its logs also when it is not); on every other process a
  temporary folder, dropped (process 0 writes the same files)."""
  if jax.process_index() != 0:
    with tempfile.TemporaryDirectory(prefix='vrash-report-') as local:
      yield local
    return
  with storage.staged(workdir) as local:  # uploaded into a bucket once the study is done
    remote = storage.is_remote(workdir)
    if remote:
      _copy_logs(workdir, local)
    try:
      yield local
    except BaseException:
      if remote:
        _copy_logs(local, workdir)
      raise


def _copy_logs(source: str, target: str) -> None:
  """The logs (*.log) at the top of `source` into `target` (either local or gs://)."""
  folder = storage.path(source)
  for log in (folder.glob('*.log') if folder.is_dir() else []):
    log.copy(storage.path(storage.join(target, log.name)), overwrite=True)


def plan_sweep(study: Study, measure: bool = True) -> tuple[list[list[run_plan.PlannedRun]], run_plan.Progress]:
  """The study's runs in their groups (of up to `study.group_size` runs; 0: chosen here, see
  `run_plan.group_size`; seeds mixed in a group with `study.mix_seeds`, None:
  `run_plan.mixes_seeds`), with the plan logged (groups, widths; with `measure`, a wall time
  projected from group steps timed here, a minute or so of compilation a model) and the progress
  reporter the groups tell when they start and end. Compilations go to the sweep's persistent
  cache, where its runs find them."""
  train.enable_compilation_cache(storage.join(study.workdir, 'jax_cache'))
  all_runs = study.planned_runs()
  pending = [r for r in all_runs if r.remaining_steps]
  mix = run_plan.mixes_seeds() if study.mix_seeds is None else study.mix_seeds

  def sizes(cap: int) -> list[int]:
    return [len(g) for g in run_plan.form_groups(pending, cap, mix)]

  size = study.group_size or (run_plan.group_size(study.config(pending[-1].config.model), study.splits.train,
                                                  sizes) if pending else 1)
  groups = run_plan.form_groups(all_runs, size, mix)
  run_plan.agree(groups)
  lanes = run_plan.lanes()
  measured = {}
  if measure:
    valid_arrays = study.splits.valid if study.splits.has_valid else None
    with sharding.on_devices(runs.devices_of_lane(0, lanes)):
      for model in dict.fromkeys(g[0].config.model for g in groups):
        measured[model] = run_plan.measure_model(study.config(model), size, study.splits.train, valid_arrays)
    runs.release_compiled()
  plan = run_plan.describe(all_runs, groups, measured, run_plan.project(groups, measured, lanes) if measure else None,
                           f'{jax.device_count()} {jax.devices()[0].device_kind}', lanes)
  for line in plan.splitlines():
    PROGRESS.info('%s', line)
  return groups, run_plan.Progress(groups, measured, lanes)


def evaluate_runs(study: Study, model: str) -> list[dict[str, Any]]:
  """Test figures of each trained run of `model` (its best checkpoint), with its training time."""
  out = []
  for seed in study.seeds_of(model):
    config, directory = study.config(model, seed), study.run_dir(model, seed)
    _, state = evaluation.restore_for_inference(directory)
    record = RunDir(directory).record()
    figures = evaluation.evaluate_state(state, config, study.splits.test, study.iw_samples)
    out.append({'model': model, 'seed': seed, 'steps': int(jax.device_get(state.step)),
                'train_wall_s': record.train_wall_s, 'seconds': record.seconds, **figures})
    logging.info('%s seed %d: test %s', model, seed, {k: round(figures[k], 4) for k in FIGURES if k in figures})
  return out


def evaluate(study: Study, stages: Stages, folder: str) -> dict[str, Any]:
  """Every model's test figures over its seeds and untrained, its samples' metrics, the page's
  MIDI (samples, interpolations; into the local `folder`), VRASH's latent map and the learning
  curves; each model said done on `stages`."""
  splits = study.splits
  test_tracks, training_ngrams = splits.test_tracks, splits.training_ngrams
  results: dict[str, Any] = {'models': {}, 'runs': [], 'untrained': {}, 'samples': {}, 'iw_samples': study.iw_samples,
                             'data': melody_metrics.melody_metrics(test_tracks, test_tracks, training_ngrams)}
  listen, (a, b), ends = listening_start(test_tracks, splits.test['style'], folder)
  entropy = storage.path(storage.join(study.data_dir, 'entropy.png'))
  if entropy.is_file():  # the page links files in its folder only; the data may be in a bucket
    entropy.copy(storage.path(storage.join(folder, 'entropy.png')), overwrite=True)
  for i, model in enumerate(study.models, 1):
    model_runs = evaluate_runs(study, model)
    results['runs'].extend(model_runs)
    results['models'][model] = {'seeds': len(model_runs), **aggregate(model_runs)}
    results['untrained'][model] = evaluation.evaluate_untrained(study.config(model), splits.test, study.iw_samples)
    melodist = Melodist.from_workdir(study.run_dir(model, study.seeds_of(model)[0]))
    samples = melodist.sample(study.num_samples, temperature=1.0, seed=0, length=study.max_len)
    results['samples'][model] = melody_metrics.melody_metrics(samples, test_tracks, training_ngrams)
    written = listening.write_tracks(samples[:8], folder, os.path.join('samples', model), 'sample')
    listen['samples'][model] = written[:listening.SHOWN]
    if melodist.model.has_latent:
      listen['interpolations'][model] = listening.interpolation(
          melodist, test_tracks[a], test_tracks[b], folder, model, ends)
    if model == 'vrash':
      results['latent'] = claims.latent_map(measurements.posterior_means(melodist, test_tracks),
                                            splits.test['style'])
    runs.release_compiled()
    stages.done(i, len(study.models), f'{MODEL_SPECS[model].shown_as} ({len(model_runs)} seed'
                                      f'{"s" * (len(model_runs) > 1)})')
  results['listening'] = listen
  results['curves'] = {m: learning_curves(study.run_dir(m, study.seeds_of(m)[0])) for m in study.models}
  return results


STAGES = ('training', 'test figures', 'claims')  # what `run_sweep` says as it goes (`stages.Stages`)


def run_sweep(study: Study, stages: Stages | None = None, folder: str | None = None) -> dict[str, Any]:
  """Trains every run of the study (in its planned groups, lanes side by side), evaluates them,
  measures and judges the paper's claims; writes WORKDIR/results.json, and the MIDI files it
  names into `folder` (a local one: see `report_folder`; by default the workdir, then local),
  which `vrash_jax.report` renders. Says its STAGES on `stages` (by default its own).

  On many hosts every process runs it alike: each group's runs are spread over the hosts
  (`run_plan`), evaluations split their batches over every device, and process 0 writes."""
  started = time.perf_counter()
  stages = stages or Stages(STAGES)
  if folder is None:
    storage.require_local(study.workdir, 'a sweep\'s --workdir', 'its MIDI files are written with local tools; '
                          'give it a local folder for them (`report_folder`)')
  study.validate(devices=jax.device_count())
  stages.begin('training')
  groups, progress = plan_sweep(study, measure=False)
  runs.train_groups(groups, study.data_dir, progress, run_plan.lanes())
  stages.begin('test figures', ', '.join(MODEL_SPECS[m].shown_as for m in study.models))
  results = evaluate(study, stages, folder or study.workdir)
  stages.begin('claims')
  results['claims'] = claim_registry.measure_claims(study, results, stages)
  results.update(config={m: study.config(m).to_dict() for m in study.models}, notes=study.notes,
                 test_notes=int(study.splits.test['mask'].sum()), wall_time_s=time.perf_counter() - started)
  if jax.process_index() == 0:  # whole or not at all: a reader never sees half a results.json
    storage.write_text(storage.join(study.workdir, RESULTS), json.dumps(results, indent=2))
  return results
