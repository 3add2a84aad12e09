"""Two processes joined by jax.distributed (4 CPU devices each) train like one of 8 devices."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import smoke

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_train_like_one_and_checkpoints_cross_layouts(tiny_dataset, tmp_path):
  import distributed_train_worker
  from vrash_jax import evaluation, train

  config = smoke.get_config('vrash')
  config.update_from_flattened_dict({'train_steps': 20, 'log_every': 1, 'eval_every': 0,
                                     'checkpoint_every': 20})
  one_host, two_hosts = str(tmp_path / 'one'), str(tmp_path / 'two')
  train.train_and_evaluate(config, tiny_dataset, one_host)

  port = free_port()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE)]))
  procs = [subprocess.Popen([sys.executable, os.path.join(HERE, 'distributed_train_worker.py'), str(port),
                             str(i), tiny_dataset, two_hosts, one_host],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for i in range(2)]
  outs = [p.communicate(timeout=400) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  result = json.loads(outs[0][0].strip().splitlines()[-1])
  assert result['devices'] == 8

  def losses(workdir):
    records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
    return [r['loss'] for r in records if r['split'] == 'train']

  assert len(losses(one_host)) == 20
  np.testing.assert_allclose(losses(two_hosts), losses(one_host), rtol=1e-4)
  # Each layout restores the other's checkpoint to the very same parameters.
  assert result['other'] == distributed_train_worker.checksum(
      evaluation.restore_for_inference(one_host)[1].params)
  assert result['own'] == distributed_train_worker.checksum(
      evaluation.restore_for_inference(two_hosts)[1].params)
