"""TFRecord files of tf.train.Example protos, read with numpy alone (no TensorFlow).

A TFRecord file is a sequence of records, each framed as: length (uint64, little-endian), the
masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. An Example is
a protobuf message: features { feature { key: name, value: bytes_list | float_list |
int64_list } ... }. Both are decoded here by hand, checksums verified as TensorFlow's reader
does, so that training reads the prepared dataset where TensorFlow is not installed.
"""
from __future__ import annotations

import struct
from typing import Any, Iterator, Sequence

import numpy as np

from vrash_jax import storage
from vrash_jax.errors import VrashError

# How TFDS reads the shards of a split (its ReadConfig's defaults, tf.data's interleave).
INTERLEAVE_CYCLE, INTERLEAVE_BLOCK = 16, 16


def _crc32c_table() -> np.ndarray:
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
  return table.astype(np.uint32)


_CRC_TABLE = _crc32c_table()


def masked_crc32c(chunks: Sequence[bytes]) -> np.ndarray:
  """TFRecord's masked CRC-32C of every chunk at once: one vectorized table step per byte
  position over the chunks at least that long (pure Python would be ~50x slower)."""
  lengths = np.fromiter(map(len, chunks), np.int64, len(chunks))
  flat = np.frombuffer(b''.join(chunks), np.uint8)
  order = np.argsort(lengths, kind='stable')
  starts = (np.cumsum(lengths) - lengths)[order]
  sorted_lengths = lengths[order]
  crc = np.full(len(chunks), 0xFFFFFFFF, np.uint32)
  first = np.searchsorted(sorted_lengths, np.arange(int(lengths.max(initial=0))), side='right')
  for position, k in enumerate(first):
    byte = flat[starts[k:] + position]
    crc[k:] = _CRC_TABLE[(crc[k:] ^ byte) & 0xFF] ^ (crc[k:] >> 8)
  crc = crc ^ np.uint32(0xFFFFFFFF)
  masked = ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)
  out = np.empty_like(masked)
  out[order] = masked
  return out


def read_records(path: str) -> list[bytes]:
  """Every record of a TFRecord file, its framing and checksums verified."""
  data = storage.path(path).read_bytes()
  headers, records, crcs, pos = [], [], [], 0
  while pos < len(data):
    if pos + 12 > len(data):
      raise VrashError(f'{path} is truncated (a record header at byte {pos}): run `vrash-prep` again')
    header = data[pos:pos + 8]
    (length,), (length_crc,) = struct.unpack('<Q', header), struct.unpack('<I', data[pos + 8:pos + 12])
    start, end = pos + 12, pos + 12 + length
    if end + 4 > len(data):
      raise VrashError(f'{path} is truncated (a record at byte {pos}): run `vrash-prep` again')
    headers.append(header)
    records.append(data[start:end])
    crcs.append((length_crc, struct.unpack('<I', data[end:end + 4])[0]))
    pos = end + 4
  expected = np.array(crcs, np.uint32).reshape(-1, 2)
  bad = np.flatnonzero((masked_crc32c(headers) != expected[:, 0]) | (masked_crc32c(records) != expected[:, 1]))
  if bad.size:
    raise VrashError(f'{path} is corrupt: record {bad[0]} fails its checksum ({bad.size} records '
                     'do): run `vrash-prep` again')
  return records


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  byte = buf[pos]
  if byte < 0x80:  # one byte: every key and length of our examples, and their tokens
    return byte, pos + 1
  result, shift = byte & 0x7F, 7
  while True:
    pos += 1
    byte = buf[pos]
    result |= (byte & 0x7F) << shift
    if byte < 0x80:
      return result, pos + 1
    shift += 7


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
  """(field number, wire type, value) of a serialized protobuf message in buf[pos:end]: an int
  (varint), or the (start, end) of a length-delimited or fixed-size value."""
  while pos < end:
    key, pos = _varint(buf, pos)
    wire = key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire in (1, 2, 5):
      if wire == 2:
        size, pos = _varint(buf, pos)
      else:
        size = 8 if wire == 1 else 4
      value, pos = (pos, pos + size), pos + size
    else:
      raise ValueError(f'protobuf wire type {wire}')
    if pos > end:
      raise ValueError('a field runs past its message')
    yield key >> 3, wire, value


