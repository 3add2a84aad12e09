"""MIDI bytes -> tracks -> monophonic note sequences (paper Sec. 2, first steps).

Monophony rule: notes whose onsets fall within `ONSET_TOLERANCE_S` of each other form
one chord; a track is rejected as polyphonic when more than `max_chord_fraction` of its
onsets are chords, otherwise each chord keeps only its highest note (the "skyline",
which is where a melody usually sits). Velocities and note-off times are dropped later:
only onsets, pitches and the last note's duration survive.
"""
from __future__ import annotations

import io
import struct
import warnings
from typing import NamedTuple

import numpy as np

ONSET_TOLERANCE_S = 0.01


class Rejected(Exception):
  """A file or track is dropped; `reason` is a short code counted in stats.json."""

  def __init__(self, reason: str, detail: str = ''):
    super().__init__(f'{reason}: {detail}' if detail else reason)
    self.reason = reason
    self.detail = detail


class RawTrack(NamedTuple):
  """One instrument of a file, monophonic, times in seconds."""
  index: int  # position of the instrument in the file
  program: int
  pitches: np.ndarray  # int32 [n]
  onsets: np.ndarray  # float64 [n], strictly increasing
  last_duration: float  # seconds the last note sounds


def check_header(data: bytes, max_bytes: int) -> None:
  """Rejects what is not a single-song Standard MIDI File before parsing it."""
  if not data:
    raise Rejected('empty_file')
  if len(data) > max_bytes:
    raise Rejected('too_large', f'{len(data)} bytes > {max_bytes}')
  if not data.startswith(b'MThd') or len(data) < 14:
    raise Rejected('not_midi', 'no MThd header')
  midi_format = struct.unpack('>H', data[8:10])[0]
  if midi_format == 2:
    raise Rejected('midi_type_2', 'type-2 files hold independent patterns, not one song')
  if midi_format > 2:
    raise Rejected('not_midi', f'unknown MIDI format {midi_format}')


def parse_midi(data: bytes, max_bytes: int, max_notes: int):
  """Bytes -> pretty_midi.PrettyMIDI, or `Rejected` with the reason."""
  import pretty_midi  # deferred so that importing this module stays cheap

  check_header(data, max_bytes)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
  except Exception as e:  # mido/pretty_midi raise many types on corrupt data
    raise Rejected('unreadable', f'{type(e).__name__}: {e}'[:200]) from None
  num_notes = sum(len(i.notes) for i in midi.instruments)
  if num_notes == 0:
    raise Rejected('no_notes')
  if num_notes > max_notes:
    raise Rejected('too_many_notes', f'{num_notes} notes > {max_notes}')
  return midi


def monophonize(pitches: np.ndarray, starts: np.ndarray, ends: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float, float]:
  """Keeps the highest note of each onset group.

  Returns (pitches, onsets, last_duration, chord_fraction), where chord_fraction is the
  share of onset groups that held more than one distinct pitch.
  """
  order = np.argsort(starts, kind='stable')
  pitches, starts, ends = pitches[order], starts[order], ends[order]
  new_group = np.concatenate([[True], np.diff(starts) > ONSET_TOLERANCE_S])
  group_id = np.cumsum(new_group) - 1
  onsets = starts[new_group]  # a group sounds from its earliest onset
  # Within each group, highest pitch first; group boundaries stay where they were.
  order = np.lexsort((-pitches, group_id))
  pitches, ends = pitches[order], ends[order]
  distinct = np.zeros(len(onsets), np.int64)
  np.add.at(distinct, group_id, new_group | np.concatenate([[True], np.diff(pitches) != 0]))
  chord_fraction = float(np.mean(distinct > 1))
  keep = np.flatnonzero(new_group)
  return (pitches[keep].astype(np.int32), onsets.astype(np.float64),
          float(max(ends[keep[-1]] - onsets[-1], 0.0)), chord_fraction)


def split_tracks(midi, max_chord_fraction: float, min_notes: int
                 ) -> tuple[list[RawTrack], list[tuple[int, str]]]:
  """PrettyMIDI -> (monophonic tracks, [(instrument index, rejection reason)])."""
  kept, rejected = [], []
  for index, instrument in enumerate(midi.instruments):
    if instrument.is_drum:
      rejected.append((index, 'drums'))
      continue
    if not instrument.notes:
      rejected.append((index, 'no_notes'))
      continue
    notes = instrument.notes
    pitches = np.fromiter((n.pitch for n in notes), np.int32, len(notes))
    starts = np.fromiter((n.start for n in notes), np.float64, len(notes))
    ends = np.fromiter((n.end for n in notes), np.float64, len(notes))
    pitches, onsets, last_duration, chord_fraction = monophonize(pitches, starts, ends)
    if chord_fraction > max_chord_fraction:
      rejected.append((index, 'polyphonic'))
    elif len(pitches) < min_notes:
      rejected.append((index, 'too_short'))
    else:
      kept.append(RawTrack(index, int(instrument.program), pitches, onsets, last_duration))
  return kept, rejected
