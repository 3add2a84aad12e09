"""Training survives signals, kill -9, corrupt checkpoints, NaNs, a second process, a full disk."""
import errno
import json
import os
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import checkpoint, evaluation, storage, train
from vrash_jax.errors import VrashError

OVERRIDES = {'checkpoint_every': 2, 'log_every': 1, 'eval_every': 0}


def config(**extra):
  c = smoke.get_config('vrash')
  c.update_from_flattened_dict({**OVERRIDES, **extra})
  return c


def launch(data_dir, workdir, **extra):
  """`vrash-train` as a real process, its absl log lines readable from stderr."""
  flags = [f'--config.{k}={v}' for k, v in {**OVERRIDES, **extra}.items()]
  return subprocess.Popen([sys.executable, '-m', 'experiments.train',
                           '--config=experiments/configs/smoke.py:vrash', f'--data_dir={data_dir}',
                           f'--workdir={workdir}', *flags],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def read_until(process, marker):
  """Blocks on the process's stderr until a line contains `marker`; returns what was read."""
  seen = []
  for line in process.stderr:
    seen.append(line)
    if marker in line:
      return ''.join(seen)
  raise AssertionError(f'process ended before {marker!r}:\n' + ''.join(seen[-30:]))


def final_params(workdir):
  return jax.device_get(evaluation.restore_for_inference(workdir)[1].params)


def assert_identical(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope='module')
def straight(tiny_dataset, tmp_path_factory):
  """An uninterrupted 8-step run: the reference every recovered run must equal bit for bit."""
  workdir = str(tmp_path_factory.mktemp('straight'))
  train.train_and_evaluate(config(), tiny_dataset, workdir)
  return final_params(workdir)


@pytest.mark.slow
def test_stop_signal_checkpoints_the_current_step_and_exits_cleanly(tiny_dataset, tmp_path):
  """SIGTERM (a preemption); SIGINT is caught by the same handler (tests/study/test_lanes.py)."""
  sig = signal.SIGTERM
  process = launch(tiny_dataset, tmp_path, train_steps=100000, checkpoint_every=100000)
  read_until(process, '[train] step 3 ')
  process.send_signal(sig)
  rest = process.communicate(timeout=120)[1]
  assert process.returncode == 0
  assert f'{sig.name} received: stopped after step' in rest and 'run the same command to resume' in rest
  stopped = checkpoint.Checkpoints(str(tmp_path), read_only=True).latest_step()
  assert stopped >= 3
  train.train_and_evaluate(config(train_steps=stopped + 2), tiny_dataset, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert [r['step'] for r in records if r['split'] == 'train'][-2:] == [stopped + 1, stopped + 2]


@pytest.mark.slow
def test_kill_9_then_the_same_command_ends_bit_identical(tiny_dataset, tmp_path, straight):
  process = launch(tiny_dataset, tmp_path)
  read_until(process, '[train] step 5 ')
  process.kill()
  process.wait()
  # Checkpoints every 2 steps, written while training goes on: the one of step 4 may still have
  # been in flight at step 5, never the one before it.
  assert checkpoint.Checkpoints(str(tmp_path), read_only=True).latest_step() in (2, 4, 6)
  again = launch(tiny_dataset, tmp_path)
  log = again.communicate(timeout=300)[1]
  assert again.returncode == 0 and 'resumed from step' in log
  assert_identical(final_params(str(tmp_path)), straight)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tiny_dataset, tmp_path, straight):
  workdir = str(tmp_path)
  train.train_and_evaluate(config(), tiny_dataset, workdir)
  latest = os.path.join(checkpoint.checkpoint_dir(workdir), '8')
  # Orbax keeps array data in several `d/` stores (per process and merged); which one a restore
  # reads is its business, so every one of them is cut in half.
  chunks = [os.path.join(r, f) for r, _, fs in os.walk(latest) if os.path.basename(r) == 'd' for f in fs]
  assert chunks
  for chunk in chunks:
    with open(chunk, 'r+b') as f:
      f.truncate(os.path.getsize(chunk) // 2)
  train.train_and_evaluate(config(), tiny_dataset, workdir)  # retrains steps 7-8 from step 6
  assert os.listdir(os.path.join(workdir, 'corrupt_checkpoints'))[0].startswith('8-')
  assert_identical(final_params(workdir), straight)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path):
  stopped = r'the (cross-entropy|KL|gradient norm) became nan at step (\d+): training stopped'
  with pytest.raises(VrashError, match=stopped) as e:
    train.train_and_evaluate(config(learning_rate=1e30, warmup_steps=1, checkpoint_every=1),
                             tiny_dataset, str(tmp_path))
  bad_step = int(str(e.value).split('at step ')[1].split(':')[0])
  saved = checkpoint.Checkpoints(str(tmp_path), read_only=True).all_steps()
  assert saved and max(saved) == bad_step - 1
  assert f'(step {bad_step - 1}) is kept' in str(e.value)


def test_a_second_process_on_the_same_workdir_is_refused(tiny_dataset, tmp_path):
  with storage.WorkdirLock(str(tmp_path)):
    second = launch(tiny_dataset, tmp_path)
    err = second.communicate(timeout=120)[1]
  assert second.returncode == 2
  assert 'is in use by a training process (pid' in err.strip().splitlines()[-1]
  assert not os.path.exists(checkpoint.checkpoint_dir(str(tmp_path)))


def test_a_full_disk_at_save_time_is_a_clear_error_and_keeps_the_old_checkpoint(tiny_dataset, tmp_path,
                                                                                monkeypatch):
  workdir = str(tmp_path)
  train.train_and_evaluate(config(train_steps=2), tiny_dataset, workdir)
  import orbax.checkpoint as ocp

  def full_disk(self, *args, **kwargs):
    raise RuntimeError('save failed') from OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full_disk)
  with pytest.raises(VrashError, match=r'the disk is full\); the previous checkpoint \(step 2\) is intact'):
    train.train_and_evaluate(config(train_steps=4), tiny_dataset, workdir)
  monkeypatch.undo()
  assert checkpoint.Checkpoints(workdir, read_only=True).all_steps() == [2]
  assert int(evaluation.restore_for_inference(workdir)[1].step) == 2


