"""Sampling throughput: the jit-compiled scan sampler vs. per-note Python loops.

  vrash-bench sample [--model vrash] [--batches 1,256] [--config.max_len=64] [--out bench_sample.json]

Three ways to draw the same melodies with the same (untrained) parameters:
  scan         `Sampler.sample`: one compiled program, a `lax.scan` over notes;
  loop_jit     a Python loop calling the compiled one-note step (one dispatch per note);
  loop_eager   a Python loop calling the same step without jit (op-by-op, the naive way).
Each draws `max_len` notes (64 unless overridden) from the base config's model, timed warm
(compilation excluded), median of `--repeats`. Prints a Markdown table, then the figures as JSON.
"""
from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
from absl import flags

from vrash_jax import models, notes, train_state
from vrash_jax.melodist import Sampler
from vrash_jax.study import step_timing

FLAGS = flags.FLAGS
DEFAULTS = {'max_len': 64}  # notes per melody drawn
flags.DEFINE_list('batches', ['1', '256'], 'Melodies drawn at once.')


def sampling_modes(sampler: Sampler, params, meta: dict, z, rng: jax.Array, length: int) -> dict:
  """The three ways to sample `length` notes, each a function of no arguments: one scan, a
  Python loop over a jitted step, and a Python loop over the eager step."""
  temperature = jnp.float32(1.0)

  def loop(step):
    carry = sampler.start(params, meta, z, length)
    out = []
    for key in jax.random.split(rng, length):
      carry, tokens = step(params, meta, z, temperature, False, carry, key)
      out.append(tokens)
    return out

  jit_step = jax.jit(sampler.step, static_argnums=4)
  return {
      'scan': lambda: sampler.sample(params, rng, meta, length, 1.0, z),
      'loop_jit': lambda: loop(jit_step),
      'loop_eager': lambda: loop(sampler.step),
  }


def measure(config, batches: list[int], repeats: int) -> dict:
  """Melodies of `config.max_len` notes drawn in each mode, `batches` at once."""
  length = config.max_len
  model = models.MelodyModel(config)
  sampler = Sampler(model)
  params = train_state.create_state(config, jax.random.key(0)).params
  rows = []
  for num in batches:
    meta = {f: jnp.zeros((num,), jnp.int32) for f in notes.META_FIELDS}
    z = sampler.prior(jax.random.key(1), num) if model.has_latent else None
    modes = sampling_modes(sampler, params, meta, z, jax.random.key(2), length)
    for mode, fn in modes.items():
      seconds = step_timing.median_seconds(fn, repeats)
      rows.append({'mode': mode, 'batch': num, 'seconds': seconds,
                   'notes_per_s': num * length / seconds})
  return {'model': config.model, 'length': length, 'hidden': config.hidden, 'depth': config.depth, 'rows': rows,
          'device': jax.devices()[0].device_kind, 'machine': platform.platform(),
          'date': time.strftime('%Y-%m-%d')}


def table(result: dict) -> str:
  scan = {r['batch']: r['notes_per_s'] for r in result['rows'] if r['mode'] == 'scan'}
  lines = ['| mode | batch | s per batch | notes/s | scan speed-up |', '|---|---|---|---|---|']
  for r in result['rows']:
    lines.append(f"| {r['mode']} | {r['batch']} | {r['seconds']:.4f} | {r['notes_per_s']:,.0f} "
                 f"| {scan[r['batch']] / r['notes_per_s']:.1f}x |")
  return '\n'.join(lines)


def run(config) -> dict:
  return measure(config, [int(b) for b in FLAGS.batches], FLAGS.repeats)
