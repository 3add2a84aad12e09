"""Reads the `vrash_midi` TFRecords into padded numpy arrays, with numpy alone (no TensorFlow).

The dataset is opened read-only from its files (no import of `data_prep`), its note schema
is checked against `vrash_jax.notes`, and a split is materialized as fixed-shape arrays: the
paper-sized corpora (15k tracks of at most a few hundred notes) fit in host memory easily,
which makes batch order a pure function of (seed, step) and resuming exact. The files are
read by `tfrecord`, in the order TFDS reads them (`tfds.builder_from_directory(...).as_dataset`).
"""
from __future__ import annotations

import functools
import json
from typing import Any, Iterator

import numpy as np

from vrash_jax import notes, storage, tfrecord
from vrash_jax.errors import VrashError

DATASET = 'vrash_midi'
SEQUENCE_FIELDS = notes.TOKEN_FIELDS
META_FIELDS = tuple(notes.META_FIELDS)
LABEL_FIELDS = ('source', 'collection', 'style')  # text about each example, never model inputs


def dataset_dir(data_dir: str) -> str:
  """The newest prepared version of the dataset under `data_dir` (a local folder or gs://)."""
  root = storage.path(data_dir)
  if not root.is_dir():
    raise VrashError(f'--data_dir {data_dir!r} does not exist: run `vrash-prep` first')
  built = root / DATASET
  versions = sorted((v for v in built.iterdir() if (v / 'dataset_info.json').is_file()),
                    key=lambda v: _version_key(v.name)) if built.is_dir() else []
  if not versions:
    raise VrashError(f'no prepared {DATASET} dataset in {data_dir!r}: run `vrash-prep --data_dir {data_dir}`')
  return str(versions[-1])


def _version_key(name: str) -> tuple:
  """'1.10.0' after '1.9.0'."""
  return tuple(int(p) if p.isdigit() else -1 for p in name.split('.'))


def _read_json(directory: str, name: str) -> dict[str, Any]:
  path = storage.path(directory) / name
  return json.loads(path.read_text(encoding='utf-8')) if path.is_file() else {}


def dataset_info(data_dir: str) -> dict[str, Any]:
  """The dataset's dataset_info.json (TFDS's own record of its splits and shards), after
  checking its features and its note schema."""
  directory = dataset_dir(data_dir)
  info = _read_json(directory, 'dataset_info.json')
  features = _read_json(directory, 'features.json').get('featuresDict', {}).get('features', {})
  if 'style' not in features:
    raise VrashError(f'the dataset in {data_dir!r} was prepared by an older vrash-prep (version '
                     f'{info.get("version")}, without style labels): run `vrash-prep` again')
  vocab = _read_json(directory, 'metadata.json').get('vocabularies', {})
  if vocab.get('schema_version') != notes.SCHEMA_VERSION or \
      len(vocab.get('delay_ratios', [])) != notes.NUM_DELAYS:
    raise VrashError(f'the dataset in {data_dir!r} uses note schema {vocab.get("schema_version")}, '
                     f'this vrash_jax reads schema {notes.SCHEMA_VERSION}: re-run `vrash-prep`')
  if info.get('fileFormat', 'tfrecord') != 'tfrecord':
    raise VrashError(f'the dataset in {data_dir!r} is stored as {info["fileFormat"]}; vrash_jax reads '
                     'TFRecord datasets (what `vrash-prep` writes)')
  return info


def splits(data_dir: str) -> dict[str, dict[str, Any]]:
  """{split name: its entry in dataset_info.json}."""
  return {s['name']: s for s in dataset_info(data_dir)['splits']}


def has_split(data_dir: str, split: str) -> bool:
  return split in splits(data_dir)


def shard_files(data_dir: str, split: str) -> list[tuple[str, int]]:
  """(path, examples) of every shard of `split`, in shard order."""
  entry = splits(data_dir).get(split)
  if entry is None:
    raise VrashError(f'the dataset in {data_dir!r} has no {split!r} split '
                     f'(it has {", ".join(splits(data_dir))})')
  lengths = [int(n) for n in entry['shardLengths']]
  directory = dataset_dir(data_dir)  # listed once: on gs:// every listing is a request
  template = entry.get('filepathTemplate', '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}')
  out = []
  for index, examples in enumerate(lengths):
    name = (template.replace('{DATASET}', DATASET).replace('{SPLIT}', split)
            .replace('{FILEFORMAT}', 'tfrecord')
            .replace('{SHARD_X_OF_Y}', f'{index:05d}-of-{len(lengths):05d}'))
    out.append((storage.join(directory, name), examples))
  return out


