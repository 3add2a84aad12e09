"""Two processes joined by jax.distributed (4 CPU devices each) train like one of 8 devices."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def one_host(tiny_dataset, tmp_path_factory):
  """The reference: 20 steps on one process of 8 devices."""
  import distributed_train_worker
  from vrash_jax import train
  workdir = str(tmp_path_factory.mktemp('one'))
  train.train_and_evaluate(distributed_train_worker.config(), tiny_dataset, workdir)
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('where', ['local', 'gs'])
def test_two_hosts_train_like_one_and_checkpoints_cross_layouts(where, tiny_dataset, one_host, tmp_path,
                                                                request):
  import distributed_train_worker
  from vrash_jax import evaluation, run_log, storage

  data_dir, two_hosts = tiny_dataset, str(tmp_path / 'two')
  if where == 'gs':  # a pod's workers share no disk: data and workdir in a bucket
    two_hosts, data_dir = request.getfixturevalue('bucket_dir'), request.getfixturevalue('bucket_dir') + '-data'
    storage.copy_tree(tiny_dataset, data_dir)
  port = free_port()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE)]))
  # Output to files: a pipe read only after the other process's would block a chatty worker.
  logs = [(tmp_path / f'out{i}', tmp_path / f'err{i}') for i in range(2)]
  procs = [subprocess.Popen([sys.executable, os.path.join(HERE, 'distributed_train_worker.py'), str(port),
                             str(i), data_dir, two_hosts, one_host],
                            stdout=open(out, 'w'), stderr=open(err, 'w'), env=env)
           for i, (out, err) in enumerate(logs)]
  for p, (_, err) in zip(procs, logs):
    assert p.wait(timeout=400) == 0, err.read_text()[-3000:]
  result = json.loads(logs[0][0].read_text().strip().splitlines()[-1])
  assert result['devices'] == 8

  def losses(workdir):
    return [r['loss'] for r in run_log.read_metrics(workdir) if r['split'] == 'train']

  assert len(losses(one_host)) == 20
  np.testing.assert_allclose(losses(two_hosts), losses(one_host), rtol=1e-4)
  # Each layout restores the other's checkpoint to the very same parameters.
  assert result['other'] == distributed_train_worker.checksum(
      evaluation.restore_for_inference(one_host)[1].params)
  assert result['own'] == distributed_train_worker.checksum(
      evaluation.restore_for_inference(two_hosts)[1].params)
  if where == 'gs':  # process 0 alone took the lock object (a second taker is refused) and deleted it
    assert not storage.path(storage.join(two_hosts, storage.LOCK_NAME)).exists()
