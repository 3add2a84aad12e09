"""Paper Sec. 2 normalization, one function per rule.

1. Velocities are never read (tracks carry pitches and onsets only).
2. `transpose_to_octave_4`: shift by whole octaves so the median pitch lies in MIDI 60-71.
3. `pause_ratios` / `count_distinct_pauses` / `delay_tokens`: every pause divided by the
   track's median pause; tracks with more than `max_pauses` (11) distinct pause values are
   dropped; the rest map onto the global delay grid of `vrash_jax.notes`.
4. `pitch_entropy` (from `vrash_jax.notes`): entropy of the pitch distribution in bits.
"""
from __future__ import annotations

import numpy as np

from vrash_jax import notes
from vrash_jax.midi.tracks import RawTrack, Rejected

MAX_PAUSES = 11


def octave_shift(pitches: np.ndarray) -> int:
  """Semitones (a multiple of 12) that move the median pitch into octave 4 (MIDI 60-71)."""
  median = int(np.floor(np.median(pitches)))
  return 12 * (notes.MEDIAN_OCTAVE_TOKEN - median // 12)


def transpose_to_octave_4(pitches: np.ndarray) -> np.ndarray:
  shifted = np.asarray(pitches, np.int32) + octave_shift(pitches)
  if shifted.min() < 0 or shifted.max() > 127:
    raise Rejected('pitch_out_of_range', f'range {shifted.min()}..{shifted.max()} after transposition')
  return shifted


def median_pause(onsets: np.ndarray) -> float:
  """Median inter-onset interval in seconds."""
  return float(np.median(np.diff(onsets)))


def pause_ratios(onsets: np.ndarray, median: float) -> np.ndarray:
  """Every inter-onset pause as a ratio to the median pause."""
  return np.diff(onsets) / median


def count_distinct_pauses(ratios: np.ndarray) -> int:
  """Distinct pause values: grid ratios by token, off-grid ones by tolerance-wide bins."""
  tokens = notes.snap_ratios(ratios)
  off_grid = ratios[tokens < 0]
  bins = np.round(np.log(off_grid) / (2 * notes.DELAY_TOLERANCE))
  return len(set(tokens[tokens >= 0].tolist())) + len(set(bins.tolist()))


def delay_tokens(raw: RawTrack, median: float, max_pauses: int = MAX_PAUSES) -> np.ndarray:
  """Pauses -> delay tokens; the last note's delay is its duration, snapped to the grid.

  Raises `Rejected` for too many distinct pauses, or pauses no grid ratio explains.
  """
  ratios = pause_ratios(raw.onsets, median)
  distinct = count_distinct_pauses(ratios)
  if distinct > max_pauses:
    raise Rejected('too_many_pauses', f'{distinct} distinct pauses > {max_pauses}')
  tokens = notes.snap_ratios(ratios)
  if (tokens < 0).any():
    raise Rejected('pause_off_grid', f'ratio {ratios[tokens < 0][0]:.3f} is not on the delay grid')
  last = notes.nearest_delay(raw.last_duration / median if raw.last_duration > 0 else 1.0)
  return np.append(tokens, last).astype(np.int32)


pitch_entropy = notes.pitch_entropy  # one definition for the filter and the sample metrics


def normalize_track(raw: RawTrack, max_pauses: int = MAX_PAUSES) -> notes.Track:
  """Transposition and pause normalization of one monophonic track (no entropy filter)."""
  pitches = transpose_to_octave_4(raw.pitches)
  median = median_pause(raw.onsets)
  delays = delay_tokens(raw, median, max_pauses)
  pitch_class, octave = notes.pitch_to_tokens(pitches)
  return notes.Track(pitch_class, octave, delays, raw.program, median)
