"""One MIDI file -> its normalized examples, or the reasons it and its tracks were dropped.

Runs inside worker processes; results are plain JSON-able dicts so they can be written to
part files and merged by the dataset builder on any host.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np

from data_prep import labels
from vrash_jax.errors import VrashError
from vrash_jax.midi import convert
from vrash_jax.midi.convert import TrackRules, option
from vrash_jax.midi.tracks import Rejected

SPLITS = ('train', 'valid', 'test')


@dataclasses.dataclass(frozen=True)
class PrepOptions(TrackRules):
  """Every knob of the pipeline: the track rules, and how a dataset splits and cuts what they
  keep; `vrash-prep` has a flag per field, stats.json records them."""
  valid_fraction: float = option(0.05, 'Share of files (by content hash) in the valid split.')
  test_fraction: float = option(0.05, 'Share of files (by content hash) in the test split.')
  max_len: int = option(64, 'Longer tracks are cut into equal chunks of at most this many '
                        'notes (each at least half of it); 0 keeps tracks whole.')

  def validate(self) -> None:
    problems = self.problems()
    if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1
            and self.valid_fraction + self.test_fraction < 1):
      problems.append('valid_fraction and test_fraction must be in [0, 1) and sum to less than 1')
    if self.max_len < 0 or 0 < self.max_len < self.min_notes:
      problems.append('max_len must be 0 (no limit) or at least min_notes')
    if problems:
      raise VrashError('; '.join(problems))


def content_fraction(data: bytes) -> float:
  """A number in [0, 1) fixed by the file's bytes (so duplicates share a split)."""
  return int.from_bytes(hashlib.sha256(data).digest()[:8], 'big') / 2.0**64


def split_of(data: bytes, valid_fraction: float, test_fraction: float) -> str:
  u = content_fraction(data)
  if u < test_fraction:
    return 'test'
  if u < test_fraction + valid_fraction:
    return 'valid'
  return 'train'


def chunk_bounds(length: int, max_len: int) -> list[tuple[int, int]]:
  """Cuts `length` notes into the fewest equal chunks of at most `max_len` (0 = one chunk)."""
  if max_len <= 0 or length <= max_len:
    return [(0, length)]
  edges = np.linspace(0, length, math.ceil(length / max_len) + 1).round().astype(int)
  return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _examples(rel: str, index: int, track, max_len: int) -> list[dict[str, Any]]:
  collection, style = labels.labels_of(rel)
  out = []
  for chunk, (a, b) in enumerate(chunk_bounds(len(track), max_len)):
    out.append({
        'key': f'{rel}:{index}:{chunk}',
        'pitch_class': track.pitch_class[a:b].tolist(),
        'octave': track.octave[a:b].tolist(),
        'delay': track.delay[a:b].tolist(),
        'program': track.program,
        'median_pause_s': track.median_pause_s,
        'source': rel,
        'collection': collection,
        'style': style,
        'track': index,
        'chunk': chunk,
    })
  return out


def failed(rel: str, reason: str, detail: str = '') -> dict[str, Any]:
  return {'source': rel, 'status': reason, 'detail': detail, 'split': None,
          'tracks_total': 0, 'rejected': [], 'entropies': [], 'examples': []}


def process_file(item: tuple[str, str], options: PrepOptions) -> dict[str, Any]:
  """(absolute path, path relative to the MIDI root) -> a file result dict.

  Never raises: unreadable files come back with `status` set to the rejection reason.
  """
  path, rel = item
  try:
    data = convert.read_bytes(path, options)
  except OSError as e:
    return failed(rel, 'read_error', str(e))
  try:
    found = convert.file_tracks(data, options)
  except Rejected as e:
    return failed(rel, e.reason, e.detail)
  result = failed(rel, 'ok')
  result.update(split=split_of(data, options.valid_fraction, options.test_fraction),
                tracks_total=found.instruments, entropies=found.entropies,
                rejected=[list(r) for r in found.rejected])
  for index, track in found.kept:
    result['examples'].extend(_examples(rel, index, track, options.max_len))
  return result
