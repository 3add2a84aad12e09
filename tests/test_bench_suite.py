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
