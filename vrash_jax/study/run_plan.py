"""A sweep's plan, said before it starts: its runs and their steps, the widths they compile, and
a projected wall time from train and evaluation steps measured on this machine.

The steps are timed with the runs' own compiled functions (the persistent compilation cache and
the evaluation's jit cache hand them to the runs), at the narrowest and the widest padded width
of the training batches; a batch's time is interpolated linearly in its width. Evaluations are
the valid split's bound every `eval_every` steps; compilation is counted once per distinct config
and width (seeds share it). Saturation can stop runs earlier, so the projection is an upper bound
for the runs; test evaluation, samples and the claims come after it and are not projected.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vrash_jax import evaluation, input_pipeline, sharding, train
from vrash_jax.train_state import create_state, purpose_rng


@dataclasses.dataclass
class PlannedRun:
  name: str  # its folder under WORKDIR/runs
  config: ml_collections.ConfigDict
  done_steps: int  # trained in an earlier sitting (run.json)
  finished: bool  # saturated or at train_steps already

  @property
  def remaining_steps(self) -> int:
    return 0 if self.finished else self.config.train_steps - self.done_steps


def planned_run(config: ml_collections.ConfigDict, directory: str) -> PlannedRun:
  """A run as its folder's run.json (written by `runs.train_run`) left it."""
  path = os.path.join(directory, 'run.json')
  info = json.load(open(path)) if os.path.isfile(path) else {}
  done = int(info.get('step', 0))
  finished = info.get('stopped_by') == 'saturation' or done >= config.train_steps
  return PlannedRun(os.path.basename(directory), config, done, finished)


def batch_widths(config: ml_collections.ConfigDict, train_arrays: dict[str, Any]) -> np.ndarray:
  """The padded width of every training batch of one epoch."""
  batches = input_pipeline.TrainBatches(train_arrays, config.batch_size, config.seed,
                                        bucket_step=config.bucket_step)
  return np.array([batches.width(batches.indices(step)) for step in range(batches.batches_per_epoch)])


def _host_rows(global_batch: int, examples: int) -> np.ndarray:
  """This host's rows of a global batch of the first examples (repeated if there are fewer)."""
  rows = np.arange(global_batch) % examples
  return rows[input_pipeline.host_rows(global_batch, jax.process_index(), jax.process_count())]


def time_train_step(config: ml_collections.ConfigDict, train_arrays: dict[str, Any], width: int,
                    steps: int = 3) -> tuple[float, float]:
  """(first call seconds, i.e. compilation, warm step seconds) of the run's train step on
  real training rows padded to `width`."""
  mesh = sharding.data_mesh()
  step_fn = train.jit_train_step(config, mesh)
  state = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))(
      purpose_rng(config.seed, 'init'))
  rows = _host_rows(config.batch_size, len(train_arrays['length']))
  batch = sharding.shard_batch(input_pipeline.gather(train_arrays, rows, width), mesh)
  rng = purpose_rng(config.seed, 'train')
  start = time.perf_counter()
  state, metrics = step_fn(state, batch, rng)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, batch, rng)
  jax.block_until_ready(metrics)
  return first, (time.perf_counter() - start) / steps


def time_evaluation(config: ml_collections.ConfigDict, valid_arrays: dict[str, Any], width: int) -> float:
  """Seconds of one evaluation batch of the valid bound at `width` (compiled first)."""
  mesh = sharding.data_mesh()
  state = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))(
      purpose_rng(config.seed, 'init'))
  rows = _host_rows(evaluation.eval_batch_size(config, mesh), len(valid_arrays['length']))
  batch = [input_pipeline.gather(valid_arrays, rows, width)]
  rng = purpose_rng(config.seed, 'eval')
  evaluation.evaluate(state, batch, mesh, rng, config.valid_iw_samples)
  start = time.perf_counter()
  evaluation.evaluate(state, batch, mesh, rng, config.valid_iw_samples)
  return time.perf_counter() - start


