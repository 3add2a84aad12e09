"""Runs trained as one group: each as it would train alone, each saturating on its own, resuming
exactly after kill -9, and a sweep's compiled functions that do not pile up."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import checkpoint, evaluation, input_pipeline, sharding, train, train_state
from vrash_jax.errors import VrashError

STEPS = {'train_steps': 6, 'log_every': 1, 'eval_every': 0, 'checkpoint_every': 2}


def config(seed=0, **overrides):
  c = smoke.get_config('vrash')
  c.update_from_flattened_dict({**STEPS, 'seed': seed, **overrides})
  return c


# Three runs that differ in seed and in every number a group may vary: free bits, note dropout,
# cyclical annealing (dropout is on: input, state and output dropout are smoke's defaults).
GROUP = (config(0), config(1, free_bits=0.0, note_dropout=0.3), config(0, free_bits=1.0, kl_cycles=2))


def alone(c, data_dir):
  """The reference: the plain train step (no vmap), the run's own batches and RNG streams."""
  batches = input_pipeline.TrainBatches(input_pipeline.load_split(data_dir, 'train', c.max_len), c.batch_size,
                                        c.seed, bucket_step=c.bucket_step)
  step = jax.jit(train.make_train_step(c))
  state = train_state.create_state(c, train_state.purpose_rng(c.seed, 'init'))
  rng = train_state.purpose_rng(c.seed, 'train')
  for i in range(c.train_steps):
    state, _ = step(state, {k: jax.numpy.asarray(v) for k, v in batches(i).items()}, rng)
  return jax.device_get(state.params)


def trained_params(workdir):
  return jax.device_get(evaluation.restore_for_inference(workdir)[1].params)


@pytest.fixture(scope='module')
def grouped(tiny_dataset, tmp_path_factory):
  workdirs = [str(tmp_path_factory.mktemp(f'run{i}')) for i in range(len(GROUP))]
  outcomes = train.train_runs(GROUP, tiny_dataset, workdirs)
  return workdirs, outcomes


def test_each_run_of_a_group_trains_as_it_would_alone(grouped, tiny_dataset):
  workdirs, outcomes = grouped
  assert [o['step'] for o in outcomes] == [6, 6, 6] and all(o['steps_run'] == 6 for o in outcomes)
  for c, workdir in zip(GROUP, workdirs):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 trained_params(workdir), alone(c, tiny_dataset))
    records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
    assert [r['step'] for r in records if r['split'] == 'train'] == [1, 2, 3, 4, 5, 6]


def test_a_finished_group_is_not_trained_again(grouped, tiny_dataset):
  workdirs, _ = grouped
  lines = [open(os.path.join(w, 'metrics.jsonl')).read() for w in workdirs]
  again = train.train_runs(GROUP, tiny_dataset, workdirs)
  assert [(o['step'], o['steps_run']) for o in again] == [(6, 0)] * 3
  assert [open(os.path.join(w, 'metrics.jsonl')).read() for w in workdirs] == lines


@pytest.mark.parametrize('one_step', [False, True])  # run by run (as on a CPU), or the group at once
def test_a_saturated_run_stops_changing_while_the_others_go_on(tiny_dataset, tmp_path, monkeypatch, one_step):
  runs = [config(0, eval_every=2, patience=1, train_steps=8), config(1, eval_every=2, patience=1, train_steps=8)]
  bounds = {0: {2: 4.0, 4: 5.0}, 1: {2: 4.0, 4: 3.0, 6: 2.0, 8: 1.0}}  # seed 0 stops improving after step 2

  def figures(seed, step):
    return {'nll_bound': bounds[seed][int(step)], 'ce_total': bounds[seed][int(step)]}

  def scripted(state, c, arrays, iw_samples):
    return figures(c.seed, jax.device_get(state.step))

  def scripted_group(state, configs, mesh, arrays, iw_samples):
    return [figures(c.seed, step) for c, step in zip(configs, jax.device_get(state.step))]

  monkeypatch.setattr(train.evaluation, 'evaluates_groups_in_one_step', lambda: one_step)
  monkeypatch.setattr(train.evaluation, 'evaluate_state', scripted)
  monkeypatch.setattr(train.evaluation, 'evaluate_group', scripted_group)
  workdirs = [str(tmp_path / 'a'), str(tmp_path / 'b')]
  outcomes = train.train_runs(runs, tiny_dataset, workdirs)
  assert [(o['step'], o['stopped_by']) for o in outcomes] == [(4, 'saturation'), (8, None)]
  assert checkpoint.Checkpoints(workdirs[0], read_only=True).all_steps() == [2, 4]
  records = [json.loads(line) for line in open(os.path.join(workdirs[0], 'metrics.jsonl'))]
  assert max(r['step'] for r in records) == 4  # nothing logged after it saturated
  assert int(jax.device_get(evaluation.restore_for_inference(workdirs[1])[1].step)) == 8


