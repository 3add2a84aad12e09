"""The two labels every example carries: `collection` and `style`, read from the file's path.

`vrash-corpus` writes MIDI_DIR/<collection>/<source>/<file>.mid, so the path says where a file
comes from: the collection is its first folder, and the style is a finer musical label:
for the Essen folksongs the region of the ABC file the tune came from (`ESSEN_STYLES`), for
every other collection the collection itself. A file at the top of MIDI_DIR has collection
and style '.'. The labels describe the data for analysis (Fig. 6, the style probe); they are
never model inputs, whose meta-information stays what a MIDI file says (program, tempo).
"""
from __future__ import annotations

import re

# Essen ABC file stems (digits stripped) -> region. The German sources: Altdeutsche Lieder,
# German ballads, Boehme's Altdeutsches Liederbuch, the Deutsches Volksliedarchiv, Erk's
# Liederhort, Fink, German children's songs and Zuccalmaglio; han*: Chinese folksongs (Han);
# lot/lux: Lorraine and Luxembourg. The rest (Irish tunes, Haydn's folk-song settings, the
# collection's test and variant files) is `essen/other`.
ESSEN_STYLES = {
    'altdeu': 'german', 'ballad': 'german', 'boehme': 'german', 'dva': 'german',
    'erk': 'german', 'fink': 'german', 'kinder': 'german', 'zuccal': 'german',
    'han': 'chinese', 'lot': 'lorraine', 'lux': 'luxembourg',
}


def essen_style(abc_stem: str) -> str:
  """'han1' -> 'essen/chinese', 'erk20' -> 'essen/german', 'irl' -> 'essen/other'."""
  return 'essen/' + ESSEN_STYLES.get(re.sub(r'[0-9]+$', '', abc_stem), 'other')


def labels_of(rel: str) -> tuple[str, str]:
  """(collection, style) of a file from its path relative to the MIDI root."""
  folders = rel.replace('\\', '/').split('/')[:-1]
  if not folders:
    return '.', '.'
  collection = folders[0]
  if collection == 'essen' and len(folders) > 1:
    return collection, essen_style(folders[1])
  return collection, collection
