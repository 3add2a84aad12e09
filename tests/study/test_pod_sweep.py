"""A study on a pod slice, played by two local processes of 4 CPU devices each (jax.distributed)
with data and workdir in the local GCS server: the same `vrash-sweep` command on both spreads each
group's runs over them, survives a SIGTERM to both and a kill -9 of one, and writes what a
one-process, 8-device sweep writes."""
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS, SEEDS = ('lm', 'vrash'), (0, 1)
# The smoke models (experiments/configs/smoke.py) trained 24 steps, a checkpoint every 8: more
# than the 10 steps after which the hosts agree on a stop signal.
OVERRIDES = {'max_len': 16, 'batch_size': 8, 'eval_batch_size': 8, 'pitch_embed': 6, 'octave_embed': 3,
             'delay_embed': 5, 'meta_embed': 2, 'hidden': 16, 'depth': 2, 'latent_dim': 4, 'kl_anneal_steps': 4,
             'warmup_steps': 2, 'train_steps': 24, 'log_every': 2, 'eval_every': 8, 'checkpoint_every': 8,
             'valid_iw_samples': 2}
STUDY_FLAGS = ['--models=' + ','.join(MODELS), '--seeds=' + ','.join(map(str, SEEDS)), '--iw_samples=2',
               '--num_samples=4', '--temperatures=1.0', '--sample_seeds=1']


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class Slice:
  """The two workers of one sitting: the same `vrash-sweep` command, their logs in files."""

  def __init__(self, data_dir, workdir, logs, tag):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS=xla_flags.with_devices(os.environ.get('XLA_FLAGS', ''), 4))
    flags = [f'--data_dir={data_dir}', f'--workdir={workdir}', *STUDY_FLAGS, '--verbose',
             *(f'--config.{k}={v}' for k, v in OVERRIDES.items()),
             f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2']
    self.logs = [logs / f'{tag}{i}.log' for i in range(2)]
    # cwd: a folder of its own, where a local folder named 'gs:' would show
    self.workers = [subprocess.Popen([sys.executable, '-m', 'experiments.sweep', *flags, f'--process_id={i}'],
                                     cwd=logs, env=env, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
                    for i, log in enumerate(self.logs)]

  def log(self, i):
    return self.logs[i].read_text()

  def wait_for(self, i, text, timeout=300):
    """Until worker i's log says `text` (while it runs)."""
    deadline = time.monotonic() + timeout
    while text not in self.log(i):
      assert time.monotonic() < deadline and self.workers[i].poll() is None, self.log(i)[-3000:]
      time.sleep(0.2)

  def finish(self, timeout=400):
    """Both workers' exit codes."""
    return [w.wait(timeout=timeout) for w in self.workers]


@pytest.fixture(scope='module')
def one_process(tiny_dataset, tmp_path_factory):
  """The reference: the same study in one process of 8 devices, uninterrupted, local."""
  from experiments.configs import model_config
  from vrash_jax.study import sweep
  from vrash_jax.study.study import ClaimsPlan, Study
  study = Study(tiny_dataset, str(tmp_path_factory.mktemp('one')), functools.partial(model_config, overrides=OVERRIDES),
                MODELS, SEEDS, ClaimsPlan(temperatures=(1.0,), sample_seeds=1), iw_samples=2, num_samples=4)
  return sweep.run_sweep(study)


@pytest.mark.slow
def test_a_pod_sweep_survives_sigterm_and_kill_9_and_equals_a_one_process_sweep(
    tiny_dataset, gcs, bucket_dir, one_process, tmp_path):
  from vrash_jax import storage
  data_dir, workdir = f'{bucket_dir}-data', f'{bucket_dir}-study'
  storage.copy_tree(tiny_dataset, data_dir)

  first = Slice(data_dir, workdir, tmp_path, 'term')  # preempted: SIGTERM to both workers
  first.wait_for(0, '[train] step 2 ')
  for worker in first.workers:
    worker.send_signal(signal.SIGTERM)
  assert first.finish() == [2, 2]
  for i in range(2):  # they agreed at step 10, checkpointed, and said how to go on
    assert 'SIGTERM received: stopped after step 10 with a checkpoint' in first.log(i), first.log(i)[-3000:]

  second = Slice(data_dir, workdir, tmp_path, 'kill')  # one worker lost: kill -9
  second.wait_for(0, 'resumed from step 10')
  second.wait_for(0, '[train] step 18 ')  # past the checkpoint at step 16
  second.workers[1].kill()
  second.wait_for(0, 'Traceback (most recent call last)')  # its next collective failed, its locks let go
  second.workers[0].kill()
  second.finish()

  third = Slice(data_dir, workdir, tmp_path, 'last')
  assert third.finish() == [0, 0], third.log(0)[-3000:] + third.log(1)[-3000:]
  assert 'resumed from step 10' not in third.log(0)  # the killed sitting's checkpoints were kept
  results = json.loads(storage.read_text(f'{workdir}/results.json'))
  assert [(r['model'], r['seed'], r['steps']) for r in results['runs']] == [
      (r['model'], r['seed'], 24) for r in one_process['runs']]
  for pod, one in zip(results['runs'], one_process['runs']):
    np.testing.assert_allclose([pod[k] for k in ('ce_total', 'nll_iw')], [one[k] for k in ('ce_total', 'nll_iw')],
                               rtol=1e-3)
  assert 'process 0 of 2: 8 CPU devices, 4 of them here' in third.log(0) and '2 runs side by side' in third.log(0)
  page = storage.path(f'{workdir}/results.html')
  assert page.is_file() and all(storage.path(f'{workdir}/{midi}').is_file()
                                for midi in results['listening']['samples']['lm'])
  log = storage.read_text(f'{workdir}/sweep.log')  # every sitting's, the stopped ones' too
  assert log.index('SIGTERM received') < log.index('resumed from step 10') < log.index('[3/3] claims')
  assert not (tmp_path / 'gs:').exists() and not os.path.exists(os.path.join(ROOT, 'gs:'))
