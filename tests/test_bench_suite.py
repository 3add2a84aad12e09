"""`vrash-bench suite` on a CPU with a tiny shape: what it writes (its structure, not its speed)."""
import json
import os

import pytest

from experiments.bench import suite


def test_the_suite_writes_a_row_per_figure_and_the_bfloat16_ratio(tmp_path):
  result = suite.run_suite([(8, 4, 8, 2)], ['vrash'], ['float32', 'bfloat16'], peers=(), peer_dtypes=['float32'],
                           steps=1, repeats=1, budget_s=600, peer_timeout_s=60, out_dir=str(tmp_path))
  assert json.load(open(tmp_path / 'suite.json')) == result
  assert set(result['matmul_peak_tflops']) == {'float32', 'bfloat16'}
  assert all(v > 0 for v in result['matmul_peak_tflops'].values())
  rows = result['rows']
  assert [(r['implementation'], r['model'], r['shape'], r['dtype']) for r in rows] == [
      ('vrash_jax', 'vrash', [8, 4, 8, 2], 'float32'), ('vrash_jax', 'vrash', [8, 4, 8, 2], 'bfloat16')]
  assert all(r['step_s'] > 0 and r['compile_s'] > 0 and 0 < r['fraction_of_peak'] for r in rows)
  assert all(r['notes_per_s'] == pytest.approx(8 * 4 / r['step_s']) for r in rows)
  markdown = open(tmp_path / 'suite.md').read()
  assert markdown == suite.table(result) + '\n'
  assert 'no PyTorch peer asked for' in markdown
  assert sum(line.startswith('| vrash_jax | VRASH | 8, 4, 8, 2 |') for line in markdown.splitlines()) == 2
  ratio = rows[1]['step_s'] / rows[0]['step_s']
  assert f'VRASH 8, 4, 8, 2: {ratio:.2f}x' in markdown


def test_the_table_compares_each_peer_with_ours_at_its_shape_and_dtype():
  ours = {'implementation': 'vrash_jax', 'model': 'vrash', 'shape': [64, 64, 256, 3], 'dtype': 'float32',
          'compile_s': 3.0, 'step_s': 0.006, 'notes_per_s': 682_667, 'fraction_of_peak': 0.021}
  peer = {'implementation': 'torch reduce_overhead', 'model': 'vrash', 'shape': [64, 64, 256, 3],
          'dtype': 'float32', 'compile_s': 155.0, 'step_s': 0.03, 'notes_per_s': 136_533}
  ran_out = {'implementation': 'torch compile', 'model': 'vrash', 'shape': [256, 128, 1024, 5],
             'dtype': 'float32', 'status': 'not finished in 120 s (compilation included)'}
  result = {'date': '2026-11-27', 'device': 'H100', 'devices': 1, 'platform': 'gpu', 'jax': '0.11.2',
            'torch': '2.11', 'xla_flags': '', 'wall_s': 300, 'budget_s': 360, 'peers_note': '',
            'matmul_peak_tflops': {'float32': 400.0}, 'rows': [ours, peer, ran_out]}
  lines = suite.table(result).splitlines()
  assert '| vrash_jax | VRASH | 64, 64, 256, 3 | float32 | 3.0 | 6.00 | 682,667 | 2.1% | - |' in lines
  assert '| torch reduce_overhead | VRASH | 64, 64, 256, 3 | float32 | 155.0 | 30.00 | 136,533 | - | 5.00x |' in lines
  assert ('| torch compile | VRASH | 256, 128, 1024, 5 | float32 | not finished in 120 s (compilation '
          'included) | | | | |') in lines


def test_shapes_are_named_or_spelled_out():
  assert suite.parse_shape('small') == (64, 64, 256, 3) and suite.parse_shape('large') == (256, 128, 1024, 5)
  assert suite.parse_shape('8x4x16x2') == (8, 4, 16, 2)
  with pytest.raises(SystemExit, match='neither small, large nor BATCHxNOTESxHIDDENxDEPTH'):
    suite.parse_shape('huge')


