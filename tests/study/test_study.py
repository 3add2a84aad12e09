"""The study object (its runs, its splits loaded once) and the claims registry (which claims a
study judges, on which models, in which order)."""
import dataclasses

import pytest

from experiments.configs import smoke
from vrash_jax import input_pipeline
from vrash_jax.study import claim_registry
from vrash_jax.study.runs import rate_points
from vrash_jax.study.study import ClaimsPlan, Study


def study(workdir='/w', models=('lm', 'vrash'), seeds=(0, 1), **fields):
  return Study('/data', workdir, smoke.get_config, models, seeds, **fields)


def test_a_study_plans_each_models_seeds_then_the_frontiers_runs(tmp_path):
  frontier = rate_points('vrash', (0.0,), seeds=(3,))
  s = study(str(tmp_path), seeds={'lm': (0, 1), 'vrash': (2,)}, plan=ClaimsPlan(frontier=frontier))
  runs = s.planned_runs()
  assert [r.name for r in runs] == ['lm-seed0', 'lm-seed1', 'vrash-seed2', 'vrash-fb0-seed3']
  assert [r.config.seed for r in runs] == [0, 1, 2, 3]
  assert runs[-1].config.free_bits == 0.0 and runs[-2].config.free_bits == smoke.get_config('vrash').free_bits
  assert all(r.remaining_steps == r.config.train_steps for r in runs)  # nothing trained yet
  assert [(p.model, p.seeds) for p in s.default_points()] == [('lm', (0, 1)), ('vrash', (2,))]
  assert s.models == study(models=['lm', 'vrash']).models  # a list from flags reads as a tuple
  with pytest.raises(dataclasses.FrozenInstanceError):
    s.workdir = '/elsewhere'


def test_a_studys_splits_load_once(monkeypatch, tiny_dataset):
  loads = []
  real = input_pipeline.load_split
  monkeypatch.setattr(input_pipeline, 'load_split', lambda d, split, n: loads.append(split) or real(d, split, n))
  s = dataclasses.replace(study(), data_dir=tiny_dataset)
  for _ in range(2):
    assert len(s.splits.test_tracks) == len(s.splits.test['length']) > 0
    assert s.splits.training_ngrams and s.splits.valid['length'].size
  assert sorted(loads) == ['test', 'train', 'valid']
  assert s.splits.max_len == smoke.get_config('lm').max_len


def test_each_claim_is_judged_on_the_models_the_study_has():
  def judged(models):
    return [(c.name, t) for c in claim_registry.CLAIMS for t in c.over(models)]

  assert judged(('lm', 'vae', 'vrash')) == [
      ('beats_the_strongest_language_model', ('vrash',)), ('helps_more_on_longer_melodies', ('lm', 'vrash')),
      ('repeats_less', ('lm', 'vrash')), ('more_macro_structure', ('lm', 'vrash')),
      ('more_structure_at_the_datas_diversity', ()), ('more_diverse_than_the_vae', ('vae', 'vrash')),
      ('separates_styles', ('vrash',))]
  assert len(judged(('lm', 'vae', 'vrash', 'tlm', 'tvrash'))) == 11  # the transformer pair adds 4
  assert judged(('tlm',)) == [('more_structure_at_the_datas_diversity', ())]
  transformers = judged(('tlm', 'tvrash'))  # the pair alone, without the paper's LM and VRASH
  assert ('helps_more_on_longer_melodies', ('tlm', 'tvrash')) in transformers and len(transformers) == 5


def test_a_registered_claim_is_judged_after_the_others_with_what_was_measured(monkeypatch):
  monkeypatch.setattr(claim_registry, 'CLAIMS', [])

  class Measured:  # what a claim reads: here one number per model
    frontier = {'lm': 2.0, 'vrash': 1.5}

  @claim_registry.claim(over=claim_registry.each_pair)
  def lower(measured, language, latent):
    sign = 1 if measured.frontier[latent] < measured.frontier[language] else -1
    return {'claim': f'{latent} below {language}', 'verdict': sign}

  @claim_registry.claim(over=claim_registry.all_of('vae', 'vrash'))
  def never(measured, vae, vrash):
    raise AssertionError('judged without the VAE')

  assert claim_registry.judge(Measured(), ('lm', 'vrash')) == [{'claim': 'vrash below lm', 'verdict': 1}]
  assert [c.name for c in claim_registry.CLAIMS] == ['lower', 'never']
