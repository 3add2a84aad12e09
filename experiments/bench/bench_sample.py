"""Sampling throughput: the jit-compiled scan sampler vs. per-note Python loops.

  python -m experiments.bench.bench_sample --model vrash --batches 1,256 --length 64 --out bench_sample.json

Three ways to draw the same melodies with the same (untrained) parameters:
  scan         `Sampler.sample`: one compiled program, a `lax.scan` over notes;
  loop_jit     a Python loop calling the compiled one-note step (one dispatch per note);
  loop_eager   a Python loop calling the same step without jit (op-by-op, the naive way).
Each is timed warm (compilation excluded), median of `--repeats`. Prints a Markdown table and
writes the figures as JSON.
"""
from __future__ import annotations

import json
import platform
import time

import jax
import jax.numpy as jnp
from absl import flags

from experiments import launcher
from experiments.bench import timing
from experiments.configs import MODELS, model_config
from vrash_jax import models, notes, train_state
from vrash_jax.errors import exit_on_user_error
from vrash_jax.melodist import Sampler

FLAGS = flags.FLAGS
flags.DEFINE_enum('model', 'vrash', list(MODELS), 'Which architecture.')
flags.DEFINE_list('batches', ['1', '256'], 'Melodies drawn at once.')
flags.DEFINE_integer('length', 64, 'Notes per melody.')
flags.DEFINE_integer('hidden', 256, 'RHN state size.')
flags.DEFINE_integer('depth', 3, 'RHN recurrence depth.')
flags.DEFINE_integer('repeats', 3, 'Timings; the median is reported.')
flags.DEFINE_string('out', 'bench_sample.json', 'Where the JSON figures go.')


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


def measure(model_name: str, batches: list[int], length: int, hidden: int, depth: int,
            repeats: int) -> dict:
  config = model_config(model_name, {'hidden': hidden, 'depth': depth})
  model = models.MelodyModel(config)
  sampler = Sampler(model)
  params = train_state.create_state(config, jax.random.key(0)).params
  rows = []
  for num in batches:
    meta = {f: jnp.zeros((num,), jnp.int32) for f in notes.META_FIELDS}
    z = sampler.prior(jax.random.key(1), num) if model.has_latent else None
    modes = sampling_modes(sampler, params, meta, z, jax.random.key(2), length)
    for mode, fn in modes.items():
      seconds = timing.median_seconds(fn, repeats)
      rows.append({'mode': mode, 'batch': num, 'seconds': seconds,
                   'notes_per_s': num * length / seconds})
  return {'model': model_name, 'length': length, 'hidden': hidden, 'depth': depth, 'rows': rows,
          'device': jax.devices()[0].device_kind, 'machine': platform.platform(),
          'date': time.strftime('%Y-%m-%d')}


def table(result: dict) -> str:
  scan = {r['batch']: r['notes_per_s'] for r in result['rows'] if r['mode'] == 'scan'}
  lines = ['| mode | batch | s per batch | notes/s | scan speed-up |', '|---|---|---|---|---|']
  for r in result['rows']:
    lines.append(f"| {r['mode']} | {r['batch']} | {r['seconds']:.4f} | {r['notes_per_s']:,.0f} "
                 f"| {scan[r['batch']] / r['notes_per_s']:.1f}x |")
  return '\n'.join(lines)


@exit_on_user_error
def main(argv: list[str]) -> None:
  result = measure(FLAGS.model, [int(b) for b in FLAGS.batches], FLAGS.length, FLAGS.hidden,
                   FLAGS.depth, FLAGS.repeats)
  with open(FLAGS.out, 'w') as f:
    json.dump(result, f, indent=1)
  print(table(result))


if __name__ == '__main__':
  launcher.run(main)
