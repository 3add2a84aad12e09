"""Every nonsense config value is refused up front, naming its field; saved configs still load."""
import functools
import os
import re
import subprocess
import sys

import jax
import ml_collections
import pytest

from experiments import reproduce
from experiments.bench import harness
from experiments.configs import base, model_config, smoke
from vrash_jax import checkpoint, config_rules, train, train_state
from vrash_jax.errors import VrashError

# Values a user could type that make no sense, per field of base.py. A new field of base.py
# without an entry here fails `test_every_field_has_a_rule_and_invalid_values_here`.
INVALID = {
    'model': ['gan', 'LM', 3],
    'seed': [-1, 2**32, 1.5],
    'max_len': [0, -3, 32.0],
    'batch_size': [0, -64, True],
    'eval_batch_size': [0, 2.5],
    'bucket_step': [-32, 16.0],
    'pitch_embed': [0], 'octave_embed': [0], 'delay_embed': [0], 'meta_embed': [-1],
    'hidden': [0, 128.5], 'depth': [0, -1],
    'transform_bias': [float('nan'), float('-inf'), 'low'],
    'input_dropout': [1.0, -0.1], 'state_dropout': [1.5], 'output_dropout': [-1],
    'custom_backward': [1, 'yes'],
    'scan_unroll': [-1, 1.5],
    'rhn_kernel': ['triton', 'XLA', 1],
    'attention_layers': [0, 2.0], 'attention_width': [1, 'wide'], 'attention_heads': [0, -2],
    'attention_dropout': [1.0, -0.1],
    'dtype': ['float16', 'bf16', 32],
    'latent_dim': [0],
    'note_dropout': [1.5, 1.0, -0.5],
    'kl_anneal_steps': [-1],
    'free_bits': [-0.25, float('nan')],
    'kl_cycles': [-1, 2.0],
    'pretrain_steps': [-10, 0.5],
    'learning_rate': [-1.0, 0.0, float('inf'), '2e-3'],
    'warmup_steps': [-1],
    'train_steps': [-5, 0],
    'grad_clip': [0.0, -1.0],
    'log_every': [0],
    'eval_every': [-1],
    'valid_iw_samples': [-8, 8.0],
    'patience': [-1, True],
    'checkpoint_every': [0, -100],
    'max_to_keep': [0],
}
CASES = [(field, value) for field, values in INVALID.items() for value in values + [None]]


def base_dict(**changes):
  return {**base.get_config().to_dict(), **changes}


def test_every_field_has_a_rule_and_invalid_values_here():
  fields = set(base.get_config().to_dict())
  assert set(config_rules.RULES) == fields
  assert set(INVALID) == fields


@pytest.mark.parametrize('field,value', CASES, ids=[f'{f}={v!r}' for f, v in CASES])
def test_an_invalid_value_is_refused_naming_its_field(field, value):
  with pytest.raises(VrashError) as e:
    config_rules.validate(base_dict(**{field: value}))
  (line,) = str(e.value).splitlines()
  assert line.startswith(f'config.{field}=') and '; allowed: ' in line


def test_every_bad_value_is_listed_at_once():
  bad = {'learning_rate': -1.0, 'train_steps': -5, 'note_dropout': 1.5, 'latent_dim': 0, 'depth': 0}
  with pytest.raises(VrashError) as e:
    config_rules.validate(base_dict(**bad))
  lines = str(e.value).splitlines()
  assert sorted(line.split('=')[0] for line in lines) == sorted(f'config.{f}' for f in bad)
  assert 'config.note_dropout=1.5: out of range; allowed: a share of hidden history notes in [0, 1)' in lines


