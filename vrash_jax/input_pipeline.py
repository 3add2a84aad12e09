"""Reads the `vrash_midi` TFRecords into padded numpy arrays.

The dataset is opened read-only from its files (no import of `data_prep`), its note schema
is checked against `vrash_jax.notes`, and a split is materialized as fixed-shape arrays: the
paper-sized corpora (15k tracks of at most a few hundred notes) fit in host memory easily,
which makes batch order a pure function of (seed, step) and resuming exact.
"""
from __future__ import annotations

import functools
import glob
import os
from typing import Any

import numpy as np

from vrash_jax import notes
from vrash_jax.errors import VrashError

DATASET = 'vrash_midi'
SEQUENCE_FIELDS = notes.TOKEN_FIELDS
META_FIELDS = tuple(notes.META_FIELDS)
LABEL_FIELDS = ('source', 'collection', 'style')  # text about each example, never model inputs


def _tensorflow_datasets():
  """Imports TFDS with TensorFlow kept off the accelerators (they belong to JAX)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf
  import tensorflow_datasets as tfds

  tf.config.set_visible_devices([], 'GPU')
  tfds.disable_progress_bar()
  return tfds


def dataset_dir(data_dir: str) -> str:
  """The newest prepared version of the dataset under `data_dir`."""
  if not os.path.isdir(data_dir):
    raise VrashError(f'--data_dir {data_dir!r} does not exist: run `vrash-prep` first')
  versions = sorted(glob.glob(os.path.join(data_dir, DATASET, '*', 'dataset_info.json')))
  if not versions:
    raise VrashError(f'no prepared {DATASET} dataset in {data_dir!r}: run `vrash-prep --data_dir {data_dir}`')
  return os.path.dirname(versions[-1])


def open_dataset(data_dir: str):
  """A read-only TFDS builder for the dataset, after checking its vocabulary schema."""
  tfds = _tensorflow_datasets()
  builder = tfds.builder_from_directory(dataset_dir(data_dir))
  if 'style' not in builder.info.features:
    raise VrashError(f'the dataset in {data_dir!r} was prepared by an older vrash-prep (version '
                     f'{builder.info.version}, without style labels): run `vrash-prep` again')
  vocab = builder.info.metadata.get('vocabularies', {}) if builder.info.metadata else {}
  if vocab.get('schema_version') != notes.SCHEMA_VERSION or \
      len(vocab.get('delay_ratios', [])) != notes.NUM_DELAYS:
    raise VrashError(f'the dataset in {data_dir!r} uses note schema {vocab.get("schema_version")}, '
                     f'this vrash_jax reads schema {notes.SCHEMA_VERSION}: re-run `vrash-prep`')
  return builder


def has_split(data_dir: str, split: str) -> bool:
  return split in open_dataset(data_dir).info.splits


def load_split(data_dir: str, split: str, max_len: int | None = None) -> dict[str, np.ndarray]:
  """A whole split as arrays: tokens [N, T] (0-padded), `mask` [N, T], meta fields [N].

  T is `max_len` (longer examples are cut to it) or, when None, the longest example.
  Example order is the dataset's own (deterministic); text fields come back as str lists.
  Results are cached per dataset build (a sweep reads each split once): treat them as read-only.
  """
  info = os.path.join(dataset_dir(data_dir), 'dataset_info.json')
  return _load_split(os.path.abspath(data_dir), split, max_len, os.stat(info).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_split(data_dir: str, split: str, max_len: int | None, built_ns: int) -> dict[str, Any]:
  del built_ns  # part of the cache key only
  builder = open_dataset(data_dir)
  if split not in builder.info.splits:
    raise VrashError(f'the dataset in {data_dir!r} has no {split!r} split '
                     f'(it has {", ".join(builder.info.splits)})')
  # Whole batches cross from TensorFlow to numpy: per-example iteration is 20x slower.
  chunks = list(builder.as_dataset(split=split).padded_batch(4096).as_numpy_iterator())
  lengths = np.concatenate([c['length'] for c in chunks]).astype(np.int32)
  width = int(max_len if max_len is not None else lengths.max(initial=1))
  out: dict[str, Any] = {}
  for f in SEQUENCE_FIELDS:
    out[f] = np.zeros((len(lengths), width), np.int32)
    row = 0
    for c in chunks:
      n, w = c[f].shape[0], min(c[f].shape[1], width)
      out[f][row:row + n, :w] = c[f][:, :w]
      row += n
  out['length'] = np.minimum(lengths, width)
  out['mask'] = np.arange(width)[None, :] < out['length'][:, None]
  for f in META_FIELDS + ('program',):
    out[f] = np.concatenate([c[f] for c in chunks]).astype(np.int32)
  out['median_pause_s'] = np.concatenate([c['median_pause_s'] for c in chunks]).astype(np.float32)
  for f in LABEL_FIELDS:
    out[f] = [v.decode() for c in chunks for v in c[f]]
  return out


MODEL_FIELDS = SEQUENCE_FIELDS + ('mask',) + META_FIELDS


def model_inputs(arrays: dict[str, Any], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
  """The fields the model reads, for the given rows."""
  return {f: arrays[f][rows] for f in MODEL_FIELDS}


def host_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """This host's contiguous share of a global batch."""
  if global_batch % process_count:
    raise VrashError(f'batch size {global_batch} does not split over {process_count} hosts')
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


class TrainBatches:
  """Training batches from an endless stream of per-epoch permutations of a split.

  Batch `step` holds stream positions [step * B, (step + 1) * B); epoch e is permuted by
  a generator seeded with (seed, e). The data position is therefore just the step, and a
  resumed run sees exactly the batches an uninterrupted one would.
  """

  def __init__(self, arrays: dict[str, Any], global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    self.arrays, self.global_batch, self.seed = arrays, global_batch, seed
    self.size = len(arrays['length'])
    if self.size == 0:
      raise VrashError('the training split is empty')
    self.rows = host_rows(global_batch, process_index, process_count)
    self._epoch, self._order = -1, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:
      self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size)
    return self._order

  def indices(self, step: int) -> np.ndarray:
    """Example indices of the whole global batch at `step`."""
    positions = np.arange(step * self.global_batch, (step + 1) * self.global_batch)
    return np.concatenate([self._permutation(e)[positions[positions // self.size == e] % self.size]
                           for e in np.unique(positions // self.size)])

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    """This host's part of the global batch at `step`."""
    return model_inputs(self.arrays, self.indices(step)[self.rows])


def eval_batches(arrays: dict[str, Any], global_batch: int, process_index: int = 0,
                 process_count: int = 1):
  """Every example once, in order, in global batches; the last is padded with empty rows."""
  size = len(arrays['length'])
  rows = host_rows(global_batch, process_index, process_count)
  for start in range(0, size, global_batch):
    index = np.arange(start, start + global_batch)
    batch = model_inputs(arrays, np.minimum(index, size - 1)[rows])
    batch['mask'] = batch['mask'] & (index[rows] < size)[:, None]
    yield batch
