"""A sweep's plan, said before it starts: its runs and the groups they train in, the widths they
compile, and (`--plan_only`) a projected wall time from group steps and evaluations measured on
this machine; as it goes, the time left from the groups trained so far.

Runs train in groups (`train.train_runs`) of up to `group_size`: runs that may share a step (one
model, the same shapes and schedule, the same step reached), in seed order (every seed's
batch has the same width at a step: `input_pipeline.TrainBatches`); on a CPU only one seed's
(`mixes_seeds`). On an accelerator the size is the one whose groups, at measured group steps,
take the least time together. On a CPU with its one device (the default) a group is one run,
and `lanes` groups train at once, a core each, all on that device (BENCHMARKS.md, "Lanes"); a
CPU made several devices (XLA_FLAGS, as the tests do) trains a run per device in each group,
one group at a time. On many hosts every host plans alike from the workdir (`agree` checks it),
and a group's runs axis spans the hosts: each run's batch is split over one host's devices
(BENCHMARKS.md, "Pod slices").

Steps are timed with the runs' own compiled functions (the persistent compilation cache and the
evaluation's jit cache hand them to the runs), at the narrowest and the widest padded width of
the training batches; a batch's time is interpolated linearly in its width. Evaluations are the
valid split's bound every `eval_every` steps; compilation is counted once per group config and size.
With lanes, steps are timed on one lane's devices and the projection divides by their number.
Saturation can stop runs earlier, so the projection is an upper bound for the runs; test
evaluation, samples and the claims come after it and are not projected.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from vrash_jax import evaluation, input_pipeline, sharding, train
from vrash_jax.errors import PROGRESS, VrashError
from vrash_jax.study import step_timing
from vrash_jax.study.rundir import RunDir
from vrash_jax.train_state import create_state, purpose_rng

# Tried on an accelerator, up to the largest group the sweep can form (and that group itself): on
# one H100 at the paper's size VRASH still trained 1.26x more runs a second at 16 than at 8
# (BENCHMARKS.md).
GROUP_SIZES = (1, 2, 4, 8, 16, 32)
NEAR = 1.01  # caps whose groups take this much longer at most are as fast: the smallest wins


@dataclasses.dataclass
class PlannedRun:
  directory: str
  config: ml_collections.ConfigDict
  done_steps: int  # its newest checkpoint's step
  finished: bool  # saturated or at train_steps already

  @property
  def name(self) -> str:
    return os.path.basename(self.directory)

  @property
  def remaining_steps(self) -> int:
    return 0 if self.finished else self.config.train_steps - self.done_steps


def planned_run(config: ml_collections.ConfigDict, directory: str) -> PlannedRun:
  """A run as its folder left it (`RunDir`): its newest checkpoint, and whether it saturated."""
  folder = RunDir(directory)
  done = folder.reached_step()
  return PlannedRun(directory, config, done, done >= config.train_steps or folder.saturated())


def form_groups(runs: Sequence[PlannedRun], size: int, mix_seeds: bool = True) -> list[list[PlannedRun]]:
  """The runs still to train, in groups of up to `size` that may share a step, in seed order
  (one seed's runs side by side); in the order of `runs` otherwise. Without `mix_seeds` a group holds one
  seed's runs only (see `mixes_seeds`)."""
  buckets: dict[tuple[str, int, int], list[PlannedRun]] = {}
  for run in runs:
    if run.remaining_steps:
      seed = -1 if mix_seeds else run.config.seed
      buckets.setdefault((train.group_key(run.config), run.done_steps, seed), []).append(run)
  groups = []
  for members in buckets.values():
    members = sorted(members, key=lambda r: r.config.seed)  # stable: a seed's runs stay in order
    groups += [members[i:i + size] for i in range(0, len(members), size)]
  return groups


def batch_widths(config: ml_collections.ConfigDict, train_arrays: dict[str, Any]) -> np.ndarray:
  """The padded width of every training batch of one epoch."""
  batches = input_pipeline.TrainBatches(train_arrays, config.batch_size, config.seed,
                                        bucket_step=config.bucket_step)
  return np.array([batches.width(batches.indices(step)) for step in range(batches.batches_per_epoch)])


def _host_rows(global_batch: int, examples: int) -> np.ndarray:
  """This host's rows of a global batch of the first examples (repeated if there are fewer)."""
  rows = np.arange(global_batch) % examples
  return rows[input_pipeline.host_rows(global_batch, jax.process_index(), jax.process_count())]


def seeded(config: ml_collections.ConfigDict, runs: int) -> list[ml_collections.ConfigDict]:
  """`runs` copies of `config` with seeds 0, 1, ...: a group as the benchmarks and the plan time it."""
  configs = [config.copy_and_resolve_references() for _ in range(runs)]
  for seed, c in enumerate(configs):
    c.seed = seed
  return configs


def group_stepper(config: ml_collections.ConfigDict, runs: int, train_arrays: dict[str, Any], width: int
                  ) -> Callable[[], Any]:
  """A function that advances a group of `runs` runs of `config` (as `train.Group` compiles it,
  on this thread's lane) one step on real training rows padded to `width`, and returns its
  metrics (not waited for)."""
  configs = seeded(config, runs)
  mesh = sharding.group_mesh(runs)
  step_fn = train.jit_group_step(config, mesh)
  init = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))
  state = [train.stack([init(purpose_rng(c.seed, 'init')) for c in configs], mesh)]
  rngs, hyper, active = train.group_inputs(configs, mesh)
  examples = np.arange(config.batch_size) % len(train_arrays['length'])  # the first, repeated if too few
  batch = sharding.shard_group_batch(
      [lambda wanted: input_pipeline.gather(train_arrays, examples[wanted], width)] * runs, mesh, config.batch_size)

  def step():
    state[0], metrics = step_fn(state[0], batch, rngs, hyper, active)
    return metrics

  return step


