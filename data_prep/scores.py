"""music21 scores -> MIDI files: one instrument (track) per part, in score order.

Notes are read with music21 (ties merged, grace notes dropped, every pitch of a chord kept:
the pipeline's monophony rule decides later) and written with pretty_midi, whose writer
handles every score music21 can read. Times are in quarter notes until `write_midi` turns
them into seconds at the score's tempo.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

Note = tuple[int, float, float]  # (MIDI pitch, start, end) in quarter notes


def stream_notes(flat: Any) -> list[Note]:
  """The notes of a flat music21 stream, a tied chain merged into one note per pitch."""
  sounding: dict[int, list] = {}  # pitch -> the note a tie would extend
  out: list[list] = []
  for element in flat.notes:
    length = float(element.duration.quarterLength)
    if length <= 0:  # grace notes take no time
      continue
    start = float(element.offset)
    for i, pitch in enumerate(element.pitches):
      tie = (element.notes[i].tie or element.tie) if element.isChord else element.tie
      if tie is not None and tie.type in ('stop', 'continue') and pitch.midi in sounding:
        sounding[pitch.midi][2] = start + length
        continue
      note = [pitch.midi, start, start + length]
      sounding[pitch.midi] = note
      out.append(note)
  return [tuple(n) for n in out]


def metronome_qpm(scores: list[Any]) -> float | None:
  """Quarter notes per minute of the first metronome mark, if there is one."""
  from music21 import tempo

  marks = [m.getQuarterBPM() for score in scores
           for m in score.flatten().getElementsByClass(tempo.MetronomeMark)]
  return next((m for m in marks if m), None)


def parse(source: str, abc: bool = False) -> list[Any]:
  """The music21 scores of a file path, or of ABC text when `abc`: one, or every score of a
  file that holds several (an Opus)."""
  from music21 import converter, stream

  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    parsed = (converter.parse(source, format='abc', forceSource=True) if abc else
              converter.parse(source, forceSource=True))
  return list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]


def score_parts(scores: list[Any]) -> list[tuple[str, list[Note]]]:
  """(part name, notes) for each part of each score, in order; a score without parts is one
  part. The tracks of several scores all start at 0: the pipeline reads each on its own."""
  parts = [part for score in scores for part in (list(score.parts) or [score])]
  return [(part.partName or f'part {i + 1}', stream_notes(part.flatten())) for i, part in enumerate(parts)]


def write_midi(parts: list[tuple[str, list[Note]]], qpm: float, programs: list[int], path: str) -> None:
  """One MIDI file, one instrument per part (General MIDI `programs`, one per part), written
  atomically (a file that exists is whole)."""
  import pretty_midi

  midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
  seconds = 60.0 / qpm
  for (name, notes), program in zip(parts, programs):
    instrument = pretty_midi.Instrument(program=program, name=name)
    instrument.notes = [pretty_midi.Note(90, int(p), s * seconds, e * seconds) for p, s, e in notes]
    midi.instruments.append(instrument)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  midi.write(f'{path}.tmp')
  os.replace(f'{path}.tmp', path)
