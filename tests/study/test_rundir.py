"""A run's folder (`RunDir`), on a disk and in a bucket alike: run.json written whole and read
back typed, sittings added up, the step its checkpoints reached, its logged metrics, and a
clear error for a run.json that is not one."""
import json
import os

import pytest

from vrash_jax import run_log, storage
from vrash_jax.errors import VrashError
from vrash_jax.study.rundir import RECORD, RunDir, RunRecord, run_path
from vrash_jax.train import SATURATION


@pytest.fixture(params=['local', 'gs'])
def where(request, tmp_path):
  """A fresh workdir on the local disk, or in the test server's bucket."""
  return str(tmp_path) if request.param == 'local' else request.getfixturevalue('bucket_dir')


def outcome(step, steps_run, stopped_by=None, **seconds):
  return {'step': step, 'steps_run': steps_run, 'stopped_by': stopped_by, 'seconds': seconds, 'valid': {}}


def test_a_record_adds_up_sittings_and_round_trips_through_run_json(where):
  folder = RunDir(run_path(where, 'vrash-fb0.5', 1))
  assert folder.name == 'vrash-fb0.5-seed1' and folder.path == f'{where}/runs/vrash-fb0.5-seed1'
  assert folder.record() == RunRecord() and folder.reached_step() == 0 and not folder.saturated()
  first = folder.record().after(outcome(4, 4, 'SIGTERM', compilation=2.0, total=5.0), 6.0, ['vrash-fb0.5-seed1', 'x'])
  folder.write(first)
  assert json.loads(storage.read_text(storage.join(folder.path, RECORD))) == {
      'train_wall_s': 6.0, 'seconds': {'compilation': 2.0, 'total': 5.0}, 'step': 4, 'stopped_by': 'SIGTERM',
      'group': ['vrash-fb0.5-seed1', 'x']}
  second = folder.record().after(outcome(8, 4, SATURATION, total=3.0), 4.0, ['vrash-fb0.5-seed1'])
  folder.write(second)
  assert folder.record() == RunRecord(10.0, {'compilation': 2.0, 'total': 8.0}, 8, SATURATION, ['vrash-fb0.5-seed1'])
  assert folder.saturated()
  idle = folder.record().after(outcome(8, 0, SATURATION, total=0.5), 9.0, ['other'])  # a sitting with nothing to do
  assert (idle.train_wall_s, idle.group, idle.seconds['total']) == (10.0, ['vrash-fb0.5-seed1'], 8.5)


def test_the_step_reached_is_the_newest_finished_checkpoint_and_metrics_come_by_split(where):
  folder = RunDir(run_path(where, 'lm', 0))
  for step in ('4', '8', '12.orbax-checkpoint-tmp-3'):  # a save cut short is no step
    storage.write_text(storage.join(folder.path, 'checkpoints', step, 'marker'), '')
  assert folder.reached_step() == 8
  writer = run_log.MetricWriter(folder.path)
  for step, split in ((1, 'train'), (2, 'valid'), (3, 'train')):
    writer.write(step, split, {'ce_total': float(step)})
  writer.close()
  assert [r['step'] for r in folder.metrics('train')] == [1, 3]
  assert [(r['step'], r['ce_total']) for r in folder.metrics('valid')] == [(2, 2.0)]


def test_a_run_json_that_is_not_a_record_is_a_clear_error(tmp_path):
  folder = RunDir(run_path(str(tmp_path), 'lm', 0))
  os.makedirs(folder.path)
  for text in ('{"train_wall_s": 1', '[1, 2]'):
    storage.write_text(os.path.join(folder.path, RECORD), text)
    with pytest.raises(VrashError, match=r'run\.json is not a run record .*; move it aside to train the run again'):
      folder.record()
