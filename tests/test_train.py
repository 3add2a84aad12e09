"""Training: the step learns, data parallelism changes nothing, checkpoints move and resume."""
import json
import os
import shutil

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from experiments.configs import smoke
from vrash_jax import checkpoint, evaluation, input_pipeline, models, run_log, sharding, train, train_state
from vrash_jax.errors import VrashError


def fixed_batch(data_dir, config):
  arrays = input_pipeline.load_split(data_dir, 'train', config.max_len)
  return input_pipeline.TrainBatches(arrays, config.batch_size, seed=0)(0)


def run_steps(config, batch, devices, steps):
  """`steps` train steps on the same global batch over a mesh of `devices`."""
  mesh = sharding.data_mesh(devices)
  state = jax.jit(lambda r: train_state.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  step = jax.jit(train.make_train_step(config))
  metrics = []
  for _ in range(steps):
    state, m = step(state, sharding.shard_batch(batch, mesh), jax.random.key(1))
    metrics.append(jax.device_get(m))
  return state, metrics


@pytest.mark.parametrize('name', ['lm', 'vae', 'vrash'])
def test_train_steps_reduce_the_loss_on_a_fixed_batch(tiny_dataset, name):
  config = smoke.get_config(name)
  config.input_dropout = config.state_dropout = config.output_dropout = config.note_dropout = 0.0
  config.kl_anneal_steps, config.learning_rate, config.warmup_steps, config.train_steps = 0, 0.02, 1, 100
  _, metrics = run_steps(config, fixed_batch(tiny_dataset, config), jax.devices()[:1], 12)
  assert metrics[-1]['loss'] < metrics[0]['loss'] - 1.0


def test_eight_devices_equal_one_device(tiny_dataset):
  assert jax.device_count() == 8
  config = smoke.get_config('vrash')
  batch = fixed_batch(tiny_dataset, config)
  one, m1 = run_steps(config, batch, jax.devices()[:1], 2)
  eight, m8 = run_steps(config, batch, jax.devices(), 2)
  for a, b in zip(m1, m8):
    for k in ('loss', 'ce_total', 'kl', 'grad_norm'):
      assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), one.params, eight.params)


def test_checkpoint_restores_on_a_different_device_count(tiny_dataset, tmp_path):
  config = smoke.get_config('vae')
  state, _ = run_steps(config, fixed_batch(tiny_dataset, config), jax.devices(), 1)
  store = checkpoint.Checkpoints(str(tmp_path))
  store.save(1, state, config, {'step': 1})
  two = sharding.data_mesh(jax.devices()[:2])
  target = checkpoint.abstract_like(jax.eval_shape(lambda r: train_state.create_state(config, r),
                                                   jax.random.key(0)), sharding.replicated(two))
  restored, data = checkpoint.Checkpoints(str(tmp_path), read_only=True).restore(target)
  assert data == {'step': 1} and int(restored.step) == 1
  assert restored.params['encoder']['w_in'].sharding.mesh.devices.size == 2
  jax.tree.map(np.testing.assert_array_equal, jax.device_get((state.params, state.opt_state)),
               jax.device_get((restored.params, restored.opt_state)))


def test_a_best_checkpoint_holding_a_whole_train_state_still_serves_inference(tiny_dataset, tmp_path):
  """best/ as written before it kept the parameters and step alone: the same figures come back."""
  config = smoke.get_config('vae')
  state, _ = run_steps(config, fixed_batch(tiny_dataset, config), jax.devices(), 2)
  for kind in (checkpoint.LATEST, checkpoint.BEST):
    store = checkpoint.Checkpoints(str(tmp_path), kind=kind)
    store.save(2, state, config, {'step': 2, 'valid_bound': 3.0})
    store.close()
  _, restored = evaluation.restore_for_inference(str(tmp_path))
  assert int(restored.step) == 2 and restored.opt_state is None
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), jax.device_get(restored.params))