def read_examples(data_dir: str, split: str) -> list[dict[str, Any]]:
  """Every example of a split, decoded, in the order TFDS reads them."""
  shards = []
  for path, expected in shard_files(data_dir, split):
    if not storage.path(path).is_file():
      raise VrashError(f'{path} is missing: run `vrash-prep` again')
    records = tfrecord.read_records(path)
    if len(records) != expected:
      raise VrashError(f'{path} holds {len(records)} examples, dataset_info.json says {expected}: '
                       'run `vrash-prep` again')
    shards.append([(path, i, record) for i, record in enumerate(records)])
  return [_example(*located) for located in tfrecord.interleaved(shards)]


FIELDS = SEQUENCE_FIELDS + META_FIELDS + ('length', 'program', 'median_pause_s') + LABEL_FIELDS


def _example(path: str, index: int, record: bytes) -> dict[str, Any]:
  """One record decoded, with every field the arrays need."""
  try:
    example = tfrecord.parse_example(record)
  except (ValueError, IndexError, KeyError, UnicodeDecodeError) as e:
    raise VrashError(f'{path}: record {index} is not a tf.train.Example ({type(e).__name__}): run '
                     '`vrash-prep` again') from None
  missing = [f for f in FIELDS if f not in example]
  if missing:
    raise VrashError(f'{path}: record {index} lacks {", ".join(missing)}: run `vrash-prep` again')
  return example


def load_split(data_dir: str, split: str, max_len: int | None = None) -> dict[str, np.ndarray]:
  """A whole split as arrays: tokens [N, T] (0-padded), `mask` [N, T], meta fields [N].

  T is `max_len` (longer examples are cut to it) or, when None, the longest example.
  Example order is the dataset's own (deterministic); text fields come back as str lists.
  Results are cached per dataset build (a sweep reads each split once): treat them as read-only.
  """
  return _load_split(str(storage.path(data_dir)), split, max_len,
                     storage.modified(storage.join(dataset_dir(data_dir), 'dataset_info.json')))


@functools.lru_cache(maxsize=8)
def _load_split(data_dir: str, split: str, max_len: int | None, built: float) -> dict[str, Any]:
  del built  # part of the cache key only
  examples = read_examples(data_dir, split)
  lengths = np.array([int(e['length'][0]) for e in examples], np.int32)
  width = int(max_len if max_len is not None else lengths.max(initial=1))
  out: dict[str, Any] = {}
  for f in SEQUENCE_FIELDS:
    out[f] = np.zeros((len(examples), width), np.int32)
    for row, e in enumerate(examples):
      tokens = e[f][:width]
      out[f][row, :len(tokens)] = tokens
  out['length'] = np.minimum(lengths, width)
  out['mask'] = np.arange(width)[None, :] < out['length'][:, None]
  for f in META_FIELDS + ('program',):
    out[f] = np.array([e[f][0] for e in examples], np.int32)
  out['median_pause_s'] = np.array([e['median_pause_s'][0] for e in examples], np.float32)
  for f in LABEL_FIELDS:
    out[f] = [e[f][0].decode() for e in examples]
  return out


def tracks_from_arrays(arrays: dict, limit: int | None = None) -> list[notes.Track]:
  """Padded split arrays (input_pipeline.load_split) -> tracks cut to their lengths."""
  out = []
  for i in range(len(arrays['length']) if limit is None else min(limit, len(arrays['length']))):
    n = int(arrays['length'][i])
    out.append(notes.Track(*(arrays[f][i, :n] for f in notes.TOKEN_FIELDS),
                           int(arrays['program'][i]), float(arrays['median_pause_s'][i])))
  return out


def host_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """This host's contiguous share of a global batch."""
  if global_batch % process_count:
    raise VrashError(f'batch size {global_batch} does not split over {process_count} hosts')
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


STEPS_PER_POWER_OF_TWO = 8  # a length's padding step is this fraction of the next power of two


