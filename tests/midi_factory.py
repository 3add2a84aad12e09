"""Small MIDI files for tests, written with pretty_midi."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pretty_midi


def instrument(pitches: Sequence[int], pauses: Sequence[float], program: int = 0,
               is_drum: bool = False, start: float = 0.0, legato: float = 0.9) -> pretty_midi.Instrument:
  """One note per pitch; note i starts `pauses[:i]` after `start` and lasts legato * its pause."""
  inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
  t = start
  for pitch, pause in zip(pitches, pauses):
    inst.notes.append(pretty_midi.Note(80, int(pitch), t, t + legato * pause))
    t += pause
  return inst


def melody(n: int = 32, seed: int = 0, base: float = 0.25, low: int = 55, high: int = 79,
           ratios: Sequence[float] = (0.5, 1, 1, 1, 1.5, 2), program: int = 73) -> pretty_midi.Instrument:
  """A random monophonic melody whose pauses are `base` times one of `ratios`."""
  rng = np.random.default_rng(seed)
  pitches = rng.integers(low, high, n)
  pauses = base * rng.choice(np.asarray(ratios, float), n)
  return instrument(pitches, pauses, program)


def write(path: str, *instruments: pretty_midi.Instrument, tempo: float = 120.0) -> str:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
  midi.instruments.extend(instruments)
  midi.write(path)
  return path


def write_corpus(folder: str, files: int = 12, notes: int = 40) -> list[str]:
  """`files` one-melody files in two sub-folders, all of which the pipeline keeps."""
  return [write(os.path.join(folder, f'set{i % 2}', f'tune {i:02d}.mid'), melody(notes, seed=i))
          for i in range(files)]
