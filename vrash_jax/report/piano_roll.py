"""Piano rolls: pitch over time as a grid of cells, drawn one pixel block per cell.

Cells are exact (no plotting library in between), so a roll can be checked cell by cell:
`CELL_S` seconds per column, one row per semitone, C rows shaded. No jax.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

CELL_S = 0.05  # seconds per column
EMPTY, SUSTAIN, ONSET = 0, 1, 2  # cell values: a note's first column is its onset
PIXELS = (3, 2)  # each cell is drawn as 3 rows x 2 columns of pixels
C_ROW_GREY = 232  # rows of the pitch C, faintly marked to read octaves
MIN_SPAN = 14  # semitones a roll shows at least, so narrow melodies are not blown up


def midi_notes(path: str) -> list[tuple[int, float, float]]:
  """(pitch, start s, end s) of every pitched note of a MIDI file, by onset."""
  import pretty_midi

  midi = pretty_midi.PrettyMIDI(path)
  return sorted((n.pitch, n.start, n.end) for i in midi.instruments if not i.is_drum for n in i.notes)


def cells(notes: Sequence[tuple[int, float, float]], low: int, high: int, duration_s: float,
          cell_s: float = CELL_S) -> np.ndarray:
  """[high - low + 1, columns] grid, row 0 = pitch `high`: ONSET where a note starts, SUSTAIN
  while it sounds. A note lasts at least one column; pitches outside [low, high] are clipped."""
  grid = np.zeros((high - low + 1, int(np.ceil(duration_s / cell_s - 1e-9))), np.uint8)  # 1.1 / 0.05 > 22
  for pitch, start, end in notes:
    row = high - min(max(pitch, low), high)
    first = int(round(start / cell_s))
    last = max(first + 1, int(round(end / cell_s)))
    grid[row, first:last] = np.maximum(grid[row, first:last], SUSTAIN)
    grid[row, first:first + 1] = ONSET
  return grid


def image(grid: np.ndarray, colour: str, high: int) -> np.ndarray:
  """RGB pixels of a grid: white background, C rows light grey, notes in `colour` (#rrggbb),
  onsets darker so repeated notes stay apart."""
  rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float64)
  out = np.full(grid.shape + (3,), 255, np.uint8)
  out[[(high - row) % 12 == 0 for row in range(grid.shape[0])]] = C_ROW_GREY
  out[grid == SUSTAIN] = rgb.astype(np.uint8)
  out[grid == ONSET] = (rgb * 0.55).astype(np.uint8)
  return np.repeat(np.repeat(out, PIXELS[0], axis=0), PIXELS[1], axis=1)


def write_png(path: str, grid: np.ndarray, colour: str, high: int) -> str:
  import matplotlib.image

  matplotlib.image.imsave(path, image(grid, colour, high))
  return path


def fit(notes: Sequence[tuple[int, float, float]], min_span: int = MIN_SPAN) -> tuple[int, int, float]:
  """(low, high, duration s) of a roll that shows the whole melody: its pitches with a semitone
  of margin (at least `min_span` semitones, centred) and its duration."""
  pitches = [p for p, _, _ in notes] or [60]
  low, high = min(pitches) - 1, max(pitches) + 1
  short = max(0, min_span - (high - low))
  low, high = low - short // 2, high + short - short // 2
  return low, high, max([end for _, _, end in notes] or [CELL_S])