def test_resumed_run_continues_where_it_stopped(tiny_dataset, tmp_path):
  config = smoke.get_config('vrash')  # 8 steps, a checkpoint every 4
  workdir = str(tmp_path / 'run')
  assert train.train_and_evaluate(config, tiny_dataset, workdir)['step'] == 8
  straight = evaluation.evaluate_checkpoint(workdir, tiny_dataset, 'valid')
  shutil.rmtree(os.path.join(checkpoint.checkpoint_dir(workdir), '8'))  # as if it died after step 4
  assert train.train_and_evaluate(config, tiny_dataset, workdir)['step'] == 8
  resumed = evaluation.evaluate_checkpoint(workdir, tiny_dataset, 'valid')
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['step'] for r in records if r['split'] == 'train'] == [2, 4, 6, 8, 6, 8]
  assert resumed['step'] == straight['step'] == 8
  assert resumed['ce_total'] == straight['ce_total']  # same data order and randomness


def test_a_resumed_run_compiles_the_fresh_runs_train_step(tiny_dataset, tmp_path):
  """The state restored from a checkpoint traces like a fresh one (shapes, dtypes, weak types),
  so a resumed run finds the step its first sitting compiled in the persistent cache."""
  config = smoke.get_config('vrash')
  replicated = sharding.replicated(sharding.data_mesh())
  fresh = checkpoint.RunCheckpoints(config, str(tmp_path)).restore_or_init(replicated)
  checkpoint.RunCheckpoints(config, str(tmp_path)).save(4, fresh)
  restored = checkpoint.RunCheckpoints(config, str(tmp_path)).restore_or_init(replicated)
  step = jax.jit(train.make_train_step(config))
  batch = sharding.shard_batch(fixed_batch(tiny_dataset, config), sharding.data_mesh())
  programs = [step.lower(s, batch, jax.random.key(1)).as_text() for s in (fresh, restored)]
  assert programs[0] == programs[1]


def test_workdir_of_another_model_is_refused(tiny_dataset, tmp_path):
  config = smoke.get_config('lm')
  config.train_steps = 2
  train.train_and_evaluate(config, tiny_dataset, str(tmp_path))
  with pytest.raises(VrashError, match="model='lm', but the config asks for model='vae'"):
    train.train_and_evaluate(smoke.get_config('vae'), tiny_dataset, str(tmp_path))
  with pytest.raises(VrashError, match='no checkpoints'):
    evaluation.evaluate_checkpoint(str(tmp_path / 'nothing'), tiny_dataset)
  with pytest.raises(VrashError, match='no prepared vrash_midi'):
    train.train_and_evaluate(config, str(tmp_path), str(tmp_path / 'w'))


def test_dataset_of_another_schema_is_refused(tiny_dataset, tmp_path):
  copy = tmp_path / 'old'
  shutil.copytree(tiny_dataset, copy)
  (meta_path,) = list(copy.glob('vrash_midi/*/metadata.json'))
  meta = json.loads(meta_path.read_text())
  meta['vocabularies']['schema_version'] = 0
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(VrashError, match='uses note schema 0'):
    input_pipeline.load_split(str(copy), 'train')


def test_launcher_errors_are_one_line(tiny_dataset, tmp_path):
  import subprocess
  import sys

  def run(*args):
    return subprocess.run([sys.executable, '-m', 'experiments.train', *args],
                          capture_output=True, text=True, timeout=120)

  missing_config = run('--config=experiments/configs/nope.py', f'--data_dir={tiny_dataset}',
                       f'--workdir={tmp_path}')
  missing_data = run('--config=experiments/configs/smoke.py:lm', f'--data_dir={tmp_path}/none',
                     f'--workdir={tmp_path}')
  for result, message in ((missing_config, "--config 'experiments/configs/nope.py' is not a file"),
                          (missing_data, 'does not exist: run `vrash-prep` first')):
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2
    assert last_line.startswith('error: ') and message in last_line
    assert 'Traceback' not in result.stderr


def test_throughput_counts_the_time_the_device_spends(monkeypatch):
  """notes/s must cover the computation, not just Python's (asynchronous) dispatch of it."""
  now = {'t': 97.0}  # dispatching took 1 s ...

  def device_get(x):
    now['t'] = 100.0  # ... then waiting for the device 3 s more
    return x

  monkeypatch.setattr(run_log.time, 'perf_counter', lambda: now['t'])
  monkeypatch.setattr(run_log.jax, 'device_get', device_get)
  step = {k: 10.0 for k in run_log.SUM_KEYS}
  step.update(loss=1.0, grad_norm=1.0, kl_weight=1.0, learning_rate=1e-3)
  records, seconds = run_log.fetch_interval([step, step], started=96.0)
  out = run_log.summarize_interval(records, seconds)
  assert out['notes_per_s'] == pytest.approx(20 / 4.0)  # 20 notes in 4 s, not in 1 s


