"""Training throughput of the full train step, against the machine's dense matmul peak.

  vrash-bench train --model vrash --batch 64 --length 64 --hidden 256 --depth 3 [--steps 20]

Synthetic batches (no dataset needed, so it runs on accelerator images without TensorFlow).
Compilation is timed separately; the step time is the median over `--repeats` timings of
`--steps` steps each. Prints a Markdown table, then (the last line) one JSON object; `--out`
also writes it to a file. `--peers eager,compile` times the PyTorch peer (`torch_peer.py`)
right after ours, on the same batch and device, each mode in a process of its own
(`compile`: torch.compile on the whole model; `reduce_overhead`: the same with CUDA graphs).
`vrash-bench suite` (`suite.py`) measures a whole machine.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments.bench import timing
from experiments.configs import MODELS, model_config
from vrash_jax import config_rules, notes, sharding, train, train_state
from vrash_jax.errors import VrashError, exit_with

FLAGS = flags.FLAGS
flags.DEFINE_enum('model', 'vrash', list(MODELS), 'Which architecture.')
flags.DEFINE_integer('batch', 64, 'Global batch size.')
flags.DEFINE_integer('length', 64, 'Notes per sequence.')
flags.DEFINE_integer('hidden', 256, 'RHN state size.')
flags.DEFINE_integer('depth', 3, 'RHN recurrence depth.')
flags.DEFINE_integer('steps', 10, 'Steps per timing.')
flags.DEFINE_integer('repeats', 5, 'Timings; the median is reported.')
flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype (config.dtype).')
flags.DEFINE_string('out', None, 'Also write the figures to this JSON file.')
flags.DEFINE_bool('custom_backward', True, 'RHN gradients by the hand-written VJP (else scan '
                  'autodiff).')
PEERS = ('eager', 'compile_step', 'compile', 'reduce_overhead')  # torch_peer.MODES, without torch
flags.DEFINE_list('peers', [], 'Also time the PyTorch peer right after ours: any of eager, '
                  'compile_step (torch.compile on the RHN time step), compile (torch.compile on '
                  'the whole model), reduce_overhead (the same with CUDA graphs); needs the `bench` '
                  'extra.')
flags.DEFINE_integer('peer_timeout_s', 600, 'Seconds a PyTorch peer may take, compilation included, '
                     'before it is reported as not finished.', lower_bound=1)


def synthetic_batch(batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  out = {f: rng.integers(0, n, (batch, length)).astype(np.int32) for f, n in notes.VOCAB_SIZES.items()}
  out['mask'] = np.ones((batch, length), bool)
  out.update({f: rng.integers(0, n, (batch,)).astype(np.int32) for f, n in notes.META_FIELDS.items()})
  return out


def matmul_peak_flops(dtype: Any = jnp.float32, n: int | None = None, repeats: int = 5) -> float:
  """Dense FLOP/s of an n x n matmul on the default device (median of `repeats`); n is 2048 on a
  CPU and 8192 on an accelerator unless given."""
  n = n or (2048 if jax.devices()[0].platform == 'cpu' else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  return 2 * n**3 / timing.median_seconds(lambda: f(a), repeats)


def rhn_matmul_flops_per_note(input_dim: int, hidden: int, depth: int) -> int:
  """Forward matmul FLOPs of one RHN layer per note: input projection + L recurrent matmuls."""
  return 2 * input_dim * 2 * hidden + depth * 2 * hidden * 2 * hidden


def model_flops_per_note(config) -> int:
  """Matmul FLOPs per note of a train step (forward + backward = 3x forward)."""
  note = config.pitch_embed + config.octave_embed + config.delay_embed
  meta = 2 * config.meta_embed
  decoder_in = meta + (config.latent_dim if config.model != 'lm' else 0) + (note if config.model != 'vae' else 0)
  forward = rhn_matmul_flops_per_note(decoder_in, config.hidden, config.depth)
  if config.model != 'lm':
    forward += rhn_matmul_flops_per_note(note + meta, config.hidden, config.depth)
  forward += 2 * config.hidden * sum(notes.VOCAB_SIZES.values())
  return 3 * forward


def bench_config(model: str, batch: int, length: int, hidden: int, depth: int,
                 custom_backward: bool = True, dtype: str = 'float32', devices: int | None = None):
  """The model's config at this shape, checked like a training run's (over `devices`, by
  default every device JAX sees; the PyTorch peer passes 1 so that JAX never starts)."""
  config = model_config(model, {'batch_size': batch, 'max_len': length, 'hidden': hidden,
                                'depth': depth, 'custom_backward': custom_backward, 'dtype': dtype})
  config_rules.validate(config, devices=devices or jax.device_count())
  return config


def compiled_train_step(config):
  """(compiled step, replicated state, sharded synthetic batch, rng, compile seconds)."""
  mesh = sharding.data_mesh()
  state = jax.jit(lambda r: train_state.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  data = sharding.shard_batch(synthetic_batch(config.batch_size, config.max_len), mesh)
  rng = jax.random.key(1)
  start = time.perf_counter()
  compiled = jax.jit(train.make_train_step(config), donate_argnums=0).lower(
      state, data, rng).compile()
  return compiled, state, data, rng, time.perf_counter() - start


def torch_device() -> str:
  """Where the PyTorch peer runs: the GPU when JAX runs on one (a CUDA build of torch)."""
  return 'cuda' if jax.devices()[0].platform == 'gpu' else 'cpu'


def run_peer(model: str, batch: int, length: int, hidden: int, depth: int, mode: str, device: str,
             dtype: str, steps: int, repeats: int, timeout_s: float) -> dict[str, Any]:
  """The PyTorch peer in a process of its own (torch and JAX never share a device's memory);
  {'step_s', 'compile_s'}, or {'status'} saying why there are no figures."""
  command = [sys.executable, '-m', 'experiments.bench.torch_peer', f'--model={model}', f'--batch={batch}',
             f'--length={length}', f'--hidden={hidden}', f'--depth={depth}', f'--mode={mode}',
             f'--device={device}', f'--dtype={dtype}', f'--steps={steps}', f'--repeats={repeats}']
  try:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return {'status': f'not finished in {timeout_s:.0f} s (compilation included)'}
  if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or ['no message'])[-1]
    return {'status': f'failed: {last[:200]}'}
  return json.loads(done.stdout.strip().splitlines()[-1])


def measure_peers(result: dict[str, Any], peers: list[str], steps: int, repeats: int, timeout_s: float
                  ) -> dict[str, Any]:
  """Adds the PyTorch peer's figures (same config, same batch, same device) and our ratio."""
  for peer in peers:
    times = run_peer(result['model'], result['batch'], result['length'], result['hidden'], result['depth'],
                     peer, torch_device(), result['dtype'], steps, repeats, timeout_s)
    if 'status' in times:
      result[f'torch_{peer}_status'] = times['status']
      continue
    notes_per_s = result['batch'] * result['length'] / times['step_s']
    result.update({f'torch_{peer}_step_s': times['step_s'],
                   f'torch_{peer}_compile_s': times['compile_s'],
                   f'torch_{peer}_notes_per_s': notes_per_s,
                   f'speedup_vs_torch_{peer}': result['notes_per_s'] / notes_per_s})
  return result


def time_train_step(config, steps: int, repeats: int) -> tuple[float, float]:
  """(compile seconds, median warm step seconds) of the train step on a synthetic batch."""
  compiled, state, data, rng, compile_s = compiled_train_step(config)
  state, metrics = compiled(state, data, rng)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, data, rng)
    jax.block_until_ready(metrics)
    times.append((time.perf_counter() - start) / steps)
  return compile_s, statistics.median(times)


