"""The note vocabulary and example schema shared by `data_prep` and the model.

Paper Sec. 2: a monophonic track is a sequence of notes, each note the triple
(pitch class, octave, delay), plus meta-information about the whole track.

* pitch class: MIDI pitch mod 12 (C = 0).
* octave token: MIDI pitch // 12, i.e. the scientific octave + 1 (C4 = MIDI 60 -> token 5).
  After normalization the median pitch of every track lies in octave 4 (MIDI 60-71).
* delay token: index into `DELAY_RATIOS`. The delay of note i is the pause from its onset
  to the onset of note i + 1, divided by the track's median pause; the last note's delay
  is its own duration over the median pause. Decoding plays every note legato for its delay.
* meta-information: General MIDI program family (program // 8) and a tempo bucket of the
  track's median pause in seconds (`TEMPO_BUCKET_EDGES_S`). The exact median pause is also
  stored so a track can be written back to MIDI at its original tempo.

This module imports only numpy (and pretty_midi lazily), never jax or tensorflow.
"""
from __future__ import annotations

import fractions
import math
from typing import Any, NamedTuple, Sequence

import numpy as np

SCHEMA_VERSION = 1

NUM_PITCH_CLASSES = 12
NUM_OCTAVES = 11  # tokens 0..10 cover MIDI 0..127
MEDIAN_OCTAVE_TOKEN = 5  # scientific octave 4 (MIDI 60-71)


def _delay_grid() -> tuple[fractions.Fraction, ...]:
  """Every ratio n/d with d in {1, 2, 3, 4, 6, 8} from 1/8 up to 8, and 9..16 (104 values).

  Binary and ternary subdivisions of the median pause and its multiples cover what folk
  and popular melodies use (1/2 and 3/2 most of all); whole multiples up to 16 keep the
  long final notes and fermatas of tunes whose median pause is a sixteenth note.
  """
  fine = {fractions.Fraction(n, d) for d in (1, 2, 3, 4, 6, 8) for n in range(1, 8 * d + 1)}
  return tuple(sorted(fine | {fractions.Fraction(n) for n in range(9, 17)}))


DELAY_RATIOS = _delay_grid()
NUM_DELAYS = len(DELAY_RATIOS)
_LOG_DELAYS = np.log(np.array([float(r) for r in DELAY_RATIOS]))
# A pause snaps to a grid ratio when within this relative distance (log space):
# MIDI tick rounding stays far below it, human timing jitter does not.
DELAY_TOLERANCE = 0.03

NUM_PROGRAM_FAMILIES = 16  # General MIDI: program // 8
TEMPO_BUCKET_EDGES_S = (0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8)
NUM_TEMPO_BUCKETS = len(TEMPO_BUCKET_EDGES_S) + 1

# Names and vocabulary sizes of the per-note token streams, in model order.
TOKEN_FIELDS = ('pitch_class', 'octave', 'delay')
VOCAB_SIZES = {'pitch_class': NUM_PITCH_CLASSES, 'octave': NUM_OCTAVES, 'delay': NUM_DELAYS}
# Track-level meta-information fed to the model, with vocabulary sizes.
META_FIELDS = {'family': NUM_PROGRAM_FAMILIES, 'tempo_bucket': NUM_TEMPO_BUCKETS}


class Track(NamedTuple):
  """One normalized monophonic track: tokens per note plus meta-information."""
  pitch_class: np.ndarray  # int32 [n]
  octave: np.ndarray  # int32 [n]
  delay: np.ndarray  # int32 [n]
  program: int  # General MIDI program 0..127
  median_pause_s: float  # the track's median pause, seconds

  @property
  def family(self) -> int:
    return program_family(self.program)

  @property
  def tempo_bucket(self) -> int:
    return tempo_bucket(self.median_pause_s)

  def __len__(self) -> int:
    return len(self.pitch_class)

  def cropped(self, length: int) -> 'Track':
    """The first `length` notes."""
    return Track(self.pitch_class[:length], self.octave[:length], self.delay[:length],
                 self.program, self.median_pause_s)


