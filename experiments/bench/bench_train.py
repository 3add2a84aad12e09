"""Training throughput of the full train step, against the machine's dense matmul peak.

  vrash-bench train [--model vrash] [--config.batch_size=64 --config.max_len=64 --config.hidden=256
      --config.depth=3] [--config.dtype=bfloat16] [--steps 10 --repeats 5] [--peers eager,compile]

Synthetic batches of `max_len` notes (no dataset needed, so it runs on accelerator images
without TensorFlow). Compilation is timed separately; the step time is the median over
`--repeats` timings of `--steps` steps each. Prints a Markdown table, then (the last line) one
JSON object; `--out` also writes it to a file. `--peers eager,compile` times the PyTorch peer
(`torch_peer.py`) right after ours, on the same batch and device, each mode in a process of its
own (`compile`: torch.compile on the whole model; `reduce_overhead`: the same with CUDA graphs).
`vrash-bench suite` (`suite.py`) measures a whole machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
from absl import flags

from experiments.bench.harness import PAPER_SHAPE
from vrash_jax import notes, sharding, train, train_state
from vrash_jax.study import step_timing

FLAGS = flags.FLAGS
DEFAULTS = PAPER_SHAPE
PEERS = ('eager', 'compile_step', 'compile', 'reduce_overhead')  # torch_peer.MODES, without torch
flags.DEFINE_list('peers', [], 'Also time the PyTorch peer right after ours: any of eager, '
                  'compile_step (torch.compile on the RHN time step), compile (torch.compile on '
                  'the whole model), reduce_overhead (the same with CUDA graphs); needs the `bench` '
                  'extra.')
flags.DEFINE_integer('peer_timeout_s', 600, 'Seconds a PyTorch peer may take, compilation included, '
                     'before it is reported as not finished.', lower_bound=1)


def matmul_peak_flops(dtype: Any = jnp.float32, n: int | None = None, repeats: int = 5) -> float:
  """Dense FLOP/s of an n x n matmul on the default device (median of `repeats`); n is 2048 on a
  CPU and 8192 on an accelerator unless given."""
  n = n or (2048 if jax.devices()[0].platform == 'cpu' else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  return 2 * n**3 / step_timing.median_seconds(lambda: f(a), repeats)


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


def compiled_train_step(config):
  """(compiled step, replicated state, sharded synthetic batch, rng, compile seconds)."""
  mesh = sharding.data_mesh()
  state = jax.jit(lambda r: train_state.create_state(config, r),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  data = sharding.shard_batch(step_timing.synthetic_batch(config.batch_size, config.max_len), mesh)
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


def time_train_step(config, steps: int, repeats: int) -> tuple[float, float, dict[str, float]]:
  """(compile seconds, median warm step seconds, the first step's loss and gradient norm) of the
  train step on a synthetic batch. The first step is what another way of compiling the same step
  must reproduce (`variants.fastest`)."""
  compiled, state, data, rng, compile_s = compiled_train_step(config)
  state, metrics = compiled(state, data, rng)  # the first step, untimed
  first = {'first_loss': float(metrics['loss']), 'first_grad_norm': float(metrics['grad_norm'])}
  carry = [state]

  def step():
    carry[0], metrics = compiled(carry[0], data, rng)
    return metrics

  return compile_s, step_timing.time_steps(step, steps, repeats)[1], first


def measure(config, steps: int = 10, repeats: int = 5, peak_flops: float | None = None) -> dict[str, Any]:
  """Our train step at `config`'s shape (batch_size rows of max_len notes), against the dense
  matmul peak in its dtype (measured here unless given)."""
  compile_s, step_s, first_step = time_train_step(config, steps, repeats)
  peak = peak_flops or matmul_peak_flops(jnp.dtype(config.dtype))
  notes_per_s = config.batch_size * config.max_len / step_s
  flops = model_flops_per_note(config)
  return {
      'model': config.model, 'batch': config.batch_size, 'length': config.max_len, 'hidden': config.hidden,
      'depth': config.depth, 'dtype': config.dtype, 'custom_backward': config.custom_backward,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'device': jax.devices()[0].device_kind, 'devices': jax.device_count(),
      'compile_s': compile_s, 'step_s': step_s, 'notes_per_s': notes_per_s,
      'model_gflop_per_note': flops / 1e9, 'matmul_peak_gflops': peak / 1e9,
      'notes_per_s_at_peak': peak / flops, 'fraction_of_peak': notes_per_s * flops / peak, **first_step,
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


def before_jax() -> None:
  """With a peer, JAX leaves the peer's process room on the same GPU (set before it starts)."""
  if FLAGS.peers:
    os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')


def run(config) -> dict[str, Any]:
  unknown = set(FLAGS.peers) - set(PEERS)
  if unknown:
    sys.exit(f'--peers: unknown {sorted(unknown)}; choose from {", ".join(PEERS)}')
  result = measure(config, FLAGS.steps, FLAGS.repeats)
  if FLAGS.peers:
    result = measure_peers(result, FLAGS.peers, FLAGS.steps, FLAGS.repeats, FLAGS.peer_timeout_s)
  return result