def time_group_step(config: ml_collections.ConfigDict, runs: int, train_arrays: dict[str, Any], width: int,
                    steps: int = 3) -> tuple[float, float]:
  """(first call seconds, i.e. compilation, warm step seconds) of the step of a group of `runs`
  runs of `config` (as `train.Group` compiles it) on real training rows padded to `width`, timed
  as the benchmarks time a step (`step_timing`)."""
  return step_timing.time_steps(group_stepper(config, runs, train_arrays, width), steps)


def mixes_seeds() -> bool:
  """Whether a group may hold runs of different seeds: not on one host's CPU. There a pair of one
  seed's runs (one batch order) trained 1.24x the runs of a run alone, but a pair of two seeds,
  padded to the wider of their batches, no more than a run alone (README command 1, 2026-11-27;
  seeds' batches now share their widths), and a group of the odd run out compiles programs of
  its own; alone, every seed of a model shares one compiled step (and on one CPU device runs
  train in lanes). On many hosts a group is how runs spread over them."""
  return jax.devices()[0].platform != 'cpu' or jax.process_count() > 1


MAX_LANES = 8


def lanes() -> int:
  """How many groups train at once (`runs.train_groups`): on one host's CPU with its one device,
  one a core (up to MAX_LANES), every lane on that device; elsewhere one, over every device (a
  CPU made several devices, as the tests do, splits each batch over them)."""
  if jax.devices()[0].platform != 'cpu' or jax.process_count() > 1 or jax.device_count() > 1:
    return 1
  return max(1, min(len(os.sched_getaffinity(0)), MAX_LANES))


def group_size(config: ml_collections.ConfigDict, train_arrays: dict[str, Any],
               group_sizes: Callable[[int], list[int]]) -> int:
  """How many runs to train together at most; `group_sizes(cap)` lists the sizes of the groups the
  sweep forms at that cap. On a CPU: one a device (of every host): one on its one device, where
  runs train side by side in lanes instead (a vmapped pair of runs on one device costs more than
  it saves). On accelerators: the cap whose groups take the least time together, from group steps
  process 0 measured at the sizes in GROUP_SIZES (times the hosts: a group spreads its runs over
  them) and, on one host, at the largest group, until a larger group trains fewer runs a second.
  A step there costs a floor of latency plus a little a run, so a remainder group (16 + 5 of 21)
  costs nearly a whole group's step more than one group of all (21)."""
  largest = max(group_sizes(1 << 30), default=1)
  if jax.devices()[0].platform == 'cpu':
    return max(1, min(jax.device_count(), largest))
  width = int(batch_widths(config, train_arrays).max())
  hosts = jax.process_count()
  candidates = [g * hosts for g in GROUP_SIZES if g * hosts <= max(largest, hosts)]
  if hosts == 1 and largest not in candidates:
    candidates = [g for g in candidates if g < largest] + [largest]
  step_s: dict[int, float] = {}
  for runs in candidates:
    step_s[runs] = time_group_step(config, runs, train_arrays, width)[1]
    logging.info('a group of %d runs trains %.1f runs x steps a second', runs, runs / step_s[runs])
    if len(step_s) > 1 and runs / step_s[runs] < max(r / t for r, t in step_s.items()):
      break  # past the size that pays
  totals = {cap: _groups_step_s(group_sizes(cap), step_s) for cap in step_s}
  best = min(cap for cap, total in totals.items() if total <= NEAR * min(totals.values()))
  logging.info('groups of up to %d runs: a step of every group %.1f ms (measured at %s)', best,
               totals[best] * 1e3, sorted(step_s))
  return best if hosts == 1 else int(multihost_utils.broadcast_one_to_all(np.int32(best)))


