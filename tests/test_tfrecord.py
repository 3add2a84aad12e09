"""The TensorFlow-free reader against TensorFlow itself: TFRecord framing and checksums, Example
protos, the order TFDS reads shards in, and whole splits of prepared datasets."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from data_prep import builder, prep
from vrash_jax import input_pipeline, tfrecord
from vrash_jax.errors import VrashError


def crc32c_bitwise(data: bytes) -> int:
  """CRC-32C (Castagnoli), bit by bit: the slow textbook definition."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
  return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_masked_crc32c_of_many_chunks_matches_the_definition():
  assert crc32c_bitwise(b'123456789') == 0xE3069283  # the standard check value
  rng = np.random.default_rng(0)
  chunks = [b'', b'123456789'] + [rng.bytes(int(n)) for n in rng.integers(0, 300, 40)]
  assert tfrecord.masked_crc32c(chunks).tolist() == [masked(crc32c_bitwise(c)) for c in chunks]


def example(**features):
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def ints(*values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def test_records_and_examples_read_as_tensorflow_wrote_them(tmp_path):
  path = str(tmp_path / 'x.tfrecord')
  written = [
      example(tokens=ints(0, 5, 127, 128, 300, 2**40, -1, -2**63), one=ints(7),
              pause=tf.train.Feature(float_list=tf.train.FloatList(value=[0.25, -1.5e-3])),
              text=tf.train.Feature(bytes_list=tf.train.BytesList(value=['ünï'.encode(), b'']))),
      example(empty=ints()),
      b'',  # an empty record
  ]
  with tf.io.TFRecordWriter(path) as writer:
    for record in written:
      writer.write(record)
  records = tfrecord.read_records(path)
  assert records == written
  first = tfrecord.parse_example(records[0])
  assert first['tokens'].tolist() == [0, 5, 127, 128, 300, 2**40, -1, -2**63]
  assert first['one'].tolist() == [7] and first['text'] == ['ünï'.encode(), b'']
  np.testing.assert_array_equal(first['pause'], np.float32([0.25, -1.5e-3]))
  assert tfrecord.parse_example(records[1])['empty'].tolist() == []
  # An Int64List written unpacked (field 1 repeated as varints) reads the same.
  entry = bytes([0x0A, 0x01]) + b'k' + bytes([0x12, 0x07, 0x1A, 0x05, 0x08, 0x01, 0x08, 0xAC, 0x02])
  unpacked = bytes([0x0A, len(entry) + 2, 0x0A, len(entry)]) + entry
  assert tfrecord.parse_example(unpacked)['k'].tolist() == [1, 300]


def test_a_corrupt_or_truncated_file_is_refused_by_name(tmp_path):
  path = tmp_path / 'x.tfrecord'
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(3):
      writer.write(example(i=ints(i)))
  data = bytearray(path.read_bytes())
  flipped = tmp_path / 'flipped.tfrecord'
  data[len(data) // 2] ^= 0x10
  flipped.write_bytes(bytes(data))
  with pytest.raises(VrashError, match=r'flipped.tfrecord is corrupt: record 1 fails its checksum'):
    tfrecord.read_records(str(flipped))
  cut = tmp_path / 'cut.tfrecord'
  cut.write_bytes(path.read_bytes()[:-3])
  with pytest.raises(VrashError, match=r'cut.tfrecord is truncated'):
    tfrecord.read_records(str(cut))


@pytest.mark.parametrize('sizes', [[5], [40, 3, 17], [20] * 18 + [1, 33]])
def test_shards_interleave_as_tf_data_does(sizes):
  shards = [[(s, i) for i in range(n)] for s, n in enumerate(sizes)]
  lengths = tf.constant(sizes, tf.int64)
  expected = tf.data.Dataset.range(len(sizes)).interleave(
      lambda s: tf.data.Dataset.range(lengths[s]).map(lambda i: tf.stack([s, i])),
      cycle_length=tfrecord.INTERLEAVE_CYCLE, block_length=tfrecord.INTERLEAVE_BLOCK)
  assert list(tfrecord.interleaved(shards)) == [tuple(x.tolist()) for x in expected.as_numpy_iterator()]


def tfds_split(data_dir, split):
  """Every example of a split as TFDS reads it (the reference)."""
  import tensorflow_datasets as tfds
  return list(tfds.builder_from_directory(input_pipeline.dataset_dir(data_dir))
              .as_dataset(split=split).as_numpy_iterator())


def assert_same_split(data_dir, split, max_len):
  arrays = input_pipeline.load_split(data_dir, split, max_len)
  reference = tfds_split(data_dir, split)
  assert len(arrays['length']) == len(reference) > 0
  width = arrays['mask'].shape[1]
  for i, e in enumerate(reference):
    n = min(int(e['length']), width)
    for f in input_pipeline.SEQUENCE_FIELDS:
      np.testing.assert_array_equal(arrays[f][i], np.pad(e[f][:width], (0, width - min(len(e[f]), width))))
    assert arrays['length'][i] == n and arrays['mask'][i].sum() == n
    for f in input_pipeline.META_FIELDS + ('program', 'median_pause_s'):
      assert arrays[f][i] == e[f], f
    for f in input_pipeline.LABEL_FIELDS:
      assert arrays[f][i] == e[f].decode(), f


@pytest.mark.parametrize('split', ['train', 'valid', 'test'])
def test_every_split_reads_as_tfds_reads_it(tiny_dataset, split):
  assert_same_split(tiny_dataset, split, None)
  assert_same_split(tiny_dataset, split, 12)  # cut to 12 notes


def test_a_dataset_of_many_shards_reads_in_the_order_tfds_reads_it(tiny_dataset, tmp_path):
  """Corpora over 128 MiB get several shards a split; TFDS interleaves them when it reads."""
  import tensorflow_datasets as tfds

  data_dir = str(tmp_path / 'sharded')
  parts_dir = os.path.join(data_dir, prep.PARTS_DIR)
  shutil.copytree(os.path.join(tiny_dataset, prep.PARTS_DIR), parts_dir)
  builder.VrashMidi(data_dir=data_dir, file_format='tfrecord').download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=parts_dir, num_shards=3,
                                                   compute_stats=tfds.download.ComputeStatsMode.SKIP))
  assert len(input_pipeline.shard_files(data_dir, 'train')) == 3
  assert_same_split(data_dir, 'train', None)