def test_cross_field_rules():
  with pytest.raises(VrashError, match=r'^config.warmup_steps=300: longer than the run; allowed: '
                                       r'at most config.train_steps=200$'):
    config_rules.validate(base_dict(warmup_steps=300, train_steps=200))
  config_rules.validate(base_dict(warmup_steps=200, train_steps=200, eval_every=0))
  with pytest.raises(VrashError, match=r'^config.batch_size=12: does not split over the 8 devices; '
                                       r'allowed: a multiple of 8$'):
    config_rules.validate(base_dict(batch_size=12), devices=8)
  config_rules.validate(base_dict(batch_size=12), devices=4)
  config_rules.validate(base_dict(batch_size=12))  # no device count given: not checked
  with pytest.raises(VrashError, match=r'^config.pretrain_steps=100: a language model has no encoder'):
    config_rules.validate(base_dict(model='lm', pretrain_steps=100))
  with pytest.raises(VrashError, match=r"^config.pretrain_steps=100: a language model has no encoder to pretrain; "
                                       r"allowed: 0 for 'tlm'$"):
    config_rules.validate(base_dict(model='tlm', pretrain_steps=100))
  with pytest.raises(VrashError, match=r'^config.attention_width=36: does not split into config.attention_heads=4 '
                                       r'heads of an even size \(rotary pairs\); allowed: a multiple of 8$'):
    config_rules.validate(base_dict(attention_width=36))
  config_rules.validate(base_dict(attention_width=40))
  with pytest.raises(VrashError, match=r'^config.pretrain_steps=200: leaves no steps to train '
                                       r'the VAE; allowed: fewer than config.train_steps=200$'):
    config_rules.validate(base_dict(pretrain_steps=200, train_steps=200))
  config_rules.validate(base_dict(pretrain_steps=199, train_steps=200))
  with pytest.raises(VrashError, match=r'^config.patience=3: counts evaluations, but '
                                       r'config.eval_every=0'):
    config_rules.validate(base_dict(patience=3, eval_every=0))
  with pytest.raises(VrashError, match=r"^config.rhn_kernel='pallas': its kernels are the hand-written "
                                       r"backward's; allowed: config.custom_backward=True"):
    config_rules.validate(base_dict(rhn_kernel='pallas', custom_backward=False))
  config_rules.validate(base_dict(rhn_kernel='pallas'))


def test_every_shipped_config_and_preset_is_valid():
  for model in config_rules.MODELS:
    config_rules.validate(model_config(model), devices=jax.device_count())
    config_rules.validate(smoke.get_config(model), devices=jax.device_count())
    for preset in reproduce.PRESETS.values():
      config_rules.validate(model_config(model, preset.config), devices=jax.device_count())
  for preset in reproduce.PRESETS.values():
    for point in preset.plan.frontier:
      config = point.config(functools.partial(model_config, overrides=preset.config))
      assert {k: config[k] for k, _ in point.overrides} == dict(point.overrides)
  harness.shape_config('vrash', 64, 64, 256, 3)


def test_unknown_fields_and_bad_overrides_name_the_closest_field():
  with pytest.raises(VrashError, match=r'^config.learnin_rate: no such field; did you mean '
                                       r'config.learning_rate\?$'):
    model_config('vrash', {'learnin_rate': 1e-3})
  with pytest.raises(VrashError, match=r'^config.train_steps=1.5: not an integer; allowed: an integer >= 1$'):
    model_config('lm', {'train_steps': 1.5})
  with pytest.raises(VrashError, match='config.hidden=0'):
    harness.shape_config('vrash', 64, 64, 0, 3)


