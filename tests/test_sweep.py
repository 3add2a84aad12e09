"""The sweep on tiny configs writes results.json, results.md and the figures."""
import json
import math
import os

import numpy as np

from experiments.configs import smoke
from vrash_jax import notes, report, sweep


def tiny(model):
  config = smoke.get_config(model)
  config.train_steps, config.log_every, config.eval_every, config.checkpoint_every = 2, 2, 0, 2
  return config


def test_sweep_writes_every_result_with_finite_numbers(tiny_dataset, tmp_path):
  workdir = str(tmp_path)
  results = sweep.run_sweep(tiny_dataset, workdir, tiny, ['lm', 'vae', 'vrash'], [0, 1],
                            iw_samples=2, num_samples=4)
  for name in ('results.json', 'results.md', 'figure5.png', 'figure6.png'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  on_disk = json.load(open(os.path.join(workdir, 'results.json')))
  assert set(on_disk['models']) == {'lm', 'vae', 'vrash'}
  for stats in on_disk['models'].values():
    assert stats['seeds'] == 2
    for key in sweep.FIGURES:
      assert np.isfinite(stats[key]['mean']) and np.isfinite(stats[key]['std'])
  assert len(on_disk['runs']) == 6 and all(r['steps'] == 2 for r in on_disk['runs'])
  uniform = sum(math.log(n) for n in notes.VOCAB_SIZES.values())
  for model, figures in on_disk['untrained'].items():
    assert abs(figures['ce_total'] - uniform) < 0.3, (model, figures['ce_total'], uniform)
  assert set(on_disk['samples']) == {'lm', 'vae', 'vrash'} and 'repeated_note_rate' in on_disk['data']
  assert len(os.listdir(os.path.join(workdir, 'samples', 'vrash'))) == 4
  assert on_disk['latent']['points'] == results['latent']['points'] > 0
  markdown = open(os.path.join(workdir, 'results.md')).read()
  assert '| VRASH |' in markdown and '2.11' in markdown and '## Target' in markdown


def test_collection_groups_merge_numbered_essen_files():
  assert report.collection_group('essen/han1') == 'essen/han'
  assert report.collection_group('essen/ballad80') == 'essen/ballad'
  assert report.collection_group('ryans/AcaciaReel') == 'ryans'
  assert report.collection_group('.') == '.'
