"""One MIDI file -> its tracks normalized as training data, and why the others were dropped.

The rules run in the order of the README's table: the file is checked and parsed, split into
one monophonic track per instrument, each track transposed and its pauses normalized, and kept
only at or above the entropy floor. `data_prep` runs this over a corpus, `Melodist.encode` over
one file.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from vrash_jax import notes
from vrash_jax.midi import normalize, tracks
from vrash_jax.midi.tracks import Rejected


def option(default: Any, help_text: str) -> Any:
  """A dataclass field whose help text becomes the flag's (`vrash-prep` has a flag per field)."""
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class TrackRules:
  """The knobs of the rules (`data_prep.process.PrepOptions` adds the dataset's own)."""
  min_notes: int = option(16, 'Tracks with fewer notes (after monophony) are too short.')
  max_chord_fraction: float = option(0.25, 'Tracks with a larger share of chord onsets are '
                                     'rejected as polyphonic; the rest keep the top note.')
  max_pauses: int = option(normalize.MAX_PAUSES, 'Most distinct pause values a track may have '
                           '(the paper: 11).')
  min_entropy: float = option(1.5, 'Tracks whose pitch entropy (bits) is lower are dropped.')
  max_file_bytes: int = option(2 << 20, 'Larger files are rejected without parsing (a note takes at '
                               'least 6 bytes, so this caps parsing at ~350k notes).')
  max_file_notes: int = option(100_000, 'Files with more notes are rejected.')

  def problems(self) -> list[str]:
    """What is wrong with these values, one sentence each (none: usable)."""
    problems = []
    if self.min_notes < 2:
      problems.append('min_notes must be at least 2 (a pause needs two notes)')
    if not 0 <= self.max_chord_fraction <= 1:
      problems.append('max_chord_fraction must be in [0, 1]')
    if self.max_pauses < 1:
      problems.append('max_pauses must be at least 1')
    if self.min_entropy < 0:
      problems.append('min_entropy must be >= 0 bits')
    if self.max_file_bytes < 1 or self.max_file_notes < 1:
      problems.append('max_file_bytes and max_file_notes must be positive')
    return problems


class FileTracks(NamedTuple):
  """What the rules made of one file."""
  instruments: int  # tracks (instruments) in the file
  kept: list[tuple[int, notes.Track]]  # (instrument index, normalized track), in file order
  rejected: list[tuple[int, str, str]]  # (instrument index, reason, detail)
  entropies: list[float]  # pitch entropy (bits) of every monophonic track, before the entropy filter


def read_bytes(path: str, rules: TrackRules) -> bytes:
  """The file's bytes, at most one past `max_file_bytes`: enough to reject a larger file unread."""
  with open(path, 'rb') as f:
    return f.read(rules.max_file_bytes + 1)


def file_tracks(data: bytes, rules: TrackRules) -> FileTracks:
  """Every rule applied to one file's bytes; raises `Rejected` when the whole file is dropped."""
  try:
    midi = tracks.parse_midi(data, rules.max_file_bytes, rules.max_file_notes)
    raw_tracks, dropped = tracks.split_tracks(midi, rules.max_chord_fraction, rules.min_notes)
  except Rejected:
    raise
  except Exception as e:  # a library bug on odd input must cost one file, not a whole corpus
    raise Rejected('internal_error', f'{type(e).__name__}: {e}'[:200]) from None
  kept, entropies = [], []
  rejected = [(index, reason, '') for index, reason in dropped]
  for raw in raw_tracks:
    entropy = normalize.pitch_entropy(raw.pitches)
    entropies.append(entropy)
    try:
      track = normalize.normalize_track(raw, rules.max_pauses)
      if entropy < rules.min_entropy:
        raise Rejected('low_entropy', f'{entropy:.2f} bits < {rules.min_entropy}')
    except Rejected as e:
      rejected.append((raw.index, e.reason, e.detail))
      continue
    kept.append((raw.index, track))
  return FileTracks(len(midi.instruments), kept, rejected, entropies)
