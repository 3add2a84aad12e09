"""`vrash-borrowed`: what a borrowed accelerator needs, packed from the TFRecords alone; and its one
command, which leaves the study's and the suite's files in one folder, also when the study is
cut off at the deadline. The tests' dataset is prepared as the tiny preset prepares one."""
import json
import os

import numpy as np
import pytest

from experiments import borrowed
from vrash_jax import input_pipeline
from vrash_jax.errors import VrashError

SUITE = ['--shapes=8x8x16x1', '--models=lm', '--dtypes=float32', '--peers=eager', '--steps=1', '--repeats=1']


def test_pack_carries_the_tfrecords_alone_and_they_serve_the_preset(tiny_dataset, tmp_path):
  sizes = borrowed.pack(tiny_dataset, str(tmp_path / 'carry'), 'tiny', wheels=())
  data = tmp_path / 'carry' / 'data'
  assert sorted(os.listdir(data)) == ['entropy.png', 'stats.json', 'vrash_midi']  # no _parts, no MIDI
  assert sizes['data'] == borrowed.folder_bytes(str(data)) > 0 and sizes['packages'] == 0 and sizes['code'] > 0
  borrowed.check_prepared(str(data), 'tiny')
  for split in ('train', 'valid', 'test'):
    ours, theirs = (input_pipeline.load_split(d, split, 16) for d in (str(data), tiny_dataset))
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)


def test_pack_refuses_a_dataset_of_another_preset_and_what_does_not_fit(tiny_dataset, tmp_path, monkeypatch):
  with pytest.raises(VrashError, match='prepared for --preset paper'):
    borrowed.pack(tiny_dataset, str(tmp_path / 'a'), 'paper', wheels=())
  monkeypatch.setattr(borrowed, 'LIMIT_BYTES', 2 ** 20)
  with pytest.raises(VrashError, match=r'MiB to carry \(data .* MiB, packages 0.0 MiB, code .* MiB\): a borrowed '
                                       r'machine takes 1 MiB'):
    borrowed.pack(tiny_dataset, str(tmp_path / 'b'), 'tiny', wheels=())


def test_one_command_leaves_the_studys_and_the_suites_files(tiny_dataset, tmp_path):
  out = tmp_path / 'out'
  outcome = borrowed.run_borrowed('tiny', tiny_dataset, str(out), str(tmp_path / 'work'), 600, 120, SUITE)
  assert outcome['study']['status'] == 'finished' and outcome['suite']['status'] == 'finished'
  assert sorted(os.listdir(out)) == ['log.txt', 'reproduce.log', 'results.json', 'results.md', 'suite.json',
                                     'suite.md']
  results = json.loads((out / 'results.json').read_text())
  assert {r['model'] for r in results['runs']} == {'lm', 'vae', 'vrash'}
  suite = json.loads((out / 'suite.json').read_text())
  assert [(r['model'], r['shape'], 'step_s' in r) for r in suite['rows']] == [('lm', [8, 8, 16, 1], True)]
  log = (out / 'log.txt').read_text()
  assert '[5/5] report' in log and '| vrash_jax | LM | 8, 8, 16, 1 |' in log  # both commands' lines
  assert 'study finished' in log.splitlines()[-1]


def test_a_study_past_the_deadline_is_stopped_and_the_suite_still_runs(tiny_dataset, tmp_path):
  out = tmp_path / 'out'
  outcome = borrowed.run_borrowed('tiny', tiny_dataset, str(out), str(tmp_path / 'work'), 63, 60, SUITE)
  assert outcome['study']['status'] == 'stopped at the deadline (3 s)'
  assert outcome['suite']['status'] == 'finished' and 'suite.md' in os.listdir(out)
  assert 'results.json' not in os.listdir(out)
  assert '[vrash-borrowed] deadline: SIGTERM after 3 s' in (out / 'log.txt').read_text()
  with pytest.raises(VrashError, match='--suite_s 60 leaves nothing of --deadline_s 60 to the study'):
    borrowed.run_borrowed('tiny', tiny_dataset, str(out), str(tmp_path / 'work'), 60, 60, SUITE)
