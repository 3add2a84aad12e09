"""What a training run writes and watches besides its checkpoints: the metrics log (JSONL and
TensorBoard), a record per logging interval, NaN checks, its pace and where its time went, and
the stop signals of a preemption; a training group's logging interval."""
from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
import time
from typing import Any, Iterator, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from vrash_jax import losses, sharding, storage
from vrash_jax.errors import VrashError

METRICS = 'metrics.jsonl'


class MetricWriter:
  """Writes WORKDIR/metrics.jsonl, one JSON record per line, and on a local workdir also
  WORKDIR/tensorboard/<split>/ (when TensorFlow is present).

  On a disk each record is appended and flushed at once. An object cannot be appended to: on
  gs:// the log is kept in memory (with the records a resumed run finds there) and the object is
  replaced whole, after every evaluation and at most every `flush_every_s` otherwise, so a
  killed run loses at most that much of its training log; its checkpoints are unaffected.
  """

  def __init__(self, workdir: str, enabled: bool = True, flush_every_s: float = 30.0):
    self.enabled, self.workdir, self.flush_every_s = enabled, workdir, flush_every_s
    self._tb: dict[str, Any] = {}
    self._jsonl = self._tf = None
    self._lines: list[str] = []
    self._flushed = time.monotonic()
    if not enabled:
      return
    self.path = storage.join(workdir, METRICS)
    if storage.is_remote(workdir):
      self._lines = storage.read_text(self.path).splitlines(keepends=True) if storage.path(self.path).exists() else []
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(self.path, 'a', encoding='utf-8')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # else TensorFlow's C++ log says it is on
    try:
      import tensorboard  # noqa: F401  (tf.summary needs it)
      import tensorflow as tf
      self._tf = tf
    except ImportError:  # the training side runs without TensorFlow: JSONL only
      logging.warning('TensorFlow/TensorBoard not installed (the `prep` extra): metrics go to '
                      'metrics.jsonl only')

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    line = json.dumps({'step': step, 'split': split, **metrics}) + '\n'
    if self._jsonl is None:
      self._lines.append(line)
      if split != 'train' or time.monotonic() - self._flushed >= self.flush_every_s:
        self._flush_object()
    else:
      self._jsonl.write(line)
      self._jsonl.flush()
    if self._tf is not None:
      if split not in self._tb:
        self._tb[split] = self._tf.summary.create_file_writer(
            os.path.join(self.workdir, 'tensorboard', split))
      with self._tb[split].as_default():
        for key, value in metrics.items():
          self._tf.summary.scalar(key, value, step=step)
      self._tb[split].flush()
    shown = ' '.join(f'{k}={v:.4g}' for k, v in metrics.items() if isinstance(v, (int, float)))
    logging.info('[%s] step %d %s', split, step, shown)

  def _flush_object(self) -> None:
    storage.write_text(self.path, ''.join(self._lines))
    self._flushed = time.monotonic()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    elif self.enabled and self._lines:
      self._flush_object()
    for writer in self._tb.values():
      writer.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of WORKDIR/metrics.jsonl (none if it does not exist), local or gs://."""
  path = storage.path(storage.join(workdir, METRICS))
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


SUM_KEYS = ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl', 'notes', 'sequences')
FINITE_TERMS = (('ce_total', 'cross-entropy'), ('kl', 'KL'), ('grad_norm', 'gradient norm'))
STOP_CHECK_EVERY = 10  # steps between multi-host agreements on a stop signal


def summarize_interval(history: Sequence[Mapping[str, float]], seconds: float) -> dict[str, float]:
  """A run's per-step metrics of one logging interval (fetched from the device: the fetch waits
  for it, so `seconds`, read after it, is the interval's) -> one record."""
  sums = {k: sum(float(m[k]) for m in history) for k in SUM_KEYS}
  out = losses.per_note(sums)
  out['loss'] = sum(float(m['loss']) for m in history) / len(history)
  out['grad_norm'] = sum(float(m['grad_norm']) for m in history) / len(history)
  out['kl_weight'] = float(history[-1]['kl_weight'])
  out['learning_rate'] = float(history[-1]['learning_rate'])
  out['notes_per_s'] = sums['notes'] / max(seconds, 1e-9)
  return out


def check_finite(steps: list[tuple[int, dict]], last_good: int | None) -> None:
  """Raises, naming the first step and term that went bad, if any loss term is NaN or Inf."""
  values = jax.device_get([(step, {k: m[k] for k, _ in FINITE_TERMS}) for step, m in steps])
  for step, terms in values:
    for key, name in FINITE_TERMS:
      if not np.isfinite(terms[key]):
        raise VrashError(f'the {name} became {float(terms[key])} at step {step}: training stopped '
                         f'and the last good checkpoint (step {last_good}) is kept; lower the '
                         'learning rate or check the data')


