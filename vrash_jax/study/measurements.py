"""The measurements behind the paper's claims that need trained models (`ClaimsPlan` says which):
the rate-distortion frontier's runs evaluated over their seeds, figures by melody length, samples
at several temperatures and seeds, and posterior means for the style probe and the latent map.
`Measured` measures each once, when a claim (`claim_registry`) or the report first needs it;
`claims` turns them into verdicts.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from vrash_jax import evaluation, input_pipeline
from vrash_jax import notes as note_schema
from vrash_jax.config_rules import LANGUAGE_MODELS, MODEL_SPECS, PAIRS
from vrash_jax.melodist import Melodist
from vrash_jax.study import claims, melody_metrics, structure
from vrash_jax.study.rundir import RunDir
from vrash_jax.study.runs import ConfigFor, Point, release_compiled
from vrash_jax.study.stages import Stages
from vrash_jax.study.study import Study


def subset(arrays: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
  """The examples `rows` of a loaded split (arrays and str lists alike)."""
  return {k: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows] for k, v in arrays.items()}


# What a sweep's run record (results.json 'runs') holds besides the test figures.
RUN_FIELDS = ('model', 'seed', 'steps', 'train_wall_s', 'seconds')


def mean_figures(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Each figure's mean over rows (one per seed)."""
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if isinstance(rows[0][k], (int, float))}


def evaluate_frontier(points: Sequence[Point], config_for: ConfigFor, workdir: str,
                      splits: Mapping[str, tuple[Mapping[str, Any], int]],
                      known: Mapping[tuple[str, str], Mapping[str, float]] | None = None) -> list[dict[str, Any]]:
  """Every point's best checkpoints evaluated on each split, `splits` = {name: (arrays, posterior
  samples of its importance-weighted bound)}: per seed, their means (the point's figures) and the
  95% interval over seeds of the test CE, KL and bound. `known` {(run folder, split): figures}
  holds evaluations already made with the same samples (the comparison's test figures), which
  are not made again; nor is a valid figure that the run logged while training, with its
  checkpoint and as many samples."""
  known = dict(known or {})
  out = []
  for i, point in enumerate(points, 1):
    logging.info('frontier %d/%d: %s %s (%s), seeds %s', i, len(points), point.model, point.name,
                 point.technique, ','.join(map(str, point.seeds)))
    per_seed = []
    for seed in point.seeds:
      config, directory = point.config(config_for, seed), point.directory(workdir, seed)
      _, state = evaluation.restore_for_inference(directory)
      record = RunDir(directory).record()
      if splits.get('valid', (None, None))[1] == config.valid_iw_samples:
        known.setdefault((directory, 'valid'), logged_valid(directory, int(jax.device_get(state.step))))
      per_seed.append({'seed': seed, 'steps': int(jax.device_get(state.step)), 'train_wall_s': record.train_wall_s,
                       **{split: dict(known.get((directory, split))
                                      or evaluation.evaluate_state(state, config, arrays, k))
                          for split, (arrays, k) in splits.items()}})
      release_compiled()  # a seed's evaluations compile steps at every width: 14 points x 3 seeds add up
    config = point.config(config_for)
    row = {'model': point.model, 'name': point.name, 'technique': point.technique,
           'overrides': dict(point.overrides), 'free_bits': config.free_bits, 'note_dropout': config.note_dropout,
           'seeds': list(point.seeds), 'per_seed': per_seed,
           **{split: mean_figures([r[split] for r in per_seed]) for split in splits},
           'test_ci': {k: claims.mean_ci([r['test'][k] for r in per_seed]) for k in ('ce_total', 'kl', 'nll_iw')}}
    out.append(row)
    logging.info('  valid %s', {k: round(row['valid'][k], 4) for k in ('ce_total', 'kl', 'nll_iw')})
  return out


