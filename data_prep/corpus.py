"""`vrash-corpus`: the default corpus, offline, from the scores inside the `music21` package.

Six collections of several epochs and genres (`COLLECTIONS`): the Essen folksongs and Ryan's
Mammoth Collection of fiddle tunes (ABC, one melody per tune), Bach's chorales, Palestrina's
mass movements, Monteverdi's madrigals and 14th-century Italian songs (multi-part scores).
Each tune or work is parsed with music21 and written with pretty_midi as ONE MIDI file with
one instrument per part (`scores.py`), at its metronome mark or the collection's default
tempo, with a General MIDI program as the music is performed (flute for sung folk melodies,
violin for fiddle tunes, choir and solo voices for the vocal polyphony). Files land in
OUT/<collection>/<abc file>/<collection>_<abc file>_<tune>.mid (ABC) or
OUT/<collection>/<collection>_<work>.mid (scores), so the path carries the labels
(`labels.py`); existing files are reused, so a second run only does what is missing.
"""
from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from typing import Any, NamedTuple

import numpy as np
from absl import app, flags, logging

from data_prep import parallel, scores
from vrash_jax import storage
from vrash_jax.errors import PROGRESS, VrashError, exit_on_user_error, require


class Collection(NamedTuple):
  folder: str  # inside music21/corpus
  patterns: tuple[str, ...]  # its files, preferred format first; an '*.abc' file holds many tunes
  program: int  # General MIDI program of every track
  default_qpm: float  # tempo when the music has no metronome mark

  @property
  def is_abc(self) -> bool:
    """ABC files hold many tunes (one work each); every other file is one score."""
    return self.patterns == ('*.abc',)


COLLECTIONS = {
    'essen': Collection('essenFolksong', ('*.abc',), 73, 96.0),  # flute: sung folk melodies
    'ryans': Collection('ryansMammoth', ('*.abc',), 40, 108.0),  # violin: fiddle reels, hornpipes
    'bach': Collection('bach', ('*.mxl', '*.krn', '*.xml'), 52, 80.0),  # choir: chorales
    'palestrina': Collection('palestrina', ('*.krn',), 52, 120.0),  # choir: half note ~ 60/min
    'monteverdi': Collection('monteverdi', ('*.mxl',), 53, 100.0),  # solo voices: madrigals
    'trecento': Collection('trecento', ('*.xml', '*.mxl'), 53, 120.0),  # solo voices: songs
}


# Instrumental parts inside vocal works (a chorale's horn, a madrigal's continuo) are played by
# their instrument: (word in the part name, General MIDI program).
PART_PROGRAMS = (('horn', 60), ('corno', 60), ('tromba', 56), ('trumpet', 56), ('oboe', 68),
                 ('violin', 40), ('violino', 40), ('viola', 41), ('flaut', 73), ('flute', 73),
                 ('organ', 19), ('continuo', 6), ('basso continuo', 6))


def part_program(part_name: str, default: int) -> int:
  name = part_name.lower()
  return next((program for word, program in PART_PROGRAMS if word in name), default)


class Work(NamedTuple):
  collection: str
  source: str  # the ABC text of one tune (with its file's header), or a score file's path
  out_rel: str  # output path relative to the corpus folder


def corpus_root() -> str:
  import music21
  return os.path.join(os.path.dirname(music21.__file__), 'corpus')


def split_abc(text: str) -> list[str]:
  """One ABC file -> the text of each tune (`X:` field onwards), each with the file header."""
  chunks = re.split(r'(?m)^(?=X:)', text)
  header, tunes = chunks[0], chunks[1:]
  return [header + tune for tune in tunes if tune.strip()]


def source_files(spec: Collection) -> list[str]:
  """A collection's files, sorted; a work encoded twice (bwv277.mxl and bwv277.krn) counts
  once, in the format of the first pattern that has it."""
  chosen: dict[str, str] = {}
  for pattern in spec.patterns:
    for path in sorted(glob.glob(os.path.join(corpus_root(), spec.folder, pattern))):
      chosen.setdefault(os.path.splitext(os.path.basename(path))[0], path)
  return sorted(chosen.values())


def list_works(name: str) -> list[Work]:
  """Every tune (ABC) or work (score file) of one collection, in a stable order."""
  spec = COLLECTIONS[name]
  works = []
  for path in source_files(spec):
    stem = os.path.splitext(os.path.basename(path))[0]
    if not spec.is_abc:
      works.append(Work(name, path, f'{name}/{name}_{stem}.mid'))
      continue
    with open(path, encoding='latin-1') as f:
      texts = split_abc(f.read())
    for k, text in enumerate(texts, 1):
      tune_id = f'{stem}_{k:04d}' if len(texts) > 1 else stem
      works.append(Work(name, text, f'{name}/{stem}/{name}_{tune_id}.mid'))
  return works


