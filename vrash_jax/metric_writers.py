"""Metrics as a JSONL file (one line per record) and TensorBoard event files, process 0 only."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from absl import logging


class MetricWriter:
  """Writes WORKDIR/metrics.jsonl and WORKDIR/tensorboard/<split>/ (when TensorFlow is present)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._tb: dict[str, Any] = {}
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self.workdir = workdir
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', encoding='utf-8')
      try:
        import tensorboard  # noqa: F401  (tf.summary needs it)
        import tensorflow as tf
        self._tf = tf
      except ImportError:  # accelerator images may lack TensorFlow: JSONL only
        logging.warning('TensorFlow/TensorBoard not installed: metrics go to metrics.jsonl only')
        self._tf = None

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps({'step': step, 'split': split, **metrics}) + '\n')
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

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    for writer in self._tb.values():
      writer.close()


def quiet_library_logs() -> None:
  """Keeps orbax's and TFDS's INFO chatter off the console (warnings still show)."""
  import logging as std_logging

  def keep(record: std_logging.LogRecord) -> bool:
    noisy = any(p in record.pathname for p in ('/orbax/', '/tensorflow_datasets/'))
    return record.levelno >= std_logging.WARNING or not noisy

  logging.get_absl_handler().addFilter(keep)