def padded_widths(lengths: np.ndarray, max_len: int, bucket_step: int) -> np.ndarray:
  """The width each example is padded to, at most `max_len` (bucket_step 0: always max_len).

  A length rounds up to a multiple of 1/8 of the next power of two (and of `bucket_step` at
  least): 40 -> 40, 70 -> 80, 130 -> 160 with a step of 8. A melody's padding stays under a
  quarter of its length however long it is, and a doubling of length adds 4 widths to
  compile (up to 8 * bucket_step, the multiples of bucket_step).
  """
  if bucket_step <= 0:
    return np.full(len(lengths), max_len, np.int32)
  lengths = np.maximum(lengths, 1)
  octave = 2 ** np.ceil(np.log2(lengths)).astype(np.int64)
  step = np.maximum(octave // STEPS_PER_POWER_OF_TWO, bucket_step)
  return np.minimum(-(-lengths // step) * step, max_len).astype(np.int32)


def gather(arrays: dict[str, Any], indices: np.ndarray, width: int | None = None
           ) -> dict[str, np.ndarray]:
  """The fields the model reads, for `indices`, cut to `width` notes (default: all of them);
  index -1 is an empty row."""
  rows = np.maximum(indices, 0)
  batch = {f: arrays[f][rows, :width] for f in SEQUENCE_FIELDS}
  batch['mask'] = arrays['mask'][rows, :width] & (indices >= 0)[:, None]
  batch.update({f: arrays[f][rows] for f in META_FIELDS})
  return batch


WIDTH_ORDER_KEY = 2 ** 32  # the batch shuffle's RNG key, beside the epoch: no seed's (seeds < 2**32)


class TrainBatches:
  """Training batches, a pure function of (seed, step): resuming sees the same batches.

  bucket_step 0: an endless stream of per-epoch permutations; batch `step` holds stream
  positions [step * B, (step + 1) * B), every batch padded to max_len.
  bucket_step > 0 (length bucketing): each epoch permutes the examples, groups them by
  padded width (`padded_widths`), cuts that order into batches of B and shuffles the
  batches; a batch is padded only to its widest member, and the epoch's last batch is
  completed with empty rows, so every example is seen exactly once per epoch. The batches'
  shuffle is the epoch's alone, the same for every seed: at any step every seed's batch has the
  same width (which melodies fill it, and in which rows, is the seed's own), so runs of several
  seeds trained as one group pad nothing to each other's widths.
  """

  def __init__(self, arrays: dict[str, Any], global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1, bucket_step: int = 0):
    self.arrays, self.global_batch, self.seed = arrays, global_batch, seed
    self.size = len(arrays['length'])
    if self.size == 0:
      raise VrashError('the training split is empty')
    self.rows = host_rows(global_batch, process_index, process_count)
    self.max_len, self.bucket_step = arrays['mask'].shape[1], bucket_step
    self.widths = padded_widths(arrays['length'], self.max_len, bucket_step)
    self.batches_per_epoch = -(-self.size // global_batch)
    self._epoch, self._order, self._batches = -1, None, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:
      rng = np.random.default_rng([self.seed, epoch])
      self._epoch, self._order = epoch, rng.permutation(self.size)
      if self.bucket_step > 0:
        self._batches = self._bucketed(self._order, epoch)
    return self._order

  def _bucketed(self, order: np.ndarray, epoch: int) -> list[np.ndarray]:
    by_width = order[np.argsort(self.widths[order], kind='stable')]  # random within a width
    padded = np.full(self.batches_per_epoch * self.global_batch, -1, np.int64)
    padded[:self.size] = by_width
    batches = padded.reshape(self.batches_per_epoch, self.global_batch)
    # Every seed's k-th batch of this sorted order has the same width: one shuffle for all seeds.
    shuffle = np.random.default_rng([WIDTH_ORDER_KEY, epoch]).permutation(self.batches_per_epoch)
    return list(batches[shuffle])

  def indices(self, step: int) -> np.ndarray:
    """Example indices of the whole global batch at `step` (-1: an empty row)."""
    if self.bucket_step > 0:
      epoch, k = divmod(step, self.batches_per_epoch)
      self._permutation(epoch)
      return self._batches[k]
    positions = np.arange(step * self.global_batch, (step + 1) * self.global_batch)
    return np.concatenate([self._permutation(e)[positions[positions // self.size == e] % self.size]
                           for e in np.unique(positions // self.size)])

  def width(self, indices: np.ndarray) -> int:
    real = indices[indices >= 0]
    return int(self.widths[real].max()) if len(real) else self.max_len

  def padded_share(self, epoch: int = 0) -> float:
    """Share of the note slots computed in one epoch's batches (rows x width) left empty."""
    steps = range(epoch * self.batches_per_epoch, (epoch + 1) * self.batches_per_epoch)
    slots = sum(self.global_batch * self.width(self.indices(step)) for step in steps)
    return 1.0 - int(self.arrays['length'].sum()) / slots

  def __call__(self, step: int, rows: slice | None = None, width: int | None = None) -> dict[str, np.ndarray]:
    """Rows of the global batch at `step` (default: this host's), padded to `width` (default:
    the batch's own; a group pads its runs' batches to the widest)."""
    indices = self.indices(step)
    return gather(self.arrays, indices[self.rows if rows is None else rows],
                  self.width(indices) if width is None else width)


def eval_batches(arrays: dict[str, Any], global_batch: int, process_index: int = 0,
                 process_count: int = 1, bucket_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in global batches; the last is completed with empty rows.

  With `bucket_step` > 0 the examples go in order of length and each batch is padded only
  to its widest member's `padded_widths`; the figures are sums, so order does not matter.
  """
  size, max_len = len(arrays['length']), arrays['mask'].shape[1]
  rows = host_rows(global_batch, process_index, process_count)
  widths = padded_widths(arrays['length'], max_len, bucket_step)
  order = np.argsort(widths, kind='stable')
  for start in range(0, size, global_batch):
    index = np.full(global_batch, -1, np.int64)
    chunk = order[start:start + global_batch]
    index[:len(chunk)] = chunk
    yield gather(arrays, index[rows], int(widths[chunk].max()))