def logged_valid(directory: str, step: int) -> dict[str, float] | None:
  """The valid figures a run logged at `step` while training (None if it logged none there)."""
  records = [r for r in RunDir(directory).metrics('valid') if r['step'] == step]
  return {k: v for k, v in records[-1].items() if k not in ('step', 'split')} if records else None


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


def data_subsets(cut: Sequence[note_schema.Track], size: int, reference: Sequence[note_schema.Track],
                 training_ngrams: set, draws: int = 5, seed: int = 0) -> list[dict[str, float]]:
  """Melody metrics of `draws` random subsets of `size` test melodies (cut as the samples are):
  the data's figures at a model's sample count."""
  rng = np.random.default_rng(seed)
  picks = [rng.choice(len(cut), min(size, len(cut)), replace=False) for _ in range(draws)]
  return [melody_metrics.melody_metrics([cut[i] for i in rows], reference, training_ngrams) for rows in picks]


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


class Measured:
  """What a study's claims are read from, each measured once, when first asked for, and said done
  on `stages` as a part of the claims stage: the frontier's points, figures by melody length,
  sample metrics by temperature, the style probes. `results` holds what the comparison measured
  (its test figures, which the frontier reuses, and the latent map)."""

  def __init__(self, study: Study, results: Mapping[str, Any], stages: Stages | None = None):
    self.study, self.results, self.stages = study, results, stages
    models = study.models
    self.latent_models = [latent for _, latent in PAIRS if latent in models]
    # Figures by length are shown against the LM: measured when a language model and its latent
    # variant are both in the study.
    self.measures_length = any({language, latent} <= set(models) for language, latent in PAIRS)
    self.parts = ['frontier', *(['figures by length'] if self.measures_length else []),
                  *(f'samples of {_shown(m)}' for m in models),
                  *(f'style probe of {_shown(m)}' for m in self.latent_models)]

  def _done(self, part: str) -> None:
    if self.stages is not None:
      self.stages.done(self.parts.index(part) + 1, len(self.parts), part)

  def measure_all(self) -> None:
    """Everything the report shows, whether or not a claim reads it, in the order of `parts`."""
    wanted = ['frontier', *(['by_length_seeds'] if self.measures_length else []), 'samples_per_seed', 'style_probes']
    for name in wanted:
      getattr(self, name)  # a cached property: measured here, once

  @functools.cached_property
  def frontier(self) -> list[dict[str, Any]]:
    """Every point of the frontier over its seeds, each model's default (its comparison runs)
    first: the test figures the comparison measured with the same K are reused."""
    study, plan = self.study, self.study.plan
    k = plan.frontier_iw_samples
    splits = {'valid': (study.splits.valid, plan.valid_iw_samples), 'test': (study.splits.test, k)}
    known = ({(study.run_dir(r['model'], r['seed']), 'test'): {f: v for f, v in r.items() if f not in RUN_FIELDS}
              for r in self.results['runs']} if self.results.get('iw_samples') == k else {})
    points = evaluate_frontier(study.default_points() + list(plan.frontier), study.config_for, study.workdir,
                               splits, known)
    release_compiled()
    self._done('frontier')
    return points

  def frontier_table(self) -> dict[str, Any]:
    """The frontier as results.json holds it: latent points, the LM, the language models, and
    (with the LM and VRASH) the recommended point, the paper's, and the two goals."""
    lm = next((p for p in self.frontier if p['model'] == 'lm'), None)
    out = {'points': [p for p in self.frontier if p['model'] not in LANGUAGE_MODELS], 'lm': lm,
           'language_models': [p for p in self.frontier if p['model'] in LANGUAGE_MODELS]}
    if lm is not None and 'vrash' in self.study.models:
      out['recommended'] = claims.recommend(out['points'], lm['valid'])
      out['paper_point'] = claims.paper_point(out['points'], lm['valid'])
      out['goals'] = claims.frontier_goals(out['points'], lm['test'])
    return out

  @functools.cached_property
  def by_length_seeds(self) -> dict[str, list[dict[str, dict[str, float]]]]:
    """{model: [test figures per length bucket, per seed]}."""
    study = self.study
    out = {m: [figures_by_length(study.run_dir(m, s), study.splits.test, study.plan.frontier_iw_samples)
               for s in study.seeds_of(m)] for m in study.models}
    release_compiled()
    self._done('figures by length')
    return out

  @functools.cached_property
  def samples_per_seed(self) -> dict[str, dict[str, list[dict[str, float]]]]:
    """{model: {temperature: [melody metrics of its samples, per sampling seed]}}."""
    study, plan, splits = self.study, self.study.plan, self.study.splits
    out = {}
    for m in study.models:
      out[m] = sample_metrics([study.run_dir(m, s) for s in study.seeds_of(m)], plan.temperatures,
                              plan.sample_seeds, study.num_samples, plan.sample_length, splits.test_tracks,
                              splits.training_ngrams)
      self._done(f'samples of {_shown(m)}')
    return out

  @functools.cached_property
  def samples(self) -> dict[str, Any]:
    """{model: {temperature: {metric: mean and 95% interval over seeds}}}."""
    return claims.summarize_samples(self.samples_per_seed)

  @property
  def hottest(self) -> str:
    """The temperature the paper's claims on samples are read at (`claims.read_at`)."""
    return claims.read_at(str(t) for t in self.study.plan.temperatures)

  @functools.cached_property
  def data_cut(self) -> list[note_schema.Track]:
    """The test melodies cut to the samples' length: the data's row of the sample tables."""
    return [t.cropped(self.study.plan.sample_length) for t in self.study.splits.test_tracks]

  @functools.cached_property
  def data_samples(self) -> dict[str, float]:
    splits = self.study.splits
    return melody_metrics.melody_metrics(self.data_cut, splits.test_tracks, splits.training_ngrams)

  @functools.cached_property
  def data_subsets(self) -> list[dict[str, float]]:
    splits = self.study.splits
    return data_subsets(self.data_cut, self.study.num_samples, splits.test_tracks, splits.training_ngrams)

  @functools.cached_property
  def structure(self) -> tuple[dict[str, str], dict[str, Any]]:
    """Recurring patterns where each model is as diverse as the data: (verdict, table)."""
    return structure.matched_diversity_claim(self.samples_per_seed, structure.data_reference(self.data_subsets))

  @functools.cached_property
  def style_probes(self) -> dict[str, list[dict[str, Any]]]:
    """{latent model: [the style probe of each seed's model]} on valid and test melodies."""
    study, out = self.study, {}
    for latent in self.latent_models:
      out[latent] = [style_probe(study.run_dir(latent, s), [study.splits.valid, study.splits.test])
                     for s in study.seeds_of(latent)]
      self._done(f'style probe of {_shown(latent)}')
    return out

  def silhouette(self, model: str) -> float | None:
    """The silhouette by style of the latent map (drawn for VRASH only)."""
    return self.results.get('latent', {}).get('silhouette_by_style') if model == 'vrash' else None

  def table(self) -> dict[str, Any]:
    """What results.json's claims hold besides the plan and the verdicts."""
    out: dict[str, Any] = {'frontier': self.frontier_table()}
    if self.measures_length:
      out['by_length_seeds'] = self.by_length_seeds
      out['by_length'] = {m: {b: mean_figures([f[b] for f in per_seed]) for b in per_seed[0]}
                          for m, per_seed in self.by_length_seeds.items()}
    out.update(data_samples=self.data_samples, data_subsets=self.data_subsets, samples=self.samples,
               structure=self.structure[1])
    for latent, probes in self.style_probes.items():
      out['style_probe' if latent == 'vrash' else f'style_probe_{latent}'] = probes
    return out


def _shown(model: str) -> str:
  return MODEL_SPECS[model].shown_as