def pitch_to_tokens(pitches: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """MIDI pitches -> (pitch class, octave token)."""
  pitches = np.asarray(pitches, dtype=np.int32)
  return pitches % 12, pitches // 12


def tokens_to_pitch(pitch_class: np.ndarray, octave: np.ndarray) -> np.ndarray:
  """(pitch class, octave token) -> MIDI pitches."""
  return np.asarray(octave, np.int32) * 12 + np.asarray(pitch_class, np.int32)


def snap_ratios(ratios: np.ndarray) -> np.ndarray:
  """Pause ratios -> delay tokens; -1 where no grid ratio is within `DELAY_TOLERANCE`."""
  logs = np.log(np.maximum(np.asarray(ratios, np.float64), 1e-12))
  distance = np.abs(logs[:, None] - _LOG_DELAYS[None, :])
  tokens = distance.argmin(axis=1).astype(np.int32)
  return np.where(distance.min(axis=1) <= DELAY_TOLERANCE, tokens, -1)


def nearest_delay(ratio: float) -> int:
  """The delay token closest to `ratio` (clipped to the grid's range)."""
  return int(np.abs(math.log(max(ratio, 1e-12)) - _LOG_DELAYS).argmin())


def delay_ratios(tokens: np.ndarray) -> np.ndarray:
  """Delay tokens -> ratios to the median pause."""
  return np.exp(_LOG_DELAYS[np.asarray(tokens, np.int32)])


def pitch_entropy(pitches: Sequence[int] | np.ndarray) -> float:
  """Shannon entropy (bits) of a melody's pitch histogram (the paper's entropy filter)."""
  _, counts = np.unique(np.asarray(pitches), return_counts=True)
  p = counts / counts.sum()
  return float(-(p * np.log2(p)).sum())


def program_family(program: int) -> int:
  return int(program) // 8


def tempo_bucket(median_pause_s: float) -> int:
  """Median pause in seconds -> tempo bucket (0 = fastest)."""
  return int(np.searchsorted(TEMPO_BUCKET_EDGES_S, median_pause_s, side='right'))


def bucket_median_pause_s(bucket: int) -> float:
  """A representative median pause for a tempo bucket (geometric centre of its edges)."""
  edges = (TEMPO_BUCKET_EDGES_S[0] / 1.5,) + TEMPO_BUCKET_EDGES_S + (TEMPO_BUCKET_EDGES_S[-1] * 1.5,)
  return float(math.sqrt(edges[bucket] * edges[bucket + 1]))


def track_to_notes(track: Track) -> list[tuple[int, float, float]]:
  """Decodes a track into (pitch, start_s, end_s) notes, each held until the next onset.

  Octave token 10 with pitch class G# or above (MIDI 128-131) exists only in sampled
  melodies; such notes are played an octave lower, the highest octave MIDI has.
  """
  pitches = tokens_to_pitch(track.pitch_class, track.octave)
  pitches = np.where(pitches > 127, pitches - 12, pitches)
  lengths = delay_ratios(track.delay) * track.median_pause_s
  starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
  return [(int(p), float(s), float(s + d)) for p, s, d in zip(pitches, starts, lengths)]


def track_to_midi(track: Track, path: str | None = None, velocity: int = 90) -> Any:
  """Writes a track as a one-instrument MIDI file (pretty_midi); returns the PrettyMIDI."""
  import pretty_midi  # lazy: the model's runtime does not need it

  midi = pretty_midi.PrettyMIDI()
  instrument = pretty_midi.Instrument(program=int(track.program))
  for pitch, start, end in track_to_notes(track):
    instrument.notes.append(pretty_midi.Note(velocity, pitch, start, end))
  midi.instruments.append(instrument)
  if path is not None:
    midi.write(path)
  return midi


def vocabularies() -> dict[str, Any]:
  """The vocabularies as plain JSON-able data (for stats.json and dataset metadata)."""
  return {
      'schema_version': SCHEMA_VERSION,
      'pitch_class': list(range(NUM_PITCH_CLASSES)),
      'octave_token': {'size': NUM_OCTAVES, 'meaning': 'midi_pitch // 12 (C4 = 60 -> 5)'},
      'delay_ratios': [str(r) for r in DELAY_RATIOS],
      'delay_tolerance': DELAY_TOLERANCE,
      'meta': {
          'family': {'size': NUM_PROGRAM_FAMILIES, 'meaning': 'General MIDI program // 8'},
          'tempo_bucket': {'size': NUM_TEMPO_BUCKETS, 'edges_s': list(TEMPO_BUCKET_EDGES_S),
                           'meaning': 'bucket of the median pause in seconds'},
      },
  }
