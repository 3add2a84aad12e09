"""`vrash-bench suite`: what a machine does with our train step, in one command.

  vrash-bench suite [--shapes small,large] [--models lm,vrash] [--dtypes float32,bfloat16] [--config.X=Y]
      [--peers eager,compile,reduce_overhead] [--peer_dtypes float32] [--budget_s 360]
      [--out_dir bench_suite] [--steps 10] [--repeats 5] [--peer_timeout_s 600] [--variants ...]

First, in one process: the dense matmul peak in each dtype and our train step (synthetic
batches) for every model x shape x dtype. Then the same steps compiled other ways
(`variants.py`: XLA flags, unrolled scans; on a GPU all of them), each way in a process of its
own, and the fastest way for each step. Then, when torch is installed, the PyTorch peer of
VRASH at each shape in each mode, each in a process of its own on the same device (JAX and
PyTorch never hold one device's memory together), time-boxed: a peer that has not finished
when its share of `--budget_s` is spent is reported as such. `--config.*` overrides apply to
every row but the shape and dtype. Writes OUT_DIR/suite.md (the table) and OUT_DIR/suite.json,
and prints the table.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Sequence

from absl import flags

from experiments.bench import bench_train, harness, variants
from experiments.configs import model_config
from vrash_jax.config_rules import MODEL_SPECS

FLAGS = flags.FLAGS
DEFAULTS: dict[str, Any] = {}
DEVICES = 1  # this process never starts JAX: ours and the peers run in processes of their own
SHAPES = {'small': (64, 64, 256, 3), 'large': (256, 128, 1024, 5)}  # batch, notes, hidden, depth
DEFAULT_PEERS = ('eager', 'compile', 'reduce_overhead')
NAMES = {m: s.shown_as for m, s in MODEL_SPECS.items() if not s.attention}  # the RHN models: FLOPs are counted for them
flags.DEFINE_list('shapes', list(SHAPES), 'Shapes: small, large, or BATCHxNOTESxHIDDENxDEPTH.')
flags.DEFINE_list('models', ['lm', 'vrash'], 'Models of our train step.')
flags.DEFINE_list('peer_dtypes', ['float32'], 'Dtypes of the PyTorch peer (bfloat16: autocast).')
flags.DEFINE_float('budget_s', 360.0, 'Seconds the suite may take; peers get what ours leave.')
flags.DEFINE_string('out_dir', 'bench_suite', 'Where suite.md and suite.json go.')
flags.DEFINE_list('variants', None, 'Ways of compiling our step, each in a process of its own: '
                  f'{", ".join(variants.VARIANTS)} (default: all on a GPU, `default` elsewhere).')


def parse_shape(text: str) -> tuple[int, int, int, int]:
  """'small', 'large' or 'BxTxHxL' -> (batch, notes, hidden, depth)."""
  if text in SHAPES:
    return SHAPES[text]
  try:
    batch, notes, hidden, depth = (int(v) for v in text.split('x'))
  except ValueError:
    sys.exit(f'--shapes: {text!r} is neither small, large nor BATCHxNOTESxHIDDENxDEPTH')
  return batch, notes, hidden, depth


def measure_ours(shapes: Sequence[tuple[int, ...]], models: Sequence[str], dtypes: Sequence[str], steps: int,
                 repeats: int, path: str, overrides: dict[str, Any] | None = None, peaks: dict[str, float] | None = None
                 ) -> None:
  """Our half of the suite (run in a process of its own): rewrites `path` after every figure,
  so that a process stopped by the budget leaves what it measured."""
  import jax
  import jax.numpy as jnp

  out: dict[str, Any] = {'platform': jax.devices()[0].platform, 'device': jax.devices()[0].device_kind,
                         'devices': jax.device_count(), 'jax': jax.__version__,
                         'xla_flags': os.environ.get('XLA_FLAGS', ''), 'matmul_peak_tflops': dict(peaks or {}),
                         'rows': []}

  def save():
    with open(path, 'w') as f:
      json.dump(out, f)

  for dtype in (d for d in dtypes if d not in out['matmul_peak_tflops']):  # a variant's are the default's
    out['matmul_peak_tflops'][dtype] = bench_train.matmul_peak_flops(jnp.dtype(dtype)) / 1e12
    save()
  for batch, notes, hidden, depth in shapes:
    for model in models:
      for dtype in dtypes:
        row = {'implementation': 'vrash_jax', 'model': model, 'shape': [batch, notes, hidden, depth], 'dtype': dtype}
        try:
          config = model_config(model, {**(overrides or {}), 'batch_size': batch, 'max_len': notes,
                                        'hidden': hidden, 'depth': depth, 'dtype': dtype})
          result = bench_train.measure(config, steps, repeats, peak_flops=out['matmul_peak_tflops'][dtype] * 1e12)
          row.update({k: result[k] for k in ('compile_s', 'step_s', 'notes_per_s', 'fraction_of_peak', 'first_loss',
                                               'first_grad_norm')})
        except Exception as e:  # e.g. out of memory: the suite goes on and says so
          row['status'] = f'failed: {type(e).__name__}: {str(e)[:200]}'
        out['rows'].append(row)
        save()


def run_ours(shapes, models, dtypes, steps: int, repeats: int, timeout_s: float, path: str,
             overrides: dict[str, Any] | None = None, variant: str = variants.DEFAULT,
             peaks: dict[str, float] | None = None) -> dict[str, Any]:
  """`measure_ours` in a child process (compiled as `variant` says: `variants.VARIANTS`); what
  it measured, and which figures it did not reach."""
  overrides = {**(overrides or {}), **variants.VARIANTS[variant][1]}
  code = (f'from experiments.bench import suite; suite.measure_ours({list(shapes)!r}, {list(models)!r}, '
          f'{list(dtypes)!r}, {steps}, {repeats}, {path!r}, {overrides!r}, {dict(peaks or {})!r})')
  status = None
  try:
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=max(timeout_s, 1),
                          env=variants.environment(variant))
    if done.returncode != 0:
      status = f"failed: {(done.stderr.strip().splitlines() or ['no message'])[-1][:200]}"
  except subprocess.TimeoutExpired:
    status = f'not finished within the budget ({timeout_s:.0f} s)'
  ours = json.load(open(path)) if os.path.isfile(path) else {'matmul_peak_tflops': {}, 'rows': []}
  measured = {(r['model'], tuple(r['shape']), r['dtype']) for r in ours['rows']}
  for shape in shapes:
    for model in models:
      for dtype in dtypes:
        if (model, tuple(shape), dtype) not in measured:
          ours['rows'].append({'implementation': 'vrash_jax', 'model': model, 'shape': list(shape),
                               'dtype': dtype, 'status': status or 'not measured'})
  for row in ours['rows']:
    row['variant'] = variant
  return ours


def run_suite(shapes, models, dtypes, peers, peer_dtypes, steps: int, repeats: int, budget_s: float,
              peer_timeout_s: float, out_dir: str, overrides: dict[str, Any] | None = None,
              asked_variants: list[str] | None = None) -> dict[str, Any]:
  """Every figure of the suite, within `budget_s` seconds; writes suite.json and suite.md."""
  started = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  result = run_ours(shapes, models, dtypes, steps, repeats, budget_s, os.path.join(out_dir, 'ours.json'), overrides)
  for variant in variants.chosen(asked_variants, result.get('platform', 'cpu'))[1:]:
    if variant in variants.GPU_ONLY and result.get('platform') != 'gpu':
      result['rows'] += [{'implementation': 'vrash_jax', 'model': m, 'shape': list(s), 'dtype': d, 'variant': variant,
                          'status': 'skipped: GPU only'} for s in shapes for m in models for d in dtypes]
      continue
    left = budget_s - (time.perf_counter() - started)
    result['rows'] += run_ours(shapes, models, dtypes, steps, repeats, left, os.path.join(out_dir, f'{variant}.json'),
                               overrides, variant, result['matmul_peak_tflops'])['rows']
  result.update(date=time.strftime('%Y-%m-%d'), machine=platform.platform(), budget_s=budget_s,
                torch=None, peers_note='')
  if not peers:
    result['peers_note'] = 'no PyTorch peer asked for'
  elif importlib.util.find_spec('torch') is None:
    result['peers_note'] = 'torch is not installed (pip install -e ".[bench]"): no PyTorch peer'
  elif result.get('platform') not in ('cpu', 'gpu'):
    result['peers_note'] = f"PyTorch has no peer on {result.get('platform')}"
  else:
    from importlib import metadata
    result['torch'] = metadata.version('torch')
    device = 'cuda' if result['platform'] == 'gpu' else 'cpu'
    for mode in peers:
      for shape in shapes:
        for dtype in peer_dtypes:
          left = budget_s - (time.perf_counter() - started)
          row = {'implementation': f'torch {mode}', 'model': 'vrash', 'shape': list(shape), 'dtype': dtype}
          if left < 1:
            row['status'] = "skipped: the suite's budget was spent"
          else:
            times = bench_train.run_peer('vrash', *shape, mode, device, dtype, steps, repeats,
                                         min(peer_timeout_s, left))
            row.update(times if 'status' in times else
                       {'compile_s': times['compile_s'], 'step_s': times['step_s'],
                        'notes_per_s': shape[0] * shape[1] / times['step_s']})
          result['rows'].append(row)
  result['wall_s'] = time.perf_counter() - started
  with open(os.path.join(out_dir, 'suite.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(out_dir, 'suite.md'), 'w') as f:
    f.write(table(result) + '\n')
  return result


def _ours(rows: list[dict[str, Any]], model: str, shape: list[int], dtype: str) -> dict[str, Any] | None:
  return next((r for r in rows if r['implementation'] == 'vrash_jax' and r['model'] == model
               and r.get('variant', variants.DEFAULT) == variants.DEFAULT
               and r['shape'] == shape and r['dtype'] == dtype and 'step_s' in r), None)


def table(result: dict[str, Any]) -> str:
  """The suite as Markdown: settings, matmul peaks, a row per figure, bfloat16 against float32."""
  peaks = ', '.join(f'{d} {v:.3g} TFLOP/s' for d, v in result['matmul_peak_tflops'].items())
  lines = [f"Benchmark suite, {result['date']}: {result.get('device')} x {result.get('devices')} "
           f"({result.get('platform')}), jax {result.get('jax')}, torch {result['torch'] or '-'}, "
           f"XLA_FLAGS={result.get('xla_flags') or '(none)'}; {result['wall_s']:.0f} s of a "
           f"{result['budget_s']:.0f} s budget.", '',
           f'Dense matmul peak: {peaks or "-"}. ' + (result['peers_note'] + '.' if result['peers_note'] else ''), '',
           '| implementation | model | batch, notes, hidden, depth | dtype | compile s | step ms | notes/s '
           '| share of matmul peak | vrash_jax speed-up |', '|---|---|---|---|---|---|---|---|---|']
  for r in result['rows']:
    variant = r.get('variant', variants.DEFAULT)
    name = r['implementation'] + (f' ({variant})' if variant != variants.DEFAULT else '')
    head = f"| {name} | {NAMES[r['model']]} | {', '.join(map(str, r['shape']))} | {r['dtype']} "
    if 'status' in r:
      lines.append(head + f"| {r['status']} | | | | |")
      continue
    ours = _ours(result['rows'], r['model'], r['shape'], r['dtype'])
    share = f"{r['fraction_of_peak']:.1%}" if 'fraction_of_peak' in r else '-'
    ratio = '-' if r['implementation'] == 'vrash_jax' or ours is None else f"{r['step_s'] / ours['step_s']:.2f}x"
    lines.append(head + f"| {r['compile_s']:.1f} | {1e3 * r['step_s']:.2f} | {r['notes_per_s']:,.0f} "
                        f'| {share} | {ratio} |')
  ratios = [f"{NAMES[r['model']]} {', '.join(map(str, r['shape']))}: {half['step_s'] / r['step_s']:.2f}x"
            for r in result['rows'] if r['implementation'] == 'vrash_jax' and r['dtype'] == 'float32'
            and r.get('variant', variants.DEFAULT) == variants.DEFAULT and 'step_s' in r
            and (half := _ours(result['rows'], r['model'], r['shape'], 'bfloat16'))]
  if ratios:
    lines += ['', 'bfloat16 step time over float32 (below 1: bfloat16 is faster): ' + '; '.join(ratios) + '.']
  if winners := variants.fastest(result['rows']):
    lines += ['', 'Fastest way to compile each step (`experiments/bench/variants.py`): ' + '; '.join(winners) + '.']
  return '\n'.join(lines)


def run(config) -> dict[str, Any]:
  """The suite with the flags given; `config` is checked, and its `--config.*` overrides apply."""
  del config
  peers = FLAGS.peers if FLAGS['peers'].present else list(DEFAULT_PEERS)
  for flag, given, allowed in (('peers', peers, bench_train.PEERS), ('models', FLAGS.models, NAMES),
                               ('dtypes', FLAGS.dtypes + FLAGS.peer_dtypes, ('float32', 'bfloat16')),
                               ('variants', FLAGS.variants or [], variants.VARIANTS)):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
      sys.exit(f'--{flag}: unknown {unknown}; choose from {", ".join(allowed)}')
  result = run_suite([parse_shape(s) for s in FLAGS.shapes], FLAGS.models, FLAGS.dtypes, peers,
                     FLAGS.peer_dtypes, FLAGS.steps, FLAGS.repeats, FLAGS.budget_s, FLAGS.peer_timeout_s,
                     FLAGS.out_dir, harness.overrides(), FLAGS.variants)
  print(f"written: {os.path.join(FLAGS.out_dir, 'suite.md')}, {os.path.join(FLAGS.out_dir, 'suite.json')}")
  return result
