"""One process of a multi-host run on localhost: `python distributed_worker.py PORT ID COUNT`.

Trains 3 steps of the smoke VRASH on a synthetic global batch, feeding only this host's
rows, and prints the losses as JSON (process 0 only).
"""
import json
import os
import sys

import numpy as np


def synthetic_batch(config, seed=0):
  from vrash_jax import notes
  rng = np.random.default_rng(seed)
  shape = (config.batch_size, config.max_len)
  batch = {f: rng.integers(0, n, shape).astype(np.int32) for f, n in notes.VOCAB_SIZES.items()}
  batch['mask'] = np.arange(config.max_len)[None, :] < rng.integers(1, config.max_len + 1, (shape[0], 1))
  batch.update({f: rng.integers(0, n, shape[:1]).astype(np.int32) for f, n in notes.META_FIELDS.items()})
  return batch


def main(port, process_id, process_count, devices_per_process=4):
  os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices_per_process}'
  import jax
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(f'127.0.0.1:{port}', process_count, process_id)
  from experiments.configs import smoke
  from vrash_jax import input_pipeline, sharding, train

  config = smoke.get_config('vrash')
  batch = synthetic_batch(config)
  rows = input_pipeline.host_rows(config.batch_size, process_id, process_count)
  mesh = sharding.data_mesh()
  state = jax.jit(lambda r: train.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  step = jax.jit(train.make_train_step(config))
  losses = []
  for _ in range(3):
    state, metrics = step(state, sharding.shard_batch({k: v[rows] for k, v in batch.items()}, mesh),
                          jax.random.key(1))
    losses.append(float(jax.device_get(metrics['loss'])))
  if process_id == 0:
    print(json.dumps({'devices': jax.device_count(), 'losses': losses}), flush=True)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*(int(a) for a in sys.argv[1:4]))