def _groups_step_s(sizes: Sequence[int], step_s: dict[int, float]) -> float:
  """Seconds of one step of each group, a group's interpolated between the measured sizes."""
  measured = sorted(step_s)
  return float(sum(np.interp(size, measured, [step_s[r] for r in measured]) for size in sizes))


def agree(groups: Sequence[Sequence[PlannedRun]]) -> None:
  """On many hosts, waits for every host to have planned, and refuses to train unless they
  planned the same groups (each read the workdir itself: hosts that saw it differently would
  wait on each other's steps forever)."""
  if jax.process_count() == 1:
    return
  names = '|'.join(','.join(r.name for r in g) for g in groups)
  digest = np.frombuffer(hashlib.sha256(names.encode()).digest()[:8], np.int64)
  seen = multihost_utils.process_allgather(digest)
  if not (seen == seen[0]).all():
    raise VrashError(f'the {jax.process_count()} hosts planned different groups from the workdir (this one: '
                     f'{names[:200]}); does every host see the same --workdir?')


def time_evaluation(config: ml_collections.ConfigDict, valid_arrays: dict[str, Any], width: int) -> float:
  """Seconds of one evaluation batch of the valid bound at `width` (compiled first)."""
  mesh = sharding.data_mesh()
  state = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))(
      purpose_rng(config.seed, 'init'))
  rows = _host_rows(evaluation.eval_batch_size(config, mesh), len(valid_arrays['length']))
  batch = [input_pipeline.gather(valid_arrays, rows, width)]
  rng = purpose_rng(config.seed, 'eval')
  return step_timing.time_steps(lambda: evaluation.evaluate(state, batch, mesh, rng, config.valid_iw_samples), 1)[1]


def measure_model(config: ml_collections.ConfigDict, runs: int, train_arrays: dict[str, Any],
                  valid_arrays: dict[str, Any] | None) -> dict[str, Any]:
  """A group step of `runs` runs at the narrowest and widest batch width, its compilation, and
  one run's valid evaluation."""
  widths = batch_widths(config, train_arrays)
  low, high = int(widths.min()), int(widths.max())
  compile_s, high_s = time_group_step(config, runs, train_arrays, high)
  low_s = high_s if low == high else time_group_step(config, runs, train_arrays, low)[1]
  per_batch = np.interp(widths, [low, high], [low_s, high_s]) if high > low else np.full(len(widths), high_s)
  out = {'runs': runs, 'widths': sorted(set(widths.tolist())), 'step_s': {low: low_s, high: high_s},
         'mean_step_s': float(per_batch.mean()), 'compile_s': compile_s, 'evaluation_s': 0.0}
  if valid_arrays is not None and config.eval_every > 0:
    eval_widths = input_pipeline.padded_widths(valid_arrays['length'], config.max_len,
                                               evaluation.eval_bucket_step(config))
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


def project(groups: Sequence[Sequence[PlannedRun]], measured: dict[str, dict[str, Any]], lanes: int = 1
            ) -> dict[str, float]:
  """Seconds the groups still need: their steps, their runs' evaluations, and compilation
  (once per group config and group size: seeds and HYPER share a program, a smaller group
  compiles its own), `lanes` groups at a time."""
  out = {'training': 0.0, 'evaluation': 0.0, 'compilation': 0.0}
  compiled = set()
  for group in groups:
    m = measured[group[0].config.model]
    out['training'] += max(r.remaining_steps for r in group) * m['mean_step_s']
    out['evaluation'] += sum(evaluations(r) for r in group) * m['evaluation_s']
    key = (train.group_key(group[0].config), len(group))
    if key not in compiled:
      compiled.add(key)
      out['compilation'] += m['compile_s'] * len(m['widths'])
  out = {part: seconds / lanes for part, seconds in out.items()}
  out['total'] = sum(out.values())
  return out