def measure_model(config: ml_collections.ConfigDict, train_arrays: dict[str, Any],
                  valid_arrays: dict[str, Any] | None) -> dict[str, Any]:
  """Step times at the narrowest and widest batch width, compilation, and one evaluation."""
  widths = batch_widths(config, train_arrays)
  low, high = int(widths.min()), int(widths.max())
  compile_s, high_s = time_train_step(config, train_arrays, high)
  low_s = high_s if low == high else time_train_step(config, train_arrays, low)[1]
  per_batch = np.interp(widths, [low, high], [low_s, high_s]) if high > low else np.full(len(widths), high_s)
  out = {'widths': sorted(set(widths.tolist())), 'step_s': {low: low_s, high: high_s},
         'mean_step_s': float(per_batch.mean()), 'compile_s': compile_s, 'evaluation_s': 0.0}
  if valid_arrays is not None and config.eval_every > 0:
    eval_widths = input_pipeline.padded_widths(valid_arrays['length'], config.max_len, config.bucket_step)
    batches = -(-len(eval_widths) // evaluation.eval_batch_size(config, sharding.data_mesh()))
    out['evaluation_s'] = time_evaluation(config, valid_arrays, high) * batches * float(eval_widths.mean()) / high
  return out


def evaluations(run: PlannedRun) -> int:
  """Valid evaluations still ahead of a run."""
  every, last = run.config.eval_every, run.config.train_steps
  if run.finished or every <= 0:
    return 0
  due = set(range(every, last + 1, every)) | {last}
  return sum(step > run.done_steps for step in due)


def project(runs: Sequence[PlannedRun], measured: dict[str, dict[str, Any]]) -> dict[str, float]:
  """Seconds the runs still need: training steps, evaluations, compilation (once per distinct
  config and width; seeds share it, done runs have it cached)."""
  out = {'training': 0.0, 'evaluation': 0.0, 'compilation': 0.0}
  compiled = set()
  for run in (r for r in runs if r.remaining_steps):
    m = measured[run.config.model]
    out['training'] += run.remaining_steps * m['mean_step_s']
    out['evaluation'] += evaluations(run) * m['evaluation_s']
    key = json.dumps({k: v for k, v in run.config.to_dict().items() if k != 'seed'}, sort_keys=True)
    if key not in compiled:
      compiled.add(key)
      out['compilation'] += m['compile_s'] * len(m['widths'])
  out['total'] = sum(out.values())
  return out


class Progress:
  """Says which run of the plan starts, and how much of the projection is left from there."""

  def __init__(self, runs: Sequence[PlannedRun], measured: dict[str, dict[str, Any]]):
    self.order = [r.name for r in runs]
    self.seconds = {}
    for r in runs:
      alone = project([r], measured)
      self.seconds[r.name] = alone['training'] + alone['evaluation']
    self.announced: set[str] = set()

  def starting(self, directory: str) -> None:
    name = os.path.basename(directory)
    if name in self.announced or name not in self.order:
      return  # a frontier point that is a comparison run, trained already
    self.announced.add(name)
    index = self.order.index(name)
    left = sum(self.seconds[n] for n in self.order[index:])
    logging.info('run %d of %d: %s; about %s of training and evaluation to go, this run included',
                 index + 1, len(self.order), name, duration(left))


def duration(seconds: float) -> str:
  return f'{seconds / 60:.1f} min' if seconds < 6000 else f'{seconds / 3600:.1f} h'


def describe(runs: Sequence[PlannedRun], measured: dict[str, dict[str, Any]], projected: dict[str, float],
             device: str) -> str:
  """The plan as the lines a sweep logs before it starts."""
  left = [r for r in runs if r.remaining_steps]
  lines = [f'plan: {len(runs)} runs, {len(runs) - len(left)} finished in earlier sittings; steps per run: '
           + ', '.join(sorted({f'{r.config.train_steps} of batch {r.config.batch_size}' for r in runs}))]
  for model, m in measured.items():
    steps = ', '.join(f'{1e3 * s:.1f} ms at width {w}' for w, s in m['step_s'].items())
    lines.append(f'{model}: {len(m["widths"])} widths ({", ".join(map(str, m["widths"]))}); measured on {device}: '
                 f'step {steps} (mean over an epoch {1e3 * m["mean_step_s"]:.1f} ms), compilation '
                 f'{m["compile_s"]:.1f} s a width, a valid evaluation {m["evaluation_s"]:.2f} s')
  lines.append(f'projected for the {len(left)} runs to go: about {duration(projected["total"])} (training '
               f'{duration(projected["training"])}, evaluation {duration(projected["evaluation"])}, compilation '
               f'{duration(projected["compilation"])}); test figures, samples and claims follow')
  return '\n'.join(lines)
