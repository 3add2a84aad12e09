"""What a study says as it goes, on the progress logger (`errors.PROGRESS`): each stage as it
starts, with the time so far; within a stage, how much of it is done and the time its rest
takes at the pace so far; and how long each stage took (`end`, which the command says last).
"""
from __future__ import annotations

import time
from typing import Sequence

from vrash_jax.errors import PROGRESS


def minutes(seconds: float) -> str:
  return f'{seconds / 60:.1f} min'


class Stages:
  """The stages of one command, said in order: '[2/5] training (0.9 min so far)'."""

  def __init__(self, names: Sequence[str]):
    self.names = list(names)
    self.started = time.perf_counter()
    self.current: str | None = None
    self.stage_started = self.started
    self.durations: dict[str, float] = {}

  def begin(self, name: str, what: str = '') -> None:
    """Stage `name` starts (it ends when the next one begins, or at `end`)."""
    self._close()
    self.current, self.stage_started = name, time.perf_counter()
    number = f'{self.names.index(name) + 1}/{len(self.names)}' if name in self.names else '-'
    PROGRESS.info('[%s] %s%s (%s so far)', number, name, f': {what}' if what else '',
                  minutes(self.stage_started - self.started))

  def done(self, count: int, total: int, what: str) -> None:
    """`count` of the stage's `total` parts are done, the last being `what`."""
    elapsed = time.perf_counter() - self.stage_started
    left = elapsed / count * (total - count) if count else 0.0
    PROGRESS.info('  %s: %d of %d done%s', what, count, total,
                  f'; about {minutes(left)} left in this stage' if count < total else '')

  def end(self) -> dict[str, float]:
    """Closes the last stage; {stage: seconds} of every stage so far."""
    self._close()
    return dict(self.durations)

  def _close(self) -> None:
    if self.current is not None:
      self.durations[self.current] = self.durations.get(self.current, 0.0) + time.perf_counter() - self.stage_started
      self.current = None