def test_a_missing_shard_is_refused_by_name(tiny_dataset, tmp_path):
  copy = tmp_path / 'copy'
  shutil.copytree(tiny_dataset, copy)
  (path, _), = input_pipeline.shard_files(str(copy), 'valid')
  os.remove(path)
  with pytest.raises(VrashError, match=r'vrash_midi-valid.tfrecord-00000-of-00001 is missing'):
    input_pipeline.load_split(str(copy), 'valid')


def test_a_record_that_is_no_example_of_ours_is_refused_by_name(tiny_dataset, tmp_path):
  copy = tmp_path / 'copy'
  shutil.copytree(tiny_dataset, copy)
  (path, _), = input_pipeline.shard_files(str(copy), 'test')
  records = tfrecord.read_records(path)
  with tf.io.TFRecordWriter(path) as writer:
    for record in records[:-1] + [example(length=ints(3))]:
      writer.write(record)
  with pytest.raises(VrashError, match=rf'record {len(records) - 1} lacks pitch_class, octave, delay, family'):
    input_pipeline.load_split(str(copy), 'test')
  with tf.io.TFRecordWriter(path) as writer:
    for record in records[:-1] + [b'\xff\xff\xff']:
      writer.write(record)
  with pytest.raises(VrashError, match=rf'record {len(records) - 1} is not a tf.train.Example'):
    input_pipeline.load_split(str(copy), 'test')