@pytest.mark.parametrize('model, decoder_names', [
    ('vrash', {'decoder', 'latent_to_state'}), ('tvrash', {'attention_in', 'decoder', 'latent_to_input'})])
def test_reset_decoder_reinitializes_the_decoder_only(tiny_dataset, model, decoder_names):
  config = smoke.get_config(model)
  trained, _ = run_steps(config, fixed_batch(tiny_dataset, config), jax.devices()[:1], 2)
  trained = jax.device_get(trained)
  reset = jax.device_get(train_state.reset_decoder(trained, config, jax.random.key(7)))
  fresh = jax.device_get(train_state.create_state(config, jax.random.key(7)).params)
  (adam_before,), (adam_after,) = ([s for s in jax.tree.leaves(
      x.opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
      if isinstance(s, optax.ScaleByAdamState)] for x in (trained, reset))
  heads = {f'heads_{f}' for f in models.HEADS}
  assert set(models.DECODER_PARAMS) & set(trained.params) == decoder_names | heads
  assert 'encoder' in trained.params
  for name in trained.params:
    decoder = name in models.DECODER_PARAMS
    jax.tree.map(np.testing.assert_array_equal, reset.params[name],
                 fresh[name] if decoder else trained.params[name])
    for moment in ('mu', 'nu'):
      after, before = getattr(adam_after, moment)[name], getattr(adam_before, moment)[name]
      for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before)):
        assert (not a.any()) if decoder else (a == b).all()
        assert b.any()  # two steps made every moment non-zero
  assert int(reset.step) == int(trained.step) == 2


def test_pretraining_runs_as_an_autoencoder_then_anneals(tiny_dataset, tmp_path):
  config = smoke.get_config('vrash')
  config.pretrain_steps, config.kl_anneal_steps, config.free_bits = 4, 4, 0.0
  train.train_and_evaluate(config, tiny_dataset, str(tmp_path))
  records = [json.loads(line) for line in open(os.path.join(tmp_path, 'metrics.jsonl'))]
  weights = {r['step']: r['kl_weight'] for r in records if r['split'] == 'train'}
  assert weights == {2: 0.0, 4: 0.0, 6: 0.25, 8: 0.75}  # last step of each interval


def test_the_best_valid_checkpoint_is_kept_and_patience_stops_training(tiny_dataset, tmp_path, monkeypatch):
  config = smoke.get_config('vrash')
  config.train_steps, config.eval_every, config.checkpoint_every, config.patience = 40, 2, 4, 2
  bounds = {2: 5.0, 4: 4.0, 6: 4.5, 8: 4.2, 10: 3.0}  # no better bound after step 4 until 10

  def scripted(state, config, arrays, iw_samples):
    step = int(jax.device_get(state.step))
    return {'nll_bound': bounds[step], 'ce_total': bounds[step], 'step_seen': step}

  monkeypatch.setattr(train.evaluation, 'evaluate_state', scripted)
  workdir = str(tmp_path)
  out = train.train_and_evaluate(config, tiny_dataset, workdir)
  assert out['step'] == 8 and out['stopped_by'] == 'saturation'
  assert train.train_and_evaluate(config, tiny_dataset, workdir)['step'] == 8  # saturated: no more steps
  _, best = evaluation.restore_for_inference(workdir)
  assert int(best.step) == 4 and best.opt_state is None
  _, at_4 = evaluation.restore_for_inference(workdir, step=4)  # a step: from the latest kept
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(best.params), jax.device_get(at_4.params))
  kept = ocp.PyTreeCheckpointer().metadata(os.path.join(workdir, checkpoint.BEST, '4', 'state'))
  assert set(kept.item_metadata.tree) == {'params', 'step'}  # no Adam moments: only resume needs them
  assert checkpoint.Checkpoints(workdir, read_only=True).all_steps() == [4, 8]
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['step'] for r in records if r['split'] == 'valid'] == [2, 4, 6, 8]
