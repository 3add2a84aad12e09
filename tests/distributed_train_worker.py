"""One of two processes training together: `python distributed_train_worker.py PORT ID DATA WORK OTHER`.

Trains the smoke VRASH for 20 steps into WORK with jax.distributed (4 CPU devices per process),
then restores OTHER's checkpoint (written by a 1-process, 8-device run) on this layout and
prints, from process 0, a checksum of both parameter sets as JSON.
"""
import json
import os
import sys

import xla_flags


def checksum(params):
  import jax
  import numpy as np
  # Replicated arrays hold the whole value on every device this host can address.
  return float(sum(np.abs(np.asarray(x.addressable_data(0), np.float64)).sum()
                   for x in jax.tree.leaves(params)))


def config():
  """The run both layouts train: the smoke VRASH, 20 steps, a checkpoint at the end."""
  from experiments.configs import smoke
  c = smoke.get_config('vrash')
  c.update_from_flattened_dict({'train_steps': 20, 'log_every': 1, 'eval_every': 0, 'checkpoint_every': 20})
  return c


def main(port, process_id, data_dir, workdir, other):
  os.environ['XLA_FLAGS'] = xla_flags.with_devices(os.environ.get('XLA_FLAGS', ''), 4)
  import jax
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(f'127.0.0.1:{port}', 2, process_id)
  from vrash_jax import evaluation, train

  train.train_and_evaluate(config(), data_dir, workdir)
  own = checksum(evaluation.restore_for_inference(workdir)[1].params)
  theirs = checksum(evaluation.restore_for_inference(other)[1].params)
  if process_id == 0:
    print(json.dumps({'devices': jax.device_count(), 'own': own, 'other': theirs}), flush=True)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6])