def measure(model: str, batch: int, length: int, hidden: int, depth: int, steps: int = 10,
            repeats: int = 5, dtype: str = 'float32', custom_backward: bool = True,
            peak_flops: float | None = None) -> dict[str, Any]:
  """Our train step at one shape, against the dense matmul peak in its dtype (measured here
  unless given)."""
  config = bench_config(model, batch, length, hidden, depth, custom_backward, dtype)
  compile_s, step_s = time_train_step(config, steps, repeats)
  peak = peak_flops or matmul_peak_flops(jnp.dtype(dtype))
  notes_per_s = batch * length / step_s
  flops = model_flops_per_note(config)
  return {
      'model': model, 'batch': batch, 'length': length, 'hidden': hidden, 'depth': depth,
      'dtype': dtype, 'custom_backward': custom_backward,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'device': jax.devices()[0].device_kind, 'devices': jax.device_count(),
      'compile_s': compile_s, 'step_s': step_s, 'notes_per_s': notes_per_s,
      'model_gflop_per_note': flops / 1e9, 'matmul_peak_gflops': peak / 1e9,
      'notes_per_s_at_peak': peak / flops, 'fraction_of_peak': notes_per_s * flops / peak,
  }


def table(result: dict[str, Any]) -> str:
  """A Markdown row per implementation: ours, then any PyTorch peer."""
  settings = (f"{result['device']} x {result['devices']}, {result['dtype']}, "
              f"{'hand-written' if result['custom_backward'] else 'autodiff'} RHN backward, "
              f"XLA_FLAGS={result['xla_flags'] or '(none)'}")
  lines = [settings, '',
           '| implementation | compile s | step s | notes/s | share of peak | ours / theirs |',
           '|---|---|---|---|---|---|',
           f"| vrash_jax {result['model']} | {result['compile_s']:.1f} | {result['step_s']:.4f} "
           f"| {result['notes_per_s']:,.0f} | {result['fraction_of_peak']:.1%} | - |"]
  for peer in PEERS:
    if f'torch_{peer}_status' in result:
      lines.append(f"| torch {peer} | {result[f'torch_{peer}_status']} | | | | |")
    if f'torch_{peer}_step_s' in result:
      lines.append(f"| torch {peer} | {result[f'torch_{peer}_compile_s']:.1f} "
                   f"| {result[f'torch_{peer}_step_s']:.4f} "
                   f"| {result[f'torch_{peer}_notes_per_s']:,.0f} | - "
                   f"| {result[f'speedup_vs_torch_{peer}']:.2f}x |")
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  del argv
  unknown = set(FLAGS.peers) - set(PEERS)
  if unknown:
    sys.exit(f'--peers: unknown {sorted(unknown)}; choose from {", ".join(PEERS)}')
  if FLAGS.peers:  # before JAX starts: leave the peer's process room on the same GPU
    os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  try:
    result = measure(FLAGS.model, FLAGS.batch, FLAGS.length, FLAGS.hidden, FLAGS.depth,
                     FLAGS.steps, FLAGS.repeats, FLAGS.dtype, FLAGS.custom_backward)
  except VrashError as e:
    exit_with(e)
  if FLAGS.peers:
    result = measure_peers(result, FLAGS.peers, FLAGS.steps, FLAGS.repeats, FLAGS.peer_timeout_s)
  print(table(result))
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      json.dump(result, f, indent=1)
  print(json.dumps(result), flush=True)