def _packed_varints(buf: bytes) -> np.ndarray:
  """A packed repeated int64 field as int64 values."""
  raw = np.frombuffer(buf, np.uint8)
  if not buf or max(buf) < 0x80:  # every value below 128: one byte each (our tokens)
    return raw.astype(np.int64)
  ends = np.flatnonzero(raw < 0x80)
  group = np.searchsorted(ends, np.arange(raw.size))
  shift = 7 * (np.arange(raw.size) - np.concatenate([[0], ends[:-1] + 1])[group])
  values = np.zeros(ends.size, np.uint64)
  np.add.at(values, group, (raw & 0x7F).astype(np.uint64) << shift.astype(np.uint64))
  return values.view(np.int64)


def _feature(buf: bytes, start: int, end: int) -> Any:
  """A tf.train.Feature in buf[start:end]: list of bytes, float32 array or int64 array."""
  for kind, _, (list_start, list_end) in _fields(buf, start, end):
    if kind == 3 and buf[list_start:list_start + 1] == b'\x0a':  # int64_list, one packed run (fast path)
      size, pos = _varint(buf, list_start + 1)
      if pos + size == list_end:
        return _packed_varints(buf[pos:list_end])
    items = [(wire, value) for _, wire, value in _fields(buf, list_start, list_end)]
    if kind == 1:  # bytes_list
      return [buf[a:b] for _, (a, b) in items]
    if kind == 2:  # float_list, packed or not
      return np.concatenate([np.frombuffer(buf[a:b], '<f4') for _, (a, b) in items] or [np.zeros(0, np.float32)])
    if kind == 3:  # int64_list, packed (wire type 2) or not
      return np.concatenate([_packed_varints(buf[v[0]:v[1]]) if wire == 2 else
                             np.array([v], np.uint64).view(np.int64) for wire, v in items] or [np.zeros(0, np.int64)])
  return []


def _map_entry(buf: bytes, start: int, end: int) -> tuple[bytes, tuple[int, int]]:
  """(key, (start, end) of the value) of a map<string, Feature> entry."""
  if buf[start] == 0x0A:  # key, then value: how TensorFlow writes them (fast path)
    size, pos = _varint(buf, start + 1)
    key, pos = buf[pos:pos + size], pos + size
    if pos < end and buf[pos] == 0x12:
      size, pos = _varint(buf, pos + 1)
      if pos + size == end:
        return key, (pos, end)
  key, value = b'', (start, start)
  for number, _, (a, b) in _fields(buf, start, end):
    if number == 1:
      key = buf[a:b]
    else:
      value = (a, b)
  return key, value


def parse_example(record: bytes) -> dict[str, Any]:
  """A serialized tf.train.Example -> {feature name: values}."""
  out = {}
  for _, _, (start, end) in _fields(record, 0, len(record)):  # Example.features
    for _, _, (entry_start, entry_end) in _fields(record, start, end):  # Features.feature, a map entry
      key, value = _map_entry(record, entry_start, entry_end)
      out[key.decode()] = _feature(record, *value)
  return out


def interleaved(shards: Sequence[Sequence[Any]], cycle: int = INTERLEAVE_CYCLE,
                block: int = INTERLEAVE_BLOCK) -> Iterator[Any]:
  """The order of tf.data's deterministic `interleave(cycle_length, block_length)`, the way
  TFDS reads a split's shards: `block` items from each of up to `cycle` open shards in turn."""
  pending = iter(shards)
  slots: list[Iterator[Any] | None] = [None] * cycle
  index, taken, exhausted, open_slots = 0, 0, False, 0
  while not exhausted or open_slots:
    if slots[index] is not None:
      item = next(slots[index], StopIteration)
      if item is not StopIteration:
        yield item
        taken += 1
        if taken == block:
          index, taken = (index + 1) % cycle, 0
        continue
      slots[index], open_slots = None, open_slots - 1
      index, taken = (index + 1) % cycle, 0
    elif not exhausted:
      shard = next(pending, None)
      if shard is None:
        exhausted = True
      else:
        slots[index], open_slots = iter(shard), open_slots + 1
    else:
      index, taken = (index + 1) % cycle, 0