def test_runs_that_differ_in_more_than_seed_and_hyper_are_refused(tmp_path):
  with pytest.raises(VrashError, match='the runs of a group may differ only in seed and free_bits, note_dropout'):
    train.train_runs([config(0), config(1, hidden=32)], 'unused', [str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_a_group_mesh_puts_runs_on_devices_that_divide_both_counts():
  devices = jax.devices()  # the tests' 8 CPU devices
  assert dict(sharding.group_mesh(1, devices).shape) == {'runs': 1, 'data': 8}
  assert dict(sharding.group_mesh(2, devices).shape) == {'runs': 2, 'data': 4}
  assert dict(sharding.group_mesh(3, devices).shape) == {'runs': 1, 'data': 8}
  assert dict(sharding.group_mesh(3, devices[:3]).shape) == {'runs': 3, 'data': 1}
  assert dict(sharding.group_mesh(4, devices[:2]).shape) == {'runs': 2, 'data': 1}


KILLED_GROUP = [config(0, train_steps=8, free_bits=0.5), config(1, train_steps=8, free_bits=0.0)]
TRAIN_GROUP = f'''
import sys
from absl import logging
from experiments.configs import smoke
from vrash_jax import train
configs = []
for overrides in {[{**STEPS, 'train_steps': 8, 'seed': c.seed, 'free_bits': c.free_bits} for c in KILLED_GROUP]}:
  c = smoke.get_config('vrash')
  c.update_from_flattened_dict(overrides)
  configs.append(c)
logging.set_verbosity(logging.INFO)
train.train_runs(configs, sys.argv[1], sys.argv[2:])
'''


def launch_group(data_dir, workdirs):
  return subprocess.Popen([sys.executable, '-c', TRAIN_GROUP, data_dir, *workdirs], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_group_killed_with_kill_9_resumes_to_the_same_parameters(tiny_dataset, tmp_path):
  straight = [str(tmp_path / 'straight0'), str(tmp_path / 'straight1')]
  train.train_runs(KILLED_GROUP, tiny_dataset, straight)  # uninterrupted, here (the same devices and code)
  workdirs = [str(tmp_path / 'run0'), str(tmp_path / 'run1')]
  process = launch_group(tiny_dataset, workdirs)
  assert any('[train] step 5 ' in line for line in process.stderr)  # reads up to that line
  process.kill()
  process.wait()
  again = launch_group(tiny_dataset, workdirs)
  log = again.communicate(timeout=300)[1]
  assert again.returncode == 0 and 'resumed from step' in log
  for a, b in zip(workdirs, straight):
    jax.tree.map(np.testing.assert_array_equal, trained_params(a), trained_params(b))


def test_a_sweeps_compiled_functions_do_not_pile_up_run_after_run(tiny_dataset, tmp_path, monkeypatch):
  """Each XLA CPU executable holds memory mappings (a process may have 65,530); past a limit, a
  sweep drops what was compiled, so the count stays under it however many runs it trains."""
  from jax._src import compilation_cache

  from vrash_jax.study import runs

  # A sweep earlier in this process may have set a persistent cache: runs loaded from it would
  # compile nothing here. Off for this test, every run compiles.
  cache_dir = jax.config.jax_compilation_cache_dir
  jax.config.update('jax_compilation_cache_dir', None)
  compilation_cache.reset_cache()
  jax.clear_caches()
  try:
    _train_three_runs_and_count(runs, tiny_dataset, tmp_path, monkeypatch)
  finally:
    jax.config.update('jax_compilation_cache_dir', cache_dir)
    compilation_cache.reset_cache()


def _train_three_runs_and_count(runs, tiny_dataset, tmp_path, monkeypatch):
  counts = []
  for i in range(3):
    runs.train_run(config(i, free_bits=0.1 * i, bucket_step=4), tiny_dataset, str(tmp_path / f'run{i}'))
    counts.append(runs.mappings())
    if i == 0:
      limit = counts[0] + 100
      monkeypatch.setattr(runs, 'MAPPINGS_LIMIT', limit)
  assert all(c <= limit for c in counts[1:]), (limit, counts)  # each run here adds about 300
  assert any(later < earlier for earlier, later in zip(counts, counts[1:])), counts  # some were dropped
  assert not runs.release_compiled() or runs.mappings() > limit  # under the limit, nothing is dropped
