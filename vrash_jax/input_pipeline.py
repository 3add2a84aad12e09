"""Reads the `vrash_midi` TFRecords into padded numpy arrays.

The dataset is opened read-only from its files (no import of `data_prep`), its note schema
is checked against `vrash_jax.notes`, and a split is materialized as fixed-shape arrays: the
paper-sized corpora (15k tracks of at most a few hundred notes) fit in host memory easily,
which makes batch order a pure function of (seed, step) and resuming exact.
"""
from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np

from vrash_jax import notes
from vrash_jax.errors import VrashError

DATASET = 'vrash_midi'
SEQUENCE_FIELDS = notes.TOKEN_FIELDS
META_FIELDS = tuple(notes.META_FIELDS)


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
  vocab = builder.info.metadata.get('vocabularies', {}) if builder.info.metadata else {}
  if vocab.get('schema_version') != notes.SCHEMA_VERSION or \
      len(vocab.get('delay_ratios', [])) != notes.NUM_DELAYS:
    raise VrashError(f'the dataset in {data_dir!r} uses note schema {vocab.get("schema_version")}, '
                     f'this vrash_jax reads schema {notes.SCHEMA_VERSION}: re-run `vrash-prep`')
  return builder


def load_split(data_dir: str, split: str, max_len: int | None = None) -> dict[str, np.ndarray]:
  """A whole split as arrays: tokens [N, T] (0-padded), `mask` [N, T], meta fields [N].

  T is `max_len` (longer examples are cut to it) or, when None, the longest example.
  Example order is the dataset's own (deterministic); text fields come back as str lists.
  """
  builder = open_dataset(data_dir)
  if split not in builder.info.splits:
    raise VrashError(f'the dataset in {data_dir!r} has no {split!r} split '
                     f'(it has {", ".join(builder.info.splits)})')
  examples = list(builder.as_dataset(split=split).as_numpy_iterator())
  lengths = np.array([e['length'] for e in examples], np.int32)
  width = int(max_len if max_len is not None else lengths.max(initial=1))
  out: dict[str, Any] = {f: np.zeros((len(examples), width), np.int32) for f in SEQUENCE_FIELDS}
  for i, e in enumerate(examples):
    n = min(int(e['length']), width)
    for f in SEQUENCE_FIELDS:
      out[f][i, :n] = e[f][:n]
  out['length'] = np.minimum(lengths, width)
  out['mask'] = np.arange(width)[None, :] < out['length'][:, None]
  for f in META_FIELDS + ('program',):
    out[f] = np.array([e[f] for e in examples], np.int32)
  out['median_pause_s'] = np.array([e['median_pause_s'] for e in examples], np.float32)
  for f in ('source', 'collection'):
    out[f] = [e[f].decode() for e in examples]
  return out
