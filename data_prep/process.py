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

from data_prep import labels, normalize, tracks
from data_prep.tracks import Rejected
from vrash_jax.errors import VrashError

SPLITS = ('train', 'valid', 'test')


def _option(default: Any, help_text: str) -> Any:
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class PrepOptions:
  """Every knob of the pipeline; `vrash-prep` has a flag per field, stats.json records them."""
  valid_fraction: float = _option(0.05, 'Share of files (by content hash) in the valid split.')
  test_fraction: float = _option(0.05, 'Share of files (by content hash) in the test split.')
  min_notes: int = _option(16, 'Tracks with fewer notes (after monophony) are too short.')
  max_len: int = _option(64, 'Longer tracks are cut into equal chunks of at most this many '
                         'notes (each at least half of it); 0 keeps tracks whole.')
  max_chord_fraction: float = _option(0.25, 'Tracks with a larger share of chord onsets are '
                                      'rejected as polyphonic; the rest keep the top note.')
  max_pauses: int = _option(normalize.MAX_PAUSES, 'Most distinct pause values a track may have '
                            '(the paper: 11).')
  min_entropy: float = _option(1.5, 'Tracks whose pitch entropy (bits) is lower are dropped.')
  max_file_bytes: int = _option(2 << 20, 'Larger files are rejected without parsing (a note takes at '
                              'least 6 bytes, so this caps parsing at ~350k notes).')
  max_file_notes: int = _option(100_000, 'Files with more notes are rejected.')

  def validate(self) -> None:
    problems = []
    if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1
            and self.valid_fraction + self.test_fraction < 1):
      problems.append('valid_fraction and test_fraction must be in [0, 1) and sum to less than 1')
    if self.min_notes < 2:
      problems.append('min_notes must be at least 2 (a pause needs two notes)')
    if self.max_len < 0 or 0 < self.max_len < self.min_notes:
      problems.append('max_len must be 0 (no limit) or at least min_notes')
    if not 0 <= self.max_chord_fraction <= 1:
      problems.append('max_chord_fraction must be in [0, 1]')
    if self.max_pauses < 1:
      problems.append('max_pauses must be at least 1')
    if self.min_entropy < 0:
      problems.append('min_entropy must be >= 0 bits')
    if self.max_file_bytes < 1 or self.max_file_notes < 1:
      problems.append('max_file_bytes and max_file_notes must be positive')
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
    with open(path, 'rb') as f:
      data = f.read(options.max_file_bytes + 1)
  except OSError as e:
    return failed(rel, 'read_error', str(e))
  try:
    midi = tracks.parse_midi(data, options.max_file_bytes, options.max_file_notes)
    raw_tracks, rejected = tracks.split_tracks(midi, options.max_chord_fraction, options.min_notes)
  except Rejected as e:
    return failed(rel, e.reason, e.detail)
  except Exception as e:  # a library bug on odd input must cost one file, not the run
    return failed(rel, 'internal_error', f'{type(e).__name__}: {e}'[:200])
  result = failed(rel, 'ok')
  result.update(split=split_of(data, options.valid_fraction, options.test_fraction),
                tracks_total=len(midi.instruments),
                rejected=[[i, reason, ''] for i, reason in rejected])
  for raw in raw_tracks:
    entropy = normalize.pitch_entropy(raw.pitches)
    result['entropies'].append(entropy)
    try:
      track = normalize.normalize_track(raw, options.max_pauses)
      if entropy < options.min_entropy:
        raise Rejected('low_entropy', f'{entropy:.2f} bits < {options.min_entropy}')
    except Rejected as e:
      result['rejected'].append([raw.index, e.reason, e.detail])
      continue
    result['examples'].extend(_examples(rel, raw.index, track, options.max_len))
  return result
