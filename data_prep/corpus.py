"""`vrash-corpus`: the default real corpus, offline, from the folk music inside `music21`.

The Essen folksong collection (8,514 tunes in 31 ABC files) and Ryan's Mammoth Collection
(1,059 tunes) ship with the music21 pip package. Each tune is parsed with music21 and its
notes written with pretty_midi (music21's own MIDI writer raises on a share of the tunes):
one tune per file, ties merged, grace notes dropped, the tune's metronome mark or a
realistic default tempo, and a General MIDI program per collection. Files land in
OUT/<collection>/<abc file>/<collection>_<abc file>_<tune>.mid, so the folder names the
(sub)collection; existing files are reused, so a second run only does what is missing.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from typing import Any, NamedTuple

import numpy as np
from absl import app, flags, logging

from data_prep import parallel
from vrash_jax.errors import VrashError, exit_on_user_error, require


class Collection(NamedTuple):
  folder: str  # inside music21/corpus
  program: int  # General MIDI program of the written track
  default_qpm: float  # tempo when the tune has no metronome mark


COLLECTIONS = {
    'essen': Collection('essenFolksong', 73, 96.0),  # flute: sung folk melodies
    'ryans': Collection('ryansMammoth', 40, 108.0),  # violin: fiddle reels and hornpipes
}


class Tune(NamedTuple):
  collection: str
  text: str  # the ABC text of one tune, with its file's header
  out_rel: str  # output path relative to the corpus folder


def corpus_root() -> str:
  import music21
  return os.path.join(os.path.dirname(music21.__file__), 'corpus')


def split_abc(text: str) -> list[str]:
  """One ABC file -> the text of each tune (`X:` field onwards), each with the file header."""
  chunks = re.split(r'(?m)^(?=X:)', text)
  header, tunes = chunks[0], chunks[1:]
  return [header + tune for tune in tunes if tune.strip()]


def list_tunes(collections: list[str]) -> list[Tune]:
  tunes = []
  for name in collections:
    folder = os.path.join(corpus_root(), COLLECTIONS[name].folder)
    for abc in sorted(f for f in os.listdir(folder) if f.endswith('.abc')):
      with open(os.path.join(folder, abc), encoding='latin-1') as f:
        texts = split_abc(f.read())
      stem = abc[:-4]
      for k, text in enumerate(texts, 1):
        tune_id = f'{stem}_{k:04d}' if len(texts) > 1 else stem
        tunes.append(Tune(name, text, f'{name}/{stem}/{name}_{tune_id}.mid'))
  return tunes


def tune_notes(text: str) -> tuple[list[tuple[int, float, float]], float | None]:
  """ABC text -> ([(pitch, start, end)] in quarter notes, metronome qpm or None)."""
  from music21 import converter, tempo

  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    flat = converter.parse(text, format='abc', forceSource=True).flatten()
  marks = [m.getQuarterBPM() for m in flat.getElementsByClass(tempo.MetronomeMark)]
  sounding: dict[int, list] = {}  # pitch -> the note a tie would extend
  out: list[list] = []
  for element in flat.notes:
    length = float(element.duration.quarterLength)
    if length <= 0:  # grace notes take no time in ABC
      continue
    start = float(element.offset)
    for pitch in element.pitches:
      tied = element.tie is not None and element.tie.type in ('stop', 'continue')
      if tied and pitch.midi in sounding:
        sounding[pitch.midi][2] = start + length
        continue
      note = [pitch.midi, start, start + length]
      sounding[pitch.midi] = note
      out.append(note)
  qpm = next((m for m in marks if m), None)
  return [tuple(n) for n in out], qpm


def convert_tune(item: tuple[Tune, str]) -> dict[str, Any]:
  """Writes one tune as MIDI; returns {'file', 'status', 'detail'} and never raises."""
  tune, out_dir = item
  import pretty_midi

  collection = COLLECTIONS[tune.collection]
  try:
    quarter_notes, qpm = tune_notes(tune.text)
    if not quarter_notes:
      return {'file': tune.out_rel, 'status': 'no_notes', 'detail': ''}
    qpm = qpm or collection.default_qpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    instrument = pretty_midi.Instrument(program=collection.program)
    seconds = 60.0 / qpm
    for pitch, start, end in quarter_notes:
      instrument.notes.append(pretty_midi.Note(90, int(pitch), start * seconds, end * seconds))
    midi.instruments.append(instrument)
    path = os.path.join(out_dir, tune.out_rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    midi.write(f'{path}.tmp')
    os.replace(f'{path}.tmp', path)  # a file that exists is complete
  except Exception as e:  # music21 raises many types on ABC it cannot render
    return {'file': tune.out_rel, 'status': 'unrenderable', 'detail': f'{type(e).__name__}: {e}'[:200]}
  return {'file': tune.out_rel, 'status': 'ok', 'detail': ''}


def spread(items: list, limit: int) -> list:
  """`limit` items evenly spaced over the list (all when 0), so every ABC file is represented."""
  if not limit or limit >= len(items):
    return items
  return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, limit).round().astype(int)))]


def build_corpus(out_dir: str, collections: list[str] | None = None, limit: int = 0,
                 workers: int | None = None) -> dict[str, Any]:
  """Converts the chosen collections (`limit` tunes of each, spread over its files; 0 = all)."""
  collections = collections or list(COLLECTIONS)
  unknown = sorted(set(collections) - set(COLLECTIONS))
  if unknown:
    raise VrashError(f'unknown collection(s) {unknown}; choose from {sorted(COLLECTIONS)}')
  if limit < 0:
    raise VrashError(f'--limit must be >= 0, got {limit}')
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise VrashError(f'cannot create --out_dir {out_dir!r}: {e.strerror or e}') from None
  tunes = []
  for name in collections:
    tunes.extend(spread(list_tunes([name]), limit))
  todo = [t for t in tunes if not os.path.exists(os.path.join(out_dir, t.out_rel))]
  logging.info('%d tunes, %d already converted, converting %d', len(tunes), len(tunes) - len(todo), len(todo))
  results = parallel.robust_map(
      convert_tune, [(t, out_dir) for t in todo], workers or os.cpu_count() or 1,
      on_crash=lambda item: {'file': item[0].out_rel, 'status': 'worker_crashed', 'detail': ''},
      progress=parallel.Progress(len(todo), lambda d, n, r: logging.info(
          'converted %d/%d tunes (%.1f tunes/s)', d, n, r)))
  skipped = [r for r in results if r['status'] != 'ok']
  manifest = {'tunes': len(tunes), 'reused': len(tunes) - len(todo),
              'written': len(todo) - len(skipped), 'skipped': len(skipped),
              'skipped_tunes': skipped, 'collections': collections, 'limit': limit}
  with open(os.path.join(out_dir, 'corpus.json'), 'w') as f:
    json.dump(manifest, f, indent=2)
  return manifest


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The launcher's flags (defined on demand, so importing this module defines none)."""
  flags.DEFINE_string('out_dir', None, 'Where the MIDI files are written.')
  flags.DEFINE_list('collections', list(COLLECTIONS), f'Which of {sorted(COLLECTIONS)} to convert.')
  flags.DEFINE_integer('limit', 0, 'Convert N tunes of each collection, spread over its files (0 = all).')
  flags.DEFINE_integer('workers', None, 'Worker processes (default: all cores).', lower_bound=1)


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(out_dir=FLAGS.out_dir)
  m = build_corpus(FLAGS.out_dir, FLAGS.collections, FLAGS.limit, FLAGS.workers)
  print(f"corpus: {m['tunes']} tunes in {FLAGS.out_dir} ({m['reused']} reused, {m['written']} "
        f"written, {m['skipped']} skipped as unrenderable: see corpus.json)", flush=True)


def run() -> None:
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
