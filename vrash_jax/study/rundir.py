"""A run's folder in a study, and the one place that knows what it holds: its checkpoints
(`checkpoints/` and `best/`, written by `checkpoint`), its metrics (metrics.jsonl, written by
`run_log`) and run.json, the record of its training (`RunRecord`), replaced whole through
`storage` (a local disk or a gs:// bucket). The plan and the study ask a `RunDir`, never the
file system."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

from vrash_jax import checkpoint, run_log, storage
from vrash_jax.errors import VrashError
from vrash_jax.train import SATURATION

RECORD = 'run.json'


@dataclasses.dataclass
class RunRecord:
  """What a run's training came to, summed over every sitting."""
  train_wall_s: float = 0.0  # its share of its groups' training wall time
  seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # ... and where it went: compilation, ...
  step: int = 0  # the step it reached
  stopped_by: str | None = None  # SATURATION, a signal's name, or None (at train_steps, or not trained yet)
  group: list[str] | None = None  # the runs it last trained with

  def after(self, outcome: Mapping[str, Any], wall_s: float, group: list[str]) -> RunRecord:
    """This record with one sitting's outcome (`train.train_runs`) added; `wall_s` is the run's
    share of the group's wall time, counted only if it trained a step."""
    seconds = dict(self.seconds)
    for part, value in outcome['seconds'].items():
      seconds[part] = seconds.get(part, 0.0) + value
    trained = outcome['steps_run'] > 0
    return RunRecord(self.train_wall_s + (wall_s if trained else 0.0), seconds, outcome['step'],
                     outcome['stopped_by'], group if trained else self.group)


@dataclasses.dataclass(frozen=True)
class RunDir:
  """A run's folder: WORKDIR/runs/<name>-seed<seed>."""
  path: str

  @property
  def name(self) -> str:
    return os.path.basename(self.path.rstrip('/'))

  def record(self) -> RunRecord:
    """Its run.json, or a fresh record if it has none yet."""
    location = storage.join(self.path, RECORD)
    if not storage.path(location).exists():
      return RunRecord()
    try:
      fields = json.loads(storage.read_text(location))
    except ValueError as e:
      fields = e
    if not isinstance(fields, dict):
      raise VrashError(f'{location} is not a run record ({fields}); move it aside to train the run again')
    return RunRecord(**{f.name: fields[f.name] for f in dataclasses.fields(RunRecord) if f.name in fields})

  def write(self, record: RunRecord) -> None:
    storage.write_text(storage.join(self.path, RECORD), json.dumps(dataclasses.asdict(record)))

  def reached_step(self) -> int:
    """The step of its newest checkpoint (0 if none)."""
    return max(checkpoint.saved_steps(self.path), default=0)

  def saturated(self) -> bool:
    return self.record().stopped_by == SATURATION

  def metrics(self, split: str) -> list[dict[str, Any]]:
    """The figures it logged on `split` ('train' or 'valid'), in order, each with its step."""
    return [r for r in run_log.read_metrics(self.path) if r['split'] == split]


def run_path(workdir: str, name: str, seed: int) -> str:
  """Where run `name` (a model, or a model and a frontier point) with `seed` lives."""
  return os.path.join(workdir, 'runs', f'{name}-seed{seed}')  # posix: gs:// URLs join alike