def duration(seconds: float) -> str:
  return f'{seconds / 60:.1f} min' if seconds < 6000 else f'{seconds / 3600:.1f} h'


class Progress:
  """Says which group of the plan starts, and the time left from there: projected from measured
  steps when the plan measured them, else from the seconds a step of each model's groups took
  so far in this sitting."""

  def __init__(self, groups: Sequence[Sequence[PlannedRun]], measured: dict[str, dict[str, Any]] | None = None,
               lanes: int = 1):
    self.lanes = lanes  # groups that train at once: the time left is their steps' over this many
    self.groups = [tuple(r.name for r in g) for g in groups]
    self.models = [g[0].config.model for g in groups]
    self.steps = [max(r.remaining_steps for r in g) for g in groups]
    self.step_s = {}  # seconds a group step took, evaluations included, by model
    for model in measured or {}:
      of_model = [g for g in groups if g[0].config.model == model]
      if of_model:
        projected = project(of_model, measured)
        self.step_s[model] = (projected['training'] + projected['evaluation']) / sum(
            max(r.remaining_steps for r in g) for g in of_model)

  def starting(self, directories: Sequence[str]) -> None:
    index = self._index(directories)
    if index is None:
      return  # runs trained in an earlier sitting
    known = [i for i in range(index, len(self.groups)) if self.models[i] in self.step_s]
    left = sum(self.steps[i] * self.step_s[self.models[i]] for i in known) / self.lanes
    untimed = sorted({self.models[i] for i in range(index, len(self.groups))} - set(self.step_s))
    when = (f'about {duration(left)} of training and evaluation to go, this group included'
            + (f' ({", ".join(untimed)} not timed yet)' if untimed else '') if known
            else f'{", ".join(untimed)} not timed yet')
    PROGRESS.info('group %d of %d: %s; %s', index + 1, len(self.groups), ', '.join(self.groups[index]), when)

  def finished(self, directories: Sequence[str], seconds: float, steps: int) -> None:
    """A group of the plan trained `steps` steps in `seconds`: its model's groups take as long."""
    index = self._index(directories)
    if index is not None and steps > 0:
      self.step_s[self.models[index]] = seconds / steps

  def _index(self, directories: Sequence[str]) -> int | None:
    names = tuple(os.path.basename(d) for d in directories)
    return self.groups.index(names) if names in self.groups else None


def describe(runs: Sequence[PlannedRun], groups: Sequence[Sequence[PlannedRun]], measured: dict[str, dict[str, Any]],
             projected: dict[str, float] | None, device: str, lanes: int = 1) -> str:
  """The plan as the lines a sweep logs before it starts (`projected`: None if unmeasured)."""
  left = sum(len(g) for g in groups)
  if not left:
    return f'plan: {len(runs)} runs, all finished in earlier sittings; nothing to train'
  sizes = sorted({len(g) for g in groups}, reverse=True)
  lines = [f'plan: {len(runs)} runs, {len(runs) - left} finished in earlier sittings; {left} to train in '
           f'{len(groups)} groups of {" or ".join(map(str, sizes))} run{"" if sizes == [1] else "s"}; '
           'steps per run: '
           + ', '.join(sorted({f'{r.config.train_steps} of batch {r.config.batch_size}' for r in runs}))
           + (f'; {lanes} groups at a time' if lanes > 1 else '')]
  for model, m in measured.items():
    steps = ', '.join(f'{1e3 * s:.1f} ms at width {w}' for w, s in m['step_s'].items())
    lines.append(f'{model}: {len(m["widths"])} widths ({", ".join(map(str, m["widths"]))}); measured on {device}: '
                 f'a step of {m["runs"]} run(s) {steps} (mean over an epoch {1e3 * m["mean_step_s"]:.1f} ms), '
                 f'compilation {m["compile_s"]:.1f} s a width, a valid evaluation {m["evaluation_s"]:.2f} s')
  if projected is None:
    lines.append('each group says the time left at the pace of the groups before it (--plan_only measures steps '
                 'and projects the whole before training)')
    return '\n'.join(lines)
  lines.append(f'projected for the {left} runs to go: about {duration(projected["total"])} (training '
               f'{duration(projected["training"])}, evaluation {duration(projected["evaluation"])}, compilation '
               f'{duration(projected["compilation"])}); test figures, samples and claims follow')
  return '\n'.join(lines)
