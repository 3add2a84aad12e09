"""The sweep on tiny configs: results.json with every figure, the frontier and every claim."""
import json
import math
import os

import numpy as np
import pytest

import tiny_sweep
from vrash_jax import notes
from vrash_jax.errors import VrashError
from vrash_jax.study import runs, sweep


def test_sweep_writes_every_result_with_finite_numbers(swept):
  workdir, results = swept
  on_disk = json.load(open(os.path.join(workdir, 'results.json')))
  assert set(on_disk['models']) == {'lm', 'vae', 'vrash', 'tlm', 'tvrash'}
  for stats in on_disk['models'].values():
    assert stats['seeds'] == 2
    for key in sweep.FIGURES:
      assert np.isfinite(stats[key]['mean']) and np.isfinite(stats[key]['std'])
  assert len(on_disk['runs']) == 10 and all(r['steps'] == 2 for r in on_disk['runs'])
  uniform = sum(math.log(n) for n in notes.VOCAB_SIZES.values())
  for model, figures in on_disk['untrained'].items():
    if model in ('tlm', 'tvrash'):  # unit-variance LayerNorm outputs feed the heads: confident at random
      assert uniform < figures['ce_total'] < uniform + 2.0, (model, figures['ce_total'], uniform)
    else:  # an RHN's random-init outputs are small: near-uniform predictions
      assert abs(figures['ce_total'] - uniform) < 0.3, (model, figures['ce_total'], uniform)
  assert set(on_disk['samples']) == {'lm', 'vae', 'vrash', 'tlm', 'tvrash'} and 'repeated_note_rate' in on_disk['data']
  assert {f'sample_{i:02d}.mid' for i in range(4)} <= set(os.listdir(os.path.join(workdir, 'samples', 'tlm')))
  assert 'tvrash' in on_disk['listening']['interpolations'] and 'tlm' not in on_disk['listening']['interpolations']
  assert {f'sample_{i:02d}.mid' for i in range(4)} <= set(os.listdir(os.path.join(workdir, 'samples', 'vrash')))
  latent = on_disk['latent']
  assert latent['points'] == results['latent']['points'] == len(latent['tsne']['xy']) > 0
  assert sorted(set(latent['tsne']['style'])) == sorted(latent['styles'])


def test_sweep_measures_the_frontier_and_every_claim(swept):
  workdir, results = swept
  claims = json.load(open(os.path.join(workdir, 'results.json')))['claims']
  points = {(p['model'], p['name']): p for p in claims['frontier']['points']}
  assert set(points) == {('vae', 'default'), ('vrash', 'default'), ('tvrash', 'default'), ('vrash', 'fb0')}
  assert [p['model'] for p in claims['frontier']['language_models']] == ['lm', 'tlm']
  assert points['vrash', 'fb0']['free_bits'] == 0.0 and points['vrash', 'default']['free_bits'] == 0.5
  assert points['vrash', 'fb0']['seeds'] == [0, 1] and points['vae', 'default']['seeds'] == [0, 1]
  assert [r['seed'] for r in points['vrash', 'fb0']['per_seed']] == [0, 1]
  assert points['vrash', 'fb0']['test']['ce_total'] == pytest.approx(
      np.mean([r['test']['ce_total'] for r in points['vrash', 'fb0']['per_seed']]))
  assert os.path.isdir(os.path.join(workdir, 'runs', 'vrash-fb0-seed1'))
  for p in points.values():
    assert all(np.isfinite(p[split][k]) for split in ('valid', 'test') for k in ('ce_total', 'kl', 'nll_iw'))
  assert claims['frontier']['recommended'] in {'default', 'fb0'}
  verdicts = {v['claim']: v['verdict'] for v in claims['verdicts']}
  assert set(verdicts.values()) <= {'holds', 'does not hold', 'inconclusive'} and len(verdicts) == 11
  assert any(c.startswith('Transformer VRASH beats the strongest language model') for c in verdicts)
  assert any(c.startswith('Sampled Transformer LM melodies repeat notes') for c in verdicts)
  assert any(c.endswith(': Transformer VRASH against Transformer LM') for c in verdicts)
  assert any(c.endswith('(Fig. 6): Transformer VRASH') for c in verdicts)
  assert set(claims['structure']) == {'lm', 'vae', 'vrash', 'tlm', 'tvrash'}
  assert all(s['seeds'] == 2 for s in claims['structure'].values()) and len(claims['data_subsets']) == 5
  assert set(claims['samples']) == {'lm', 'vae', 'vrash', 'tlm', 'tvrash'}
  assert set(claims['samples']['lm']) == {'0.5', '1.0'} and claims['samples']['lm']['1.0']['longest_run']['n'] == 2
  # every test melody in exactly one length bucket
  assert sum(b['melodies'] for b in claims['by_length']['lm'].values()) == results['latent']['points']


def test_a_run_stopped_by_a_signal_stops_the_sweep(monkeypatch, tmp_path):
  outcome = {'step': 3, 'valid': {}, 'stopped_by': 'SIGTERM', 'steps_run': 3, 'seconds': {'total': 1.0}}
  monkeypatch.setattr(runs.train, 'train_runs', lambda configs, data, workdirs: [outcome])
  with pytest.raises(VrashError, match=r'^SIGTERM received: .* stopped after step 3 with a '
                                       r'checkpoint; run the same command to resume$'):
    runs.train_run(tiny_sweep.config('lm'), 'unused', str(tmp_path))
  outcome['stopped_by'] = 'saturation'  # a finished run
  assert runs.train_run(tiny_sweep.config('lm'), 'unused', str(tmp_path)).train_wall_s >= 0