def convert_work(item: tuple[Work, str]) -> dict[str, Any]:
  """Writes one tune or work as MIDI; returns {'file', 'status', 'detail'} and never raises."""
  work, out_dir = item
  spec = COLLECTIONS[work.collection]
  try:
    parsed = scores.parse(work.source, abc=spec.is_abc)
  except Exception as e:  # music21 raises many types on input it cannot read
    return {'file': work.out_rel, 'status': 'unreadable', 'detail': f'{type(e).__name__}: {e}'[:200]}
  try:
    parts = scores.score_parts(parsed)
    if not any(notes for _, notes in parts):
      return {'file': work.out_rel, 'status': 'no_notes', 'detail': ''}
    qpm = scores.metronome_qpm(parsed) or spec.default_qpm
    programs = [part_program(name, spec.program) for name, _ in parts]
    scores.write_midi(parts, qpm, programs, os.path.join(out_dir, work.out_rel))
  except Exception as e:
    return {'file': work.out_rel, 'status': 'unconvertible', 'detail': f'{type(e).__name__}: {e}'[:200]}
  return {'file': work.out_rel, 'status': 'ok', 'detail': ''}


def spread(items: list, limit: int) -> list:
  """`limit` items evenly spaced over the list (all when 0), so every source file is represented."""
  if not limit or limit >= len(items):
    return items
  return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, limit).round().astype(int)))]


def build_corpus(out_dir: str, collections: list[str] | None = None, limit: int = 0,
                 workers: int | None = None) -> dict[str, Any]:
  """Converts the chosen collections (`limit` tunes or works of each, spread over its files;
  0 = all); writes and returns the manifest (OUT/corpus.json) with counts per collection."""
  storage.require_local(out_dir, '--out_dir', 'music21 and pretty_midi write local files; give '
                        '`vrash-prep` a gs:// --data_dir to put the dataset in a bucket')
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
  works = [w for name in collections for w in spread(list_works(name), limit)]
  todo = [w for w in works if not os.path.exists(os.path.join(out_dir, w.out_rel))]
  logging.info('%d tunes and works, %d already converted, converting %d', len(works),
               len(works) - len(todo), len(todo))
  results = parallel.robust_map(
      convert_work, [(w, out_dir) for w in todo], workers or os.cpu_count() or 1,
      on_crash=lambda item: {'file': item[0].out_rel, 'status': 'worker_crashed', 'detail': ''},
      progress=parallel.Progress(len(todo), lambda d, n, r: PROGRESS.info(
          '  converted %d/%d tunes and works (%.1f/s)', d, n, r)))
  skipped = [r for r in results if r['status'] != 'ok']
  per_collection = {name: collection_counts(works, skipped, name) for name in collections}
  manifest = {'works': len(works), 'reused': len(works) - len(todo),
              'written': len(todo) - len(skipped), 'skipped': len(skipped),
              'skipped_by_reason': dict(Counter(r['status'] for r in skipped)),
              'per_collection': per_collection, 'skipped_works': skipped,
              'collections': collections, 'limit': limit}
  with open(os.path.join(out_dir, 'corpus.json'), 'w') as f:
    json.dump(manifest, f, indent=2)
  return manifest


def collection_counts(works: list[Work], skipped: list[dict[str, Any]], name: str) -> dict[str, int]:
  """Works listed and skipped (this run) in one collection."""
  return {'works': sum(w.collection == name for w in works),
          'skipped': sum(r['file'].startswith(f'{name}/') for r in skipped)}


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The launcher's flags (defined on demand, so importing this module defines none)."""
  flags.DEFINE_string('out_dir', None, 'Where the MIDI files are written.')
  flags.DEFINE_list('collections', list(COLLECTIONS), f'Which of {sorted(COLLECTIONS)} to convert.')
  flags.DEFINE_integer('limit', 0, 'Convert N tunes or works of each collection, spread over '
                       'its files (0 = all).')
  flags.DEFINE_integer('workers', None, 'Worker processes (default: all cores).', lower_bound=1)


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(out_dir=FLAGS.out_dir)
  m = build_corpus(FLAGS.out_dir, FLAGS.collections, FLAGS.limit, FLAGS.workers)
  print(f"corpus: {m['works']} tunes and works in {FLAGS.out_dir} ({m['reused']} reused, "
        f"{m['written']} written, {m['skipped']} skipped: {m['skipped_by_reason'] or 'none'}; "
        'see corpus.json)', flush=True)


def run() -> None:
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