def test_training_refuses_a_bad_config_before_touching_the_workdir(tiny_dataset, tmp_path):
  config = smoke.get_config('vrash')
  config.note_dropout = 1.5
  with pytest.raises(VrashError, match='config.note_dropout=1.5'):
    train.train_and_evaluate(config, tiny_dataset, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_a_saved_config_without_newer_fields_loads_with_the_old_behaviour(tmp_path):
  config = smoke.get_config('lm')
  state = train_state.create_state(config, jax.random.key(0))
  old = ml_collections.ConfigDict({k: v for k, v in config.to_dict().items() if k != 'custom_backward'})
  saver = checkpoint.Checkpoints(str(tmp_path))
  saver.save(1, state, old, {'step': 1})
  saver.close()
  loaded = checkpoint.Checkpoints(str(tmp_path), read_only=True).config()
  assert loaded.custom_backward is False and loaded.hidden == config.hidden


def test_a_saved_config_this_version_cannot_use_is_refused_clearly():
  renamed = base_dict()
  renamed['rhn_depth'] = renamed.pop('depth')
  with pytest.raises(VrashError) as e:
    config_rules.from_saved(renamed, 'old/config.json')
  message = str(e.value)
  assert message.startswith('old/config.json holds a config this version of vrash_jax cannot use')
  assert 'config.depth: missing' in message and 'config.rhn_depth: no such field' in message


def launch_train(*args, workdir='never-created'):
  return subprocess.run([sys.executable, '-m', 'experiments.train', *args, '--data_dir=unused',
                         f'--workdir={workdir}'], capture_output=True, text=True, timeout=120)


def one_error_line(result) -> str:
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  (line,) = [err for err in result.stderr.splitlines() if err.startswith('error: ')]
  return line


def test_launcher_lists_every_bad_value_and_starts_nothing(tmp_path):
  result = launch_train('--config=experiments/configs/vrash.py', '--config.learning_rate=-1',
                        '--config.train_steps=-5', '--config.note_dropout=1.5',
                        '--config.latent_dim=0', '--config.depth=0', workdir=tmp_path / 'run')
  errors = [err for err in result.stderr.splitlines() if err.startswith('error: config.')]
  assert result.returncode == 2 and len(errors) == 5, result.stderr[-2000:]
  assert 'error: config.learning_rate=-1.0: out of range; allowed: a number > 0' in errors
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('source,expected', [
    ('def get_config():\n  return {\n', r'cfg.py: cannot be read \(.*cfg.py, line 2: .*\)'),
    ('import ml_collections\nimport no_such_module_here\n', r'cfg.py, line 2: ModuleNotFoundError: '),
    ('x = 1\n', r'cfg.py: defines no get_config\(\)'),
    ('def get_config():\n  return 1 / 0\n', r'cfg.py, line 2: ZeroDivisionError: division by zero'),
])
def test_a_config_file_that_does_not_load_is_one_line_with_its_line(tmp_path, source, expected):
  path = tmp_path / 'cfg.py'
  path.write_text(source)
  line = one_error_line(launch_train(f'--config={path}'))
  assert line.startswith(f'error: --config {path}') and re.search(expected, line), line


def test_launcher_unknown_and_ill_typed_overrides():
  unknown = one_error_line(launch_train('--config=experiments/configs/vrash.py', '--config.learnin_rate=1'))
  assert unknown == 'error: config.learnin_rate: no such field; did you mean config.learning_rate?'
  typed = one_error_line(launch_train('--config=experiments/configs/vrash.py', '--config.train_steps=1.5'))
  assert typed == 'error: config.train_steps=1.5: not an integer; allowed: an integer >= 1'
  sweep = subprocess.run([sys.executable, '-m', 'experiments.sweep', '--config.hiden=64',
                          '--data_dir=unused', '--workdir=never-created'],
                         capture_output=True, text=True, timeout=120)
  assert one_error_line(sweep) == 'error: config.hiden: no such field; did you mean config.hidden?'
  for flag, message in (('--frontier_free_bits=0.25,lots', '--frontier_free_bits must be numbers >= 0, got 0.25,lots'),
                        ('--frontier_free_bits=-1', '--frontier_free_bits must be numbers >= 0, got -1'),
                        ('--temperatures=0', '--temperatures must be numbers > 0')):
    bad = subprocess.run([sys.executable, '-m', 'experiments.sweep', flag, '--data_dir=unused',
                          '--workdir=never-created'], capture_output=True, text=True, timeout=120)
    assert one_error_line(bad) == f'error: {message}'
  assert not os.path.exists('never-created')
