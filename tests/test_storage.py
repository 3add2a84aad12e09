"""Our own files on a disk and in a bucket alike: whole-file writes, moving aside, staged uploads,
the workdir lock (a flock; an object with a generation precondition and a heartbeat), and the
metrics log (appended on a disk, replaced whole in a bucket)."""
import json
import os

import pytest

from vrash_jax import run_log, storage
from vrash_jax.errors import VrashError


@pytest.fixture(params=['local', 'gs'])
def where(request, tmp_path):
  """A fresh folder on the local disk, or in the test server's bucket."""
  return str(tmp_path) if request.param == 'local' else request.getfixturevalue('bucket_dir')


def test_files_are_written_whole_read_back_moved_aside_and_staged(where):
  storage.write_text(storage.join(where, 'run', 'a.json'), '{"x": 1}')
  storage.write_text(storage.join(where, 'run', 'sub', 'b.txt'), 'old')
  storage.write_text(storage.join(where, 'run', 'sub', 'b.txt'), 'new')
  assert storage.read_text(storage.join(where, 'run', 'sub', 'b.txt')) == 'new'
  assert storage.modified(storage.join(where, 'run', 'a.json')) > 0

  storage.move_aside(storage.join(where, 'run'), storage.join(where, 'aside', 'run-1'))
  assert not storage.path(storage.join(where, 'run')).exists()
  moved = sorted(os.fspath(p)[len(storage.join(where, 'aside', 'run-1')) + 1:]
                 for p in storage.files_under(storage.join(where, 'aside', 'run-1')))
  assert moved == ['a.json', 'sub/b.txt']
  assert storage.read_text(storage.join(where, 'aside', 'run-1', 'a.json')) == '{"x": 1}'

  with storage.staged(storage.join(where, 'out')) as folder:
    assert os.path.isdir(folder)
    with open(os.path.join(folder, 'x.mid'), 'wb') as f:
      f.write(b'MThd')
  assert storage.path(storage.join(where, 'out', 'x.mid')).read_bytes() == b'MThd'


def test_a_local_path_is_made_absolute_and_a_url_is_kept():
  assert storage.join('gs://b/runs', 'x', 'checkpoints') == 'gs://b/runs/x/checkpoints'
  assert storage.join('relative', 'x') == os.path.join(os.getcwd(), 'relative', 'x')
  assert storage.is_remote('gs://b') and not storage.is_remote('/tmp/b')


def test_a_workdir_lock_refuses_a_second_holder_until_released(where):
  with storage.WorkdirLock(where):
    with pytest.raises(VrashError, match=r'is in use by a training process \(pid \d+ on '):
      storage.WorkdirLock(where).__enter__()
  with storage.WorkdirLock(where):  # released: free again
    pass


def test_a_bucket_lock_is_an_object_deleted_on_release(bucket_dir):
  lock_object = storage.path(storage.join(bucket_dir, storage.LOCK_NAME))
  with storage.WorkdirLock(bucket_dir):
    assert json.loads(lock_object.read_text())['owner'].startswith(f'pid {os.getpid()} on ')
  assert not lock_object.exists()


def test_a_killed_trainers_bucket_lock_is_taken_over_once_stale_and_the_old_owner_stops(bucket_dir):
  killed = storage.WorkdirLock(bucket_dir, heartbeat_s=3600).__enter__()
  killed._lock._stop.set()  # its process died: no more heartbeats, no release
  with pytest.raises(VrashError, match=r'heartbeat \d+ s ago.*is taken over'):
    storage.WorkdirLock(bucket_dir, stale_after_s=3600).__enter__()
  with storage.WorkdirLock(bucket_dir, stale_after_s=0) as successor:
    # Had the old owner only stalled, its next heartbeat finds the lock taken and it stops writing.
    assert not killed._lock.beat()
    with pytest.raises(VrashError, match='was taken over by another process'):
      killed.check()
    successor.check()
    assert successor._lock.beat()


def test_the_metrics_log_keeps_every_record_and_a_resumed_run_adds_to_it(where):
  writer = run_log.MetricWriter(where, flush_every_s=3600)
  writer.write(1, 'train', {'loss': 2.0})
  if storage.is_remote(where):  # an object is replaced whole: at an evaluation, or after flush_every_s
    assert run_log.read_metrics(where) == []
  writer.write(1, 'valid', {'nll_bound': 3.0})
  assert [r['split'] for r in run_log.read_metrics(where)] == ['train', 'valid']
  writer.write(2, 'train', {'loss': 1.5})
  writer.close()
  resumed = run_log.MetricWriter(where)
  resumed.write(3, 'train', {'loss': 1.0})
  resumed.close()
  assert [(r['step'], r['split']) for r in run_log.read_metrics(where)] == [
      (1, 'train'), (1, 'valid'), (2, 'train'), (3, 'train')]


def test_a_bucket_path_without_a_gcs_client_or_another_scheme_is_a_clear_error(monkeypatch):
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'gcsfs' else real(name, *a))
  storage._require_client.cache_clear()
  try:
    with pytest.raises(VrashError, match=r'gs:// paths need gcsfs and google-cloud-storage: pip install'):
      storage.path('gs://b/x')
  finally:
    storage._require_client.cache_clear()
  with pytest.raises(VrashError, match=r's3:// paths are not supported'):
    storage.path('s3://b/x')


def test_a_trainer_whose_lock_was_taken_over_writes_no_further_checkpoint(tiny_dataset, tmp_path, monkeypatch):
  from test_reliability import config
  from vrash_jax import checkpoint, train

  def taken_over(self):
    raise VrashError('the lock was taken over by another process')
  monkeypatch.setattr(storage.WorkdirLock, 'check', taken_over)
  with pytest.raises(VrashError, match='taken over'):
    train.train_and_evaluate(config(), tiny_dataset, str(tmp_path))
  assert checkpoint.Checkpoints(str(tmp_path), read_only=True).all_steps() == []