def test_the_suite_command_refuses_unknown_peers(tmp_path):
  import subprocess
  import sys
  done = subprocess.run([sys.executable, '-m', 'experiments.bench.cli', 'suite', '--peers=jit',
                         f'--out_dir={tmp_path}'], capture_output=True, text=True, timeout=120)
  assert done.returncode == 1 and "--peers: unknown ['jit']" in done.stderr
  done = subprocess.run([sys.executable, '-m', 'experiments.bench.cli', 'suite', '--variants=default,graphs',
                         f'--out_dir={tmp_path}'], capture_output=True, text=True, timeout=120)
  assert done.returncode == 1 and "--variants: unknown ['graphs']" in done.stderr
  assert not os.listdir(tmp_path)


def test_other_ways_of_compiling_are_timed_apart_and_the_fastest_named(tmp_path):
  result = suite.run_suite([(8, 4, 8, 2)], ['lm'], ['float32'], peers=(), peer_dtypes=['float32'], steps=1, repeats=1,
                           budget_s=600, peer_timeout_s=60, out_dir=str(tmp_path),
                           asked_variants=['unroll4', 'command_buffers'])
  rows = {r['variant']: r for r in result['rows']}
  assert list(rows) == ['default', 'unroll4', 'command_buffers']
  assert rows['default']['step_s'] > 0 and rows['unroll4']['step_s'] > 0
  assert rows['command_buffers']['status'] == 'skipped: GPU only'  # not on this CPU
  markdown = open(tmp_path / 'suite.md').read()
  assert '| vrash_jax (unroll4) | LM | 8, 4, 8, 2 | float32 |' in markdown
  best = min(('default', 'unroll4'), key=lambda v: rows[v]['step_s'])
  assert f"lm 8, 4, 8, 2 float32: {best} ({1e3 * rows[best]['step_s']:.2f} ms" in markdown
  # Unrolling reorders no arithmetic: its first step is the default's (what `fastest` checks).
  assert rows['unroll4']['first_loss'] == pytest.approx(rows['default']['first_loss'], rel=1e-6)
  assert rows['unroll4']['first_grad_norm'] == pytest.approx(rows['default']['first_grad_norm'], rel=1e-5)
  assert rows['default']['first_loss'] > 0 and rows['default']['first_grad_norm'] > 0


def _row(variant, dtype, step_ms, loss, grad_norm):
  return {'implementation': 'vrash_jax', 'model': 'vrash', 'shape': [64, 64, 256, 3], 'dtype': dtype,
          'variant': variant, 'step_s': step_ms / 1e3, 'first_loss': loss, 'first_grad_norm': grad_norm}


def test_a_faster_variant_that_computes_another_step_is_named_not_counted():
  rows = [_row('default', 'float32', 4.0, 10.0, 2.0), _row('pallas_layer', 'float32', 2.0, 10.0, 2.01),
          _row('unroll4', 'float32', 3.0, 10.001, 2.0),
          _row('default', 'bfloat16', 4.0, 10.0, 2.0), _row('pallas_layer', 'bfloat16', 2.0, 10.1, 2.0)]
  float32, bfloat16 = suite.variants.fastest(rows)
  # float32: 5e-3 off is too far for pallas_layer, so unroll4 (1e-4 off) wins
  assert float32 == ("vrash 64, 64, 256, 3 float32: unroll4 (3.00 ms, 1.33x the default; first step off the "
                     "default's by 5.0e-03 (pallas_layer), 1.0e-04 (unroll4)) (not counted, off by more than "
                     "0.001: pallas_layer)")
  # bfloat16 allows rounding of 2e-2: the same 1e-2 in the loss counts there
  assert bfloat16.startswith('vrash 64, 64, 256, 3 bfloat16: pallas_layer (2.00 ms, 2.00x the default')
  assert 'not counted' not in bfloat16
