"""`vrash-bench NAME`: one harness for every benchmark (config from --model and --config.*, the
timing, the output). What it runs and writes, never how fast."""
import json
import subprocess
import sys

import jax.numpy as jnp

from experiments.bench import bench_groups, cli
from experiments.configs import smoke
from vrash_jax.study import step_timing


def test_every_benchmark_has_defaults_a_run_and_a_table():
  assert set(cli.BENCHMARKS) == {'train', 'suite', 'profile', 'hlo', 'buckets', 'groups', 'compile', 'lanes', 'pod',
                                  'sample', 'read', 'prep'}
  for name, module in cli.MODULES.items():
    assert isinstance(module.DEFAULTS, dict) and callable(module.run) and callable(module.table), name


def test_the_train_benchmark_takes_config_overrides_and_writes_its_figures(tmp_path):
  out = tmp_path / 'train.json'
  done = subprocess.run([sys.executable, '-m', 'experiments.bench.cli', 'train', '--model=lm', '--config.hidden=8',
                         '--config.depth=1', '--config.batch_size=8', '--config.max_len=4', '--steps=1',
                         '--repeats=1', f'--out={out}'], capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result == json.loads(out.read_text())
  assert (result['model'], result['hidden'], result['depth'], result['batch'], result['length']) == ('lm', 8, 1, 8, 4)
  assert result['step_s'] > 0 and result['notes_per_s'] == 8 * 4 / result['step_s']
  assert '| vrash_jax lm |' in done.stdout


def test_a_bad_override_or_name_is_one_line():
  done = subprocess.run([sys.executable, '-m', 'experiments.bench.cli', 'train', '--config.hidden=0'],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
      'error: config.hidden=0: out of range; allowed: an integer >= 1')
  done = subprocess.run([sys.executable, '-m', 'experiments.bench.cli', 'fastest'], capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 1 and done.stderr.startswith('usage: vrash-bench train|suite|')


def test_groups_measures_each_size_in_both_batch_orders(tiny_dataset):
  config = smoke.get_config('lm')
  result = bench_groups.measure(config, tiny_dataset, [1, 2], steps=1)
  assert [r['runs'] for r in result['rows']] == [1, 2]
  assert all(r['shared_order'] > 0 and r['own_orders'] > 0 for r in result['rows'])
  assert all(r['evaluation_run_by_run_s'] > 0 and r['evaluation_one_step_s'] > 0 for r in result['rows'])
  lines = bench_groups.table(result).splitlines()
  assert lines[-2].startswith('| 1 |') and '| 1.00x |' in lines[-2] and lines[-1].startswith('| 2 |')


def test_a_step_is_timed_after_its_first_call_over_every_repeat():
  calls = []

  def step():
    calls.append(1)
    return jnp.zeros(())

  first, per_step = step_timing.time_steps(step, steps=3, repeats=2)
  assert len(calls) == 1 + 3 * 2 and first >= 0 and per_step >= 0
  batch = step_timing.synthetic_batch(4, 5)
  assert batch['mask'].shape == (4, 5) and batch['mask'].all() and batch['pitch_class'].shape == (4, 5)


def test_hlo_counts_what_each_rhn_loop_launches_and_converts():
  """The RHN loops of an LM step (the decoder's forward and backward scans), a trip per note:
  float32 converts nothing inside them, bfloat16 casts each micro-layer's state for its matmul."""
  from experiments.bench import bench_train, hlo_loops
  from experiments.configs import model_config

  assert hlo_loops.opcode('  ROOT %w = (s32[], /*index=1*/f32[2]{0}) while(%t), body=%b') == 'while'
  assert hlo_loops.opcode('  %f = bf16[8,32]{1,0} fusion(%a, %b), kind=kLoop') == 'fusion'
  depth, notes = 2, 6
  counted = {}
  for dtype in hlo_loops.DTYPES:
    config = model_config('lm', {'batch_size': 8, 'max_len': notes, 'hidden': 16, 'depth': depth, 'dtype': dtype})
    counted[dtype] = hlo_loops.rhn_loops(bench_train.compiled_train_step(config)[0].as_text(), depth)
  for loops in counted.values():
    assert [r['loop'] for r in loops] == ['decoder backward', 'decoder forward']
    assert all(r['trips'] == notes and r['launches'] >= depth for r in loops)
    assert all(r['by_opcode'].get('fusion', 0) >= depth for r in loops)  # at least a kernel a micro-layer
  assert all(r['converts'] == 0 for r in counted['float32'])
  assert all(r['converts_per_layer'] >= 1 for r in counted['bfloat16'])
  table = hlo_loops.table({'model': 'lm', 'shape': [8, notes, 16, depth], 'scan_unroll': 1,
                           'rhn_kernel': 'xla', **counted})
  assert table.count('\n| bfloat16 | ') == 2 and '| float32 | decoder forward | 6 |' in table
