"""The sweep on tiny configs writes results.json, results.md, the figures and results.html."""
import json
import math
import re
import os
import shutil

import numpy as np
import pytest

from experiments.configs import smoke
from test_html_report import parse_page
from vrash_jax import audio, notes, report, study, sweep
from vrash_jax.errors import VrashError


def tiny(model):
  config = smoke.get_config(model)
  config.train_steps, config.log_every, config.eval_every, config.checkpoint_every = 2, 2, 0, 2
  return config


@pytest.fixture(scope='module')
def swept(tiny_dataset, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('sweep'))
  plan = sweep.ClaimsPlan(frontier=(study.Point('vrash', 'fb0', 'rate', (('free_bits', 0.0),)),),
                          temperatures=(0.5, 1.0), sample_seeds=2, sample_length=12, frontier_iw_samples=2,
                          valid_iw_samples=3)
  results = sweep.run_sweep(tiny_dataset, workdir, tiny, ['lm', 'vae', 'vrash'], [0, 1],
                            iw_samples=2, num_samples=4, plan=plan)
  return workdir, results


def test_sweep_writes_every_result_with_finite_numbers(swept):
  workdir, results = swept
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
  assert sorted(os.listdir(os.path.join(workdir, 'samples', 'vrash'))) == [
      f'sample_{i:02d}.{ext}' for i in range(4) for ext in ('mid', 'png', 'wav')]
  assert on_disk['latent']['points'] == results['latent']['points'] > 0
  markdown = open(os.path.join(workdir, 'results.md')).read()
  assert '| VRASH |' in markdown and '2.11' in markdown and '## Target' in markdown


def test_sweep_measures_the_frontier_and_every_claim(swept):
  workdir, results = swept
  claims = json.load(open(os.path.join(workdir, 'results.json')))['claims']
  points = {(p['model'], p['name']): p for p in claims['frontier']['points']}
  assert set(points) == {('vae', 'default'), ('vrash', 'default'), ('vrash', 'fb0')}
  assert points['vrash', 'fb0']['free_bits'] == 0.0 and points['vrash', 'default']['free_bits'] == 0.5
  assert os.path.isdir(os.path.join(workdir, 'runs', 'vrash-fb0-seed0'))
  for p in points.values():
    assert all(np.isfinite(p[split][k]) for split in ('valid', 'test') for k in ('ce_total', 'kl', 'nll_iw'))
  assert claims['frontier']['recommended'] in {'default', 'fb0'}
  assert [v['verdict'] in ('holds', 'does not hold', 'inconclusive') for v in claims['verdicts']] == [True] * 5
  assert set(claims['samples']) == {'lm', 'vae', 'vrash'}
  assert set(claims['samples']['lm']) == {'0.5', '1.0'} and claims['samples']['lm']['1.0']['longest_run']['n'] == 2
  # every test melody in exactly one length bucket
  assert sum(b['melodies'] for b in claims['by_length']['lm'].values()) == results['latent']['points']
  for name in ('frontier.png', 'curves.png'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  markdown = open(os.path.join(workdir, 'results.md')).read()
  assert "## The paper's claims" in markdown and '## Rate-distortion frontier' in markdown


def test_results_page_shows_the_same_numbers_and_only_files_that_exist(swept):
  workdir, _ = swept
  results = json.load(open(os.path.join(workdir, 'results.json')))
  page = parse_page(os.path.join(workdir, 'results.html'))
  for link in page.links:
    assert '://' not in link and not os.path.isabs(link), link
    assert os.path.isfile(os.path.join(workdir, link)), link
  assert all(img.get('alt') for img in page.images)
  assert {'figure5.png', 'figure6.png', 'entropy.png'} <= {img['src'] for img in page.images}
  rows = {tuple(row[:2]): row for row in page.rows}
  pm = lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}"
  for model, stats in results['models'].items():
    name = report.NAMES[model]
    row = next(r for r in page.rows if r[0] == name and len(r) == 9 and '±' in r[1])
    assert row[1:8] == [pm(stats[k]) for k in ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl',
                                               'nll_bound', 'nll_iw')]
    metrics_row = next(r for r in page.rows if r[0] == name and len(r) == 1 + len(results['data'])
                       and all(re.fullmatch(r'-?\d+\.\d{3}', cell) for cell in r[1:]))  # numbers only
    assert metrics_row[1:] == [f'{v:.3f}' for v in results['samples'][model].values()]
  for run in results['runs']:
    row = rows[(report.NAMES[run['model']], str(run['seed']))]
    assert row[2:] == [str(run['steps']), f"{run['train_wall_s']:.0f}", f"{run['ce_total']:.3f}",
                       f"{run['kl']:.2f}", f"{run['nll_iw']:.3f}"]
  listening = results['listening']
  shown = sum(map(len, listening['samples'].values())) + sum(
      len(e['path']) + 2 for e in listening['interpolations'].values())
  assert set(listening['interpolations']) == {'vae', 'vrash'} and len(page.audio) == shown
  for wav in page.audio:
    samples, rate = audio.read_wav(os.path.join(workdir, wav))
    assert len(samples) > rate * audio.TAIL_S and np.abs(samples).max() > 0.5


def test_report_rebuilds_the_page_from_results_json(swept, tmp_path):
  workdir, _ = swept
  page = os.path.join(workdir, 'results.html')
  before = open(page).read()
  wav = parse_page(page).audio[0]
  os.remove(page)
  os.remove(os.path.join(workdir, wav))
  assert report.rebuild(workdir) == page
  assert open(page).read() == before and os.path.isfile(os.path.join(workdir, wav))
  shutil.copy(os.path.join(workdir, 'results.json'), tmp_path)
  with pytest.raises(VrashError, match='lacks .* MIDI files that results.json names'):
    report.rebuild(str(tmp_path))


def test_report_launcher_prints_the_page_or_one_error_line(swept, tmp_path):
  import subprocess
  import sys
  run = lambda workdir: subprocess.run([sys.executable, '-m', 'experiments.report', f'--workdir={workdir}'],
                                       capture_output=True, text=True, timeout=120)
  ok = run(swept[0])
  assert ok.returncode == 0 and ok.stdout.strip() == f'results page: {swept[0]}/results.html'
  missing = run(tmp_path)
  assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
      f'error: {tmp_path}/results.json does not exist: run `vrash-sweep` or `vrash-reproduce` there first']


def test_a_run_stopped_by_a_signal_stops_the_sweep(monkeypatch, tmp_path):
  outcome = {'step': 3, 'valid': {}, 'stopped_by': 'SIGTERM'}
  monkeypatch.setattr(study.train, 'train_and_evaluate', lambda config, data, workdir: outcome)
  with pytest.raises(VrashError, match=r'^SIGTERM received: .* stopped after step 3 with a '
                                       r'checkpoint; run the same command to resume$'):
    study.train_run(tiny('lm'), 'unused', str(tmp_path))
  outcome['stopped_by'] = 'saturation'  # a finished run
  assert study.train_run(tiny('lm'), 'unused', str(tmp_path)) >= 0
