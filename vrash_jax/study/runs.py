"""The runs of a study: how runs are trained or resumed together (their folders: `rundir`), and
the frontier's points (a model trained with overrides of its preset config, once per seed)."""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import ml_collections
from absl import logging

from vrash_jax import config_rules, evaluation, run_log, sharding, train
from vrash_jax.errors import VrashError
from vrash_jax.study.rundir import RunDir, RunRecord, run_path

ConfigFor = Callable[[str], ml_collections.ConfigDict]
Seeds = Sequence[int] | Mapping[str, Sequence[int]]  # the same seeds for every model, or per model


def seeds_of(seeds: Seeds, model: str) -> Sequence[int]:
  return seeds[model] if isinstance(seeds, Mapping) else seeds


def train_group(configs: Sequence[ml_collections.ConfigDict], data_dir: str, directories: Sequence[str],
                progress=None) -> list[RunRecord]:
  """Trains (or resumes) runs together (`train.train_runs`), and returns each run's record with
  this sitting added, as its run.json now holds it (`RunRecord.after`: the run's share of the
  group's wall time, where it went, the step reached, why it stopped, its group). `progress` (a
  `run_plan.Progress`) is told when the group starts and how long it took. What the group
  compiled is dropped after it (see `release_compiled`). A run stopped by SIGTERM or SIGINT
  stops the whole study (after its checkpoint)."""
  folders = [RunDir(d) for d in directories]
  records = [f.record() for f in folders]
  if progress is not None:
    progress.starting(directories)
  start = time.perf_counter()
  outcomes = train.train_runs(configs, data_dir, directories)
  seconds = time.perf_counter() - start
  wall = seconds / max(sum(o['steps_run'] > 0 for o in outcomes), 1)
  if progress is not None:
    progress.finished(directories, seconds, max(o['steps_run'] for o in outcomes))
  records = [r.after(o, wall, [f.name for f in folders]) for r, o in zip(records, outcomes)]
  if jax.process_index() == 0:
    for folder, record in zip(folders, records):
      folder.write(record)
  release_compiled()
  for outcome, directory in zip(outcomes, directories):
    if outcome['stopped_by'] not in (None, train.SATURATION):
      raise VrashError(f"{outcome['stopped_by']} received: {directory} stopped after step "
                       f"{outcome['step']} with a checkpoint; run the same command to resume")
  return records


def train_groups(groups: Sequence[Sequence[Any]], data_dir: str, progress=None, lanes: int = 1) -> None:
  """Trains (or resumes) the planned groups (`run_plan.PlannedRun`s) in order; with `lanes` > 1,
  that many at once, each lane a thread on its share of the devices (`devices_of_lane`: on a CPU,
  every lane on its one device, whose compiled programs they share). A SIGTERM or SIGINT stops
  every lane after its checkpoint; the first lane's error stops the others after their current
  group, and is raised here."""
  if lanes <= 1:
    with run_log.StopSignals() as signals:  # also between groups, where every host asks alike
      for group in groups:
        if signals.agreed():
          raise VrashError(f'{signals.received or "a stop signal (on another host)"} received: the sweep '
                           'stopped between groups; run the same command to resume')
        train_group([r.config for r in group], data_dir, [r.directory for r in group], progress)
    return
  todo, errors, lock = collections.deque(compile_first(groups)), [], threading.Lock()

  def lane(index: int) -> None:
    with sharding.on_devices(devices_of_lane(index, lanes)):
      while True:
        with lock:
          if errors or not todo:
            return
          group = todo.popleft()
        try:
          train_group([r.config for r in group], data_dir, [r.directory for r in group], progress)
        except BaseException as e:  # raised again in the main thread
          with lock:
            errors.append(e)
          return

  with run_log.StopSignals():  # caught here, heard by every lane's loop
    threads = [threading.Thread(target=lane, args=(i,), name=f'lane {i}') for i in range(lanes)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  if errors:
    raise errors[0]


def devices_of_lane(index: int, lanes: int) -> list[Any]:
  """Lane `index`'s devices: the one device, which every lane shares (a CPU's), or an equal share
  of them (lanes never share several devices: their collectives would wait on each other)."""
  devices = jax.devices()
  if len(devices) == 1:
    return devices
  if len(devices) < lanes:
    raise VrashError(f'{lanes} lanes need at least as many devices, or one; there are {len(devices)}')
  size = len(devices) // lanes
  return devices[index * size:(index + 1) * size]


def compile_first(groups: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
  """The groups with the first of each compiled program (model config and group size) ahead of
  the rest, so that lanes compile different programs at once, and the later groups of a program
  find it in the persistent cache instead of compiling it again beside the first."""
  firsts = {}
  for group in groups:
    firsts.setdefault((train.group_key(group[0].config), len(group)), group)
  return list(firsts.values()) + [g for g in groups if not any(g is f for f in firsts.values())]


def train_run(config: ml_collections.ConfigDict, data_dir: str, directory: str, progress=None) -> RunRecord:
  """One run trained alone: see `train_group`."""
  return train_group([config], data_dir, [directory], progress)[0]


_releasing = threading.Lock()  # lanes finish groups in threads: one release at a time
MAPPINGS_LIMIT = 20_000  # of the 65,530 memory mappings Linux lets a process hold (vm.max_map_count)


def mappings() -> int | None:
  """The memory mappings this process holds, or None where they cannot be counted."""
  try:
    with open('/proc/self/maps') as f:
      return sum(1 for _ in f)
  except OSError:
    return None


def release_compiled() -> bool:
  """Drops every function this process compiled once it holds more than MAPPINGS_LIMIT memory
  mappings (or always, where they cannot be counted); says whether it did. Each XLA CPU
  executable holds mappings of its own: a sweep that kept every run's steps at every width ran
  out of them in its 23rd run. Later calls compile again, or load from the persistent cache."""
  with _releasing:
    count = mappings()
    if count is not None and count <= MAPPINGS_LIMIT:
      return False
    logging.info('%s memory mappings: dropping what was compiled', count if count is not None else 'uncounted')
    jax.clear_caches()
    evaluation.clear_compiled()
    return True


@dataclasses.dataclass(frozen=True)
class Point:
  """One point of the frontier: a model trained with `overrides` of its preset config, once per
  seed."""
  model: str
  name: str  # unique per model, e.g. 'fb0.25'; its runs are runs/<model>-<name>-seed<s>, and
  # 'default' (no overrides) is the comparison's own runs, runs/<model>-seed<s>
  technique: str  # what it tries, for the table: 'rate', 'encoder pretraining', ...
  overrides: tuple[tuple[str, Any], ...] = ()
  seeds: tuple[int, ...] = (0,)

  def config(self, config_for: ConfigFor, seed: int | None = None) -> ml_collections.ConfigDict:
    config = config_for(self.model)
    config.update_from_flattened_dict(dict(self.overrides))
    if seed is not None:
      config.seed = seed
    config_rules.validate(config, source=f'frontier point {self.model} {self.name}')
    return config

  def directory(self, workdir: str, seed: int) -> str:
    return run_path(workdir, self.model if self.name == 'default' else f'{self.model}-{self.name}', seed)


def rate_points(model: str, free_bits: Sequence[float], seeds: Sequence[int] = (0,)) -> tuple[Point, ...]:
  """Frontier points of `model` at other free-bits floors (nats per latent dimension)."""
  return tuple(Point(model, f'fb{f:g}', 'rate', (('free_bits', f),), tuple(seeds)) for f in free_bits)
