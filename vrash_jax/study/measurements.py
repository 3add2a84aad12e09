"""The measurements behind the paper's claims that need trained models (`ClaimsPlan` says which):
the rate-distortion frontier's runs evaluated over their seeds, figures by melody length, samples
at several temperatures and seeds, and posterior means for the style probe and the latent map.
`claims` turns them into verdicts.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from vrash_jax import evaluation, input_pipeline
from vrash_jax import notes as note_schema
from vrash_jax.config_rules import LANGUAGE_MODELS, PAIRS
from vrash_jax.melodist import Melodist
from vrash_jax.study import claims, melody_metrics, structure
from vrash_jax.study.rundir import RunDir, run_path
from vrash_jax.study.runs import ConfigFor, Point, Seeds, release_compiled, seeds_of
from vrash_jax.study.stages import Stages


def subset(arrays: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
  """The examples `rows` of a loaded split (arrays and str lists alike)."""
  return {k: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows] for k, v in arrays.items()}


@dataclasses.dataclass(frozen=True)
class ClaimsPlan:
  """What a sweep measures beyond the comparison (the paper's claims; see `claims`)."""
  frontier: tuple[Point, ...] = ()  # extra runs at other rates or with other techniques
  # Of the repetition/structure/diversity samples: a curve, along which `structure` finds where a
  # model's diversity is the data's.
  temperatures: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 1.0, 1.2)
  sample_seeds: int = 3  # sampling seeds per temperature (one per trained seed where there are)
  sample_length: int = 64  # notes per sample; the data's row uses test melodies cut to this
  frontier_iw_samples: int = 64  # K of the importance-weighted bound of test frontier and length figures
  valid_iw_samples: int = 16  # K of the valid bound that picks the recommended point


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


def measure_claims(plan: ClaimsPlan, data_dir: str, workdir: str, config_for: ConfigFor, models: Sequence[str],
                   seeds: Seeds, num_samples: int, results: dict[str, Any], test_arrays: dict,
                   test_tracks: list[note_schema.Track], training_ngrams: set, stages: Stages | None = None
                   ) -> dict[str, Any]:
  """The frontier, figures by length, samples by temperature, the style probe, and verdicts;
  each part said done on `stages`."""
  out: dict[str, Any] = {'plan': dataclasses.asdict(plan)}
  k = plan.frontier_iw_samples
  latent_models = [latent for _, latent in PAIRS if latent in models]
  parts = ['frontier', 'figures by length', *(f'samples of {claims.MODEL_NAMES[m]}' for m in models),
           *(f'style probe of {claims.MODEL_NAMES[m]}' for m in latent_models)]
  done = functools.partial(_part_done, stages, parts)
  valid_arrays = input_pipeline.load_split(data_dir, 'valid', config_for(models[0]).max_len)
  splits = {'valid': (valid_arrays, plan.valid_iw_samples), 'test': (test_arrays, k)}
  defaults = [Point(m, 'default', 'preset config', seeds=tuple(seeds_of(seeds, m))) for m in models]
  known = ({(run_path(workdir, r['model'], r['seed']), 'test'): {f: v for f, v in r.items() if f not in RUN_FIELDS}
            for r in results['runs']} if results.get('iw_samples') == k else {})
  points = evaluate_frontier(defaults + list(plan.frontier), config_for, workdir, splits, known)
  release_compiled()
  done('frontier')
  lm = next((p for p in points if p['model'] == 'lm'), None)
  out['frontier'] = {'points': [p for p in points if p['model'] not in LANGUAGE_MODELS], 'lm': lm,
                     'language_models': [p for p in points if p['model'] in LANGUAGE_MODELS]}
  verdicts = [claims.beats_strongest_lm_claim(points, m) for m in latent_models]
  if lm is not None and 'vrash' in models:
    frontier = out['frontier']
    frontier['recommended'] = claims.recommend(frontier['points'], lm['valid'])
    frontier['paper_point'] = claims.paper_point(frontier['points'], lm['valid'])
    frontier['goals'] = claims.frontier_goals(frontier['points'], lm['test'])
    out['by_length_seeds'] = {m: [figures_by_length(run_path(workdir, m, s), test_arrays, k)
                                  for s in seeds_of(seeds, m)] for m in models}
    out['by_length'] = {m: {b: mean_figures([f[b] for f in per_seed]) for b in per_seed[0]}
                        for m, per_seed in out['by_length_seeds'].items()}
    verdicts += [claims.length_claim(out['by_length_seeds'], language, latent)
                 for language, latent in PAIRS if {language, latent} <= set(models)]
    release_compiled()
  done('figures by length')
  cut = [t.cropped(plan.sample_length) for t in test_tracks]
  out['data_samples'] = melody_metrics.melody_metrics(cut, test_tracks, training_ngrams)
  out['data_subsets'] = data_subsets(cut, num_samples, test_tracks, training_ngrams)
  per_seed = {}
  for m in models:
    per_seed[m] = sample_metrics([run_path(workdir, m, s) for s in seeds_of(seeds, m)], plan.temperatures,
                                 plan.sample_seeds, num_samples, plan.sample_length, test_tracks, training_ngrams)
    done(f'samples of {claims.MODEL_NAMES[m]}')
  out['samples'] = claims.summarize_samples(per_seed)
  # The paper's claims on samples are read at T=1 (the model's own distribution) where sampled.
  hottest = '1.0' if 1.0 in plan.temperatures else str(max(plan.temperatures))
  verdicts += [claims.repetition_claim(out['samples'], language, latent)
               for language, latent in PAIRS if {language, latent} <= set(models)]
  if {'lm', 'vrash'} <= set(models):
    verdicts.append(claims.structure_claim(out['samples'], out['data_samples'], hottest))
  data = structure.data_reference(out['data_subsets'])
  structure_verdict, out['structure'] = structure.matched_diversity_claim(per_seed, data)
  verdicts.append(structure_verdict)
  if {'vae', 'vrash'} <= set(models):
    verdicts.append(claims.diversity_claim(out['samples'], hottest))
  for latent in latent_models:
    probes = [style_probe(run_path(workdir, latent, s), [valid_arrays, test_arrays]) for s in seeds_of(seeds, latent)]
    out['style_probe' if latent == 'vrash' else f'style_probe_{latent}'] = probes
    silhouette = results.get('latent', {}).get('silhouette_by_style') if latent == 'vrash' else None
    verdicts.append(claims.style_claim(probes, silhouette, latent))
    done(f'style probe of {claims.MODEL_NAMES[latent]}')
  out['verdicts'] = verdicts
  release_compiled()
  return out


def _part_done(stages: Stages | None, parts: Sequence[str], what: str) -> None:
  if stages is not None:
    stages.done(parts.index(what) + 1, len(parts), what)
