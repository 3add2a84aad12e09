"""The default corpus: ABC splitting, even subsets, and real tunes converted to MIDI."""
import json
import os

import pretty_midi

from data_prep import corpus


def test_split_abc_keeps_the_file_header_with_each_tune():
  text = '%header\nL:1/8\n\nX:1\nT:a\nK:C\nCDE|\n\nX:2\nT:b\nK:G\nGAB|\n'
  tunes = corpus.split_abc(text)
  assert len(tunes) == 2
  assert tunes[0].startswith('%header') and 'X:1' in tunes[0] and 'X:2' not in tunes[0]
  assert tunes[1].startswith('%header') and 'T:b' in tunes[1]


def test_spread_picks_evenly_over_the_whole_list():
  assert corpus.spread(list(range(10)), 3) == [0, 4, 9]
  assert corpus.spread(list(range(5)), 0) == list(range(5))


def test_real_tunes_become_midi_and_a_second_run_reuses_them(tmp_path):
  manifest = corpus.build_corpus(str(tmp_path), ['essen', 'ryans'], limit=3, workers=2)
  assert manifest['tunes'] == 6 and manifest['written'] + manifest['skipped'] == 6
  files = sorted(os.path.relpath(os.path.join(r, f), tmp_path)
                 for r, _, fs in os.walk(tmp_path) for f in fs if f.endswith('.mid'))
  assert len(files) == manifest['written'] >= 5
  assert {f.split(os.sep)[0] for f in files} == {'essen', 'ryans'}
  assert len({os.path.dirname(f) for f in files if f.startswith('essen')}) == 3  # spread over files
  midi = pretty_midi.PrettyMIDI(os.path.join(tmp_path, files[0]))
  assert midi.instruments[0].program == 73 and len(midi.instruments[0].notes) > 10
  assert corpus.build_corpus(str(tmp_path), ['essen', 'ryans'], limit=3, workers=2)['reused'] == manifest['written']
  assert json.load(open(tmp_path / 'corpus.json'))['tunes'] == 6