class StopSignals:
  """SIGTERM/SIGINT (a preemption, Ctrl-C) ask the loop to checkpoint and return. Only the main
  thread can catch them: a loop in another thread (a lane of a sweep) hears those caught by the
  main thread's open StopSignals."""

  _main: 'StopSignals | None' = None  # the main thread's outermost open instance

  def __init__(self):
    self._received: str | None = None
    self._previous: dict[int, Any] = {}
    self._outermost = False

  @property
  def received(self) -> str | None:
    main = StopSignals._main
    return self._received or (main._received if main is not None else None)

  def __enter__(self) -> 'StopSignals':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
      if StopSignals._main is None:
        StopSignals._main, self._outermost = self, True
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    self._received = signal.Signals(signum).name
    if StopSignals._main is not None:  # an outer instance (a sweep's, between its groups) hears it too
      StopSignals._main._received = self._received

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    if self._outermost:
      StopSignals._main = None

  def requested(self, step: int) -> bool:
    """Whether to stop after `step`; every host agrees (multi-host: every few steps)."""
    if jax.process_count() > 1 and step % STOP_CHECK_EVERY:
      return False
    return self.agreed()

  def agreed(self) -> bool:
    """Whether any host received a signal (every host must ask alike: they answer together)."""
    if jax.process_count() == 1:
      return self.received is not None
    from jax.experimental import multihost_utils
    return bool(multihost_utils.process_allgather(np.int32(self.received is not None)).any())


def log_progress(step: int, last: int, steps: int, seconds: float) -> None:
  """How far the run is, and how long the rest takes at the pace of the last interval."""
  rate = steps / max(seconds, 1e-9)
  logging.info('step %d of %d (%.0f%%), %.1f steps/s: about %.1f min to go', step, last,
               100 * step / last, rate, (last - step) / rate / 60)


class Stopwatch:
  """Where a run's time goes: seconds per part of the loop; the rest is the steps themselves."""

  def __init__(self):
    self.started, self.seconds = time.perf_counter(), collections.Counter()

  @contextlib.contextmanager
  def timing(self, part: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    self.seconds[part] += time.perf_counter() - start

  def summary(self) -> dict[str, float]:
    """{part: seconds} with 'steps' (the remainder) and 'total'."""
    total = time.perf_counter() - self.started
    return {**self.seconds, 'steps': total - sum(self.seconds.values()), 'total': total}


class Interval:
  """A group's (`train.Group`) metrics of the steps since the last log line (`history`, from
  `started`) and since the last check that the losses are finite (`unchecked`)."""

  def __init__(self):
    self.history: list[dict] = []
    self.unchecked: list[tuple[int, dict]] = []
    self.started = time.perf_counter()

  def add(self, step: int, metrics: dict) -> None:
    self.history.append(metrics)
    self.unchecked.append((step, metrics))

  def check_finite(self, group: Any) -> None:
    _check_finite(group, self.unchecked)
    self.unchecked = []

  def log(self, group: Any) -> None:
    """Each running run's train line for the interval, and the progress line; a new interval."""
    self.check_finite(group)
    records, seconds = fetch_interval(self.history, self.started)
    for run in group.running():
      run.writer.write(group.step, 'train', summarize_interval(
          [{k: v[run.index] for k, v in r.items()} for r in records], seconds))
    log_progress(group.step, group.config.train_steps, len(self.history), seconds)
    self.history, self.started = [], time.perf_counter()


def fetch_interval(history: list[dict], started: float) -> tuple[list[dict], float]:
  """A logging interval's per-step metrics, fetched from the device, and its seconds: read after
  the fetch, which waits for the device (the loop dispatches ahead of the computation)."""
  records = sharding.fetch(history)
  return records, time.perf_counter() - started


def _check_finite(group: Any, unchecked: list[tuple[int, dict]]) -> None:
  """Raises, naming the run, the step and the term, if a running run's loss went NaN or Inf."""
  if not unchecked:
    return
  values = sharding.fetch([{k: m[k] for k, _ in FINITE_TERMS} for _, m in unchecked])
  steps = [s for s, _ in unchecked]
  for run in group.running():
    try:
      check_finite([(s, {k: v[run.index] for k, v in terms.items()}) for s, terms in zip(steps, values)],
                   run.last_saved)
    except VrashError as e:
      raise VrashError(group.name(run) + str(e)) from None
