"""A run whose data, workdir and exports are on gs:// (the test's local GCS server) behaves as one
on a local disk: it trains, stops on a preemption signal and resumes to the same parameters,
evaluates, exports, samples, sets a corrupt checkpoint aside, and refuses a second trainer."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import smoke
from test_reliability import assert_identical, config, final_params, launch, read_until
from vrash_jax import Melodist, checkpoint, evaluation, export, run_log, storage, train


@pytest.fixture(scope='module')
def bucket_data(tiny_dataset, gcs):
  """The tiny prepared dataset, uploaded to the bucket."""
  data = f'{gcs}/data'
  storage.copy_tree(tiny_dataset, data)
  return data


@pytest.fixture(scope='module')
def local_run(tiny_dataset, tmp_path_factory):
  """The reference: the same 8-step run with its data and workdir on the local disk."""
  workdir = str(tmp_path_factory.mktemp('local'))
  train.train_and_evaluate(config(), tiny_dataset, workdir)
  return workdir


@pytest.mark.slow
def test_a_bucket_run_stops_resumes_evaluates_exports_and_samples_like_a_local_one(
    tiny_dataset, bucket_data, bucket_dir, local_run, tmp_path):
  process = launch(bucket_data, bucket_dir)
  read_until(process, '[train] step 3 ')
  process.send_signal(signal.SIGTERM)  # how a pod's worker is told it is preempted
  log = process.communicate(timeout=120)[1]
  assert process.returncode == 0 and 'SIGTERM received: stopped after step' in log, log[-3000:]
  again = launch(bucket_data, bucket_dir)
  log = again.communicate(timeout=300)[1]
  assert again.returncode == 0 and 'resumed from step' in log, log[-3000:]
  assert_identical(final_params(bucket_dir), final_params(local_run))
  assert not storage.path(storage.join(bucket_dir, storage.LOCK_NAME)).exists()
  train_steps = [r['step'] for r in run_log.read_metrics(bucket_dir) if r['split'] == 'train']
  assert train_steps[-1] == 8 and set(train_steps) == set(range(1, 9))

  figures = evaluation.evaluate_checkpoint(bucket_dir, bucket_data, 'test', iw_samples=4)
  assert figures == evaluation.evaluate_checkpoint(local_run, tiny_dataset, 'test', iw_samples=4)

  exported = export.export_workdir(bucket_dir, f'{bucket_dir}-export')
  assert exported == f'{bucket_dir}-export'
  assert json.loads(storage.read_text(f'{exported}/export.json'))['step'] == 8
  reference = Melodist.from_workdir(local_run).sample(3, temperature=0.8, seed=1, length=12)
  for melodist in (Melodist.load(exported), Melodist.from_workdir(bucket_dir)):
    sampled = melodist.sample(3, temperature=0.8, seed=1, length=12)
    assert all((a.pitch_class == b.pitch_class).all() and (a.delay == b.delay).all()
               for a, b in zip(sampled, reference))

  done = subprocess.run([sys.executable, '-m', 'experiments.sample', f'--model={exported}',
                         f'--out_dir={bucket_dir}-samples', '--num=2', '--length=12', '--seed=0'],
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f'wrote 2 MIDI files to {bucket_dir}-samples' in done.stdout
  expected = Melodist.load(exported).sample(2, 1.0, 0, 12, 73, 3)
  for i, track in enumerate(expected):
    local = Melodist.to_midi(track, str(tmp_path / f'{i}.mid'))
    assert storage.path(f'{bucket_dir}-samples/sample_{i:02d}.mid').read_bytes() == open(local, 'rb').read()


def test_a_corrupt_checkpoint_in_a_bucket_is_set_aside_and_the_previous_one_restored(
    bucket_data, bucket_dir, local_run):
  train.train_and_evaluate(config(), bucket_data, bucket_dir)
  latest = storage.path(checkpoint.checkpoint_dir(bucket_dir)) / '8'
  chunks = [f for f in storage.files_under(latest) if f.parent.name == 'd']
  assert chunks
  for chunk in chunks:  # every array store of step 8 cut in half, as an interrupted upload would
    data = chunk.read_bytes()
    chunk.write_bytes(data[:len(data) // 2])
  train.train_and_evaluate(config(), bucket_data, bucket_dir)  # retrains steps 7-8 from step 6
  aside = list((storage.path(bucket_dir) / 'corrupt_checkpoints').iterdir())
  assert [p.name.split('-')[0] for p in aside] == ['8']
  assert_identical(final_params(bucket_dir), final_params(local_run))


def test_a_second_trainer_on_a_bucket_workdir_is_refused(bucket_data, bucket_dir):
  with storage.WorkdirLock(bucket_dir):
    second = launch(bucket_data, bucket_dir)
    err = second.communicate(timeout=120)[1]
  assert second.returncode == 2, err[-3000:]
  assert 'is in use by a training process (pid' in err.strip().splitlines()[-1]
  assert not storage.path(checkpoint.checkpoint_dir(bucket_dir)).exists()


def test_a_missing_bucket_dataset_is_a_clear_error(gcs):
  from vrash_jax import input_pipeline
  from vrash_jax.errors import VrashError
  with pytest.raises(VrashError, match=r"--data_dir 'gs://vrash-test/nothing' does not exist"):
    input_pipeline.load_split(f'{gcs}/nothing', 'train')


def test_prep_writes_a_bucket_dataset_that_reads_as_the_local_one(tiny_dataset, gcs):
  from data_prep import prep
  from data_prep.process import PrepOptions
  from vrash_jax import input_pipeline
  midi = os.path.join(os.path.dirname(tiny_dataset), 'midi')
  stats = prep.prepare(midi, f'{gcs}/prepared', PrepOptions(valid_fraction=0.25, test_fraction=0.25,
                                                            max_len=16), workers=1)
  assert stats['dataset']['dir'].startswith(f'{gcs}/prepared/')
  assert json.loads(storage.read_text(f'{gcs}/prepared/stats.json')) == stats
  for split in ('train', 'valid', 'test'):
    local, remote = (input_pipeline.load_split(d, split, 16) for d in (tiny_dataset, f'{gcs}/prepared'))
    for key in local:
      np.testing.assert_array_equal(np.asarray(local[key]), np.asarray(remote[key]))


def test_what_writes_or_reads_local_files_only_refuses_a_bucket_by_name(gcs):
  from vrash_jax.errors import VrashError
  from vrash_jax.report import render
  from vrash_jax.study import sweep
  from vrash_jax.study.study import Study
  local_only = r"must be a local folder, not 'gs://vrash-test/sweep': MIDI, figures and audio are written with local"
  with pytest.raises(VrashError, match="the report's folder " + local_only):
    render.write_report({}, f'{gcs}/sweep')
  with pytest.raises(VrashError, match="a sweep's --workdir must be a local folder, not 'gs://vrash-test/sweep': "
                                       'its MIDI files are written with local tools; give it a local folder'):
    sweep.run_sweep(Study(f'{gcs}/data', f'{gcs}/sweep', smoke.get_config, ('vrash',), (0,)))
  with pytest.raises(VrashError, match='gs://vrash-test/sweep/results.json does not exist'):
    render.rebuild(f'{gcs}/sweep')  # a bucket's report is rendered in a local folder, then uploaded
  from data_prep import corpus, prep
  with pytest.raises(VrashError, match=r"--out_dir must be a local folder, not 'gs://vrash-test/midi'"):
    corpus.build_corpus(f'{gcs}/midi')
  with pytest.raises(VrashError, match=r"--midi_dir must be a local folder, not 'gs://vrash-test/midi'"):
    prep.prepare(f'{gcs}/midi', f'{gcs}/data')
