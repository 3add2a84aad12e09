"""Two processes joined by jax.distributed (4 CPU devices each) train like one of 8."""
import json
import os
import socket
import subprocess
import sys

import jax
import pytest

from experiments.configs import smoke
from vrash_jax import sharding, train
import distributed_worker

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process():
  port = free_port()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE)]))
  procs = [subprocess.Popen([sys.executable, os.path.join(HERE, 'distributed_worker.py'), str(port), str(i), '2'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
  result = json.loads(outs[0][0].strip().splitlines()[-1])
  assert result['devices'] == 8

  config = smoke.get_config('vrash')
  mesh = sharding.data_mesh()
  state = jax.jit(lambda r: train.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  step = jax.jit(train.make_train_step(config))
  batch = distributed_worker.synthetic_batch(config)
  for want in result['losses']:
    state, metrics = step(state, sharding.shard_batch(batch, mesh), jax.random.key(1))
    assert float(metrics['loss']) == pytest.approx(want, rel=1e-5)