def test_a_write_that_fails_after_its_save_returned_is_reported_as_its_own(tmp_path, monkeypatch):
  """An asynchronous save returns before its write ends: a full disk found then is still named
  with its step, at the next save or at close, and the one before it stays readable."""
  import orbax.checkpoint as ocp

  store = checkpoint.Checkpoints(str(tmp_path), asynchronous=True)
  params = {'w': np.arange(4.0, dtype=np.float32)}
  for step in (2, 4):
    store.save(step, params, config(), {'step': step})
  assert store.writing == 4
  failures = []

  def full_disk(self):
    if not failures:
      failures.append(1)
      raise RuntimeError('write failed') from OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(ocp.CheckpointManager, 'wait_until_finished', full_disk)
  with pytest.raises(VrashError, match=r'could not write checkpoint 4 .*the disk is full\); '
                                       r'the previous checkpoint \(step 2\) is intact'):
    store.close()
  monkeypatch.undo()
  assert 2 in checkpoint.Checkpoints(str(tmp_path), read_only=True).all_steps()


def test_two_threads_saving_at_once_keep_their_own_orbax_operations(tmp_path, monkeypatch):
  """Lanes save from threads. Orbax keys a save's signals by a process-wide operation id that the
  save advances, then reads: here thread B saves just after A advanced it. A must still read its
  own id (it read B's, and waited 300 s for a signal sent under it)."""
  from orbax.checkpoint._src.futures import synchronization
  ids = synchronization.OperationIdGenerator
  advance, read = ids.next_operation_id.__func__, ids.get_current_operation_id.__func__
  owners, a_advanced, b_arrived, read_wrong, errors = {}, threading.Event(), threading.Event(), [], []
  readers = set()

  def next_operation_id(cls):
    value = advance(cls)
    owners[str(value)] = threading.current_thread().name
    if threading.current_thread().name == 'A' and not a_advanced.is_set():
      a_advanced.set()
      assert b_arrived.wait(60), 'B never came to save'
    elif threading.current_thread().name == 'B':
      b_arrived.set()  # B advanced the id while A was between advancing and reading it
    return value

  def get_current_operation_id(cls):
    value = read(cls)
    readers.add(threading.current_thread().name)
    if owners.get(value, threading.current_thread().name) != threading.current_thread().name:
      read_wrong.append((threading.current_thread().name, value))
    return value

  class Door:  # the lock saves start behind, saying when B has come to it
    lock = threading.Lock()

    def __enter__(self):
      if threading.current_thread().name == 'B':
        b_arrived.set()
      self.lock.acquire()

    def __exit__(self, *exc):
      self.lock.release()

  monkeypatch.setattr(ids, 'next_operation_id', classmethod(next_operation_id))
  monkeypatch.setattr(ids, 'get_current_operation_id', classmethod(get_current_operation_id))
  monkeypatch.setattr(checkpoint, '_SAVES_START', Door(), raising=False)

  def save(name):
    if name == 'B':
      a_advanced.wait(60)
    try:
      store = checkpoint.Checkpoints(str(tmp_path / name))
      store.save(2, {'w': np.arange(4.0, dtype=np.float32)}, config(), {'step': 2})
      store.close()
    except BaseException as e:  # raised below, in the test's thread
      errors.append(e)

  threads = [threading.Thread(target=save, args=(name,), name=name) for name in 'AB']
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert not errors and not read_wrong
  assert a_advanced.is_set() and b_arrived.is_set() and readers == {'A', 'B'}  # the race was played
  for name in 'AB':
    assert checkpoint.Checkpoints(str(tmp_path / name), read_only=True).all_steps() == [2]
