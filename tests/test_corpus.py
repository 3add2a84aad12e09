"""The default corpus: ABC splitting, even subsets, real tunes and multi-part scores to MIDI."""
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
  assert manifest['works'] == 6 and manifest['written'] + manifest['skipped'] == 6
  files = sorted(os.path.relpath(os.path.join(r, f), tmp_path)
                 for r, _, fs in os.walk(tmp_path) for f in fs if f.endswith('.mid'))
  assert len(files) == manifest['written'] >= 5
  assert {f.split(os.sep)[0] for f in files} == {'essen', 'ryans'}
  assert len({os.path.dirname(f) for f in files if f.startswith('essen')}) == 3  # spread over files
  midi = pretty_midi.PrettyMIDI(os.path.join(tmp_path, files[0]))
  assert midi.instruments[0].program == 73 and len(midi.instruments[0].notes) > 10
  assert corpus.build_corpus(str(tmp_path), ['essen', 'ryans'], limit=3, workers=2)['reused'] == manifest['written']
  assert json.load(open(tmp_path / 'corpus.json'))['works'] == 6


def three_part_score():
  """Soprano: C5 then D5 tied over two quarters; alto: an E4-G4 chord; bass: a rest, then A2."""
  from music21 import chord, note, stream, tie

  soprano, alto, bass = stream.Part(), stream.Part(), stream.Part()
  soprano.partName, alto.partName, bass.partName = 'Soprano', 'Alto', 'Bass'
  first, second = note.Note('D5', quarterLength=1), note.Note('D5', quarterLength=1)
  first.tie, second.tie = tie.Tie('start'), tie.Tie('stop')
  soprano.append([note.Note('C5', quarterLength=1), first, second])
  alto.append(chord.Chord(['E4', 'G4'], quarterLength=3))
  bass.append([note.Rest(quarterLength=1), note.Note('A2', quarterLength=2)])
  return stream.Score([soprano, alto, bass])


def test_a_multi_part_score_becomes_one_midi_file_with_a_track_per_part(tmp_path):
  source = str(tmp_path / 'chorale.musicxml')
  three_part_score().write('musicxml', fp=source)
  result = corpus.convert_work((corpus.Work('bach', source, 'bach/bach_chorale.mid'), str(tmp_path)))
  assert result['status'] == 'ok', result
  midi = pretty_midi.PrettyMIDI(str(tmp_path / 'bach' / 'bach_chorale.mid'))
  beat = 60.0 / corpus.COLLECTIONS['bach'].default_qpm  # no metronome mark: the collection's tempo
  got = [(i.name, i.program, [(n.pitch, round(n.start / beat, 3), round(n.end / beat, 3)) for n in i.notes])
         for i in midi.instruments]
  assert got == [('Soprano', 52, [(72, 0, 1), (74, 1, 3)]),  # the tie merged into one half note
                 ('Alto', 52, [(64, 0, 3), (67, 0, 3)]),  # both chord notes: prep keeps the highest
                 ('Bass', 52, [(45, 1, 3)])]


def test_instrumental_parts_of_vocal_works_keep_their_instrument():
  assert corpus.part_program('Horn 2', 52) == 60 and corpus.part_program('Continuo', 53) == 6
  assert corpus.part_program('Soprano', 52) == 52 and corpus.part_program('Cantus I', 53) == 53


def test_unconvertible_works_are_counted_and_skipped_and_finished_ones_reused(tmp_path, monkeypatch):
  root = tmp_path / 'music21corpus'
  (root / 'bach').mkdir(parents=True)
  three_part_score().write('musicxml', fp=str(root / 'bach' / 'good.xml'))
  (root / 'bach' / 'broken.krn').write_text('**kern\n*M4/4\nthis is not humdrum\n*-\n')
  (root / 'bach' / 'notes.rntxt').write_text('not a work of the collection')
  monkeypatch.setattr(corpus, 'corpus_root', lambda: str(root))
  out = str(tmp_path / 'out')
  first = corpus.build_corpus(out, ['bach'], workers=1)
  assert (first['works'], first['written'], first['skipped']) == (2, 1, 1)
  assert first['skipped_works'][0]['file'] == 'bach/bach_broken.mid'
  assert sum(first['skipped_by_reason'].values()) == 1 and first['per_collection']['bach'] == {
      'works': 2, 'skipped': 1}
  assert os.listdir(os.path.join(out, 'bach')) == ['bach_good.mid']
  again = corpus.build_corpus(out, ['bach'], workers=1)
  assert (again['reused'], again['written'], again['skipped']) == (1, 0, 1)


def test_a_work_encoded_twice_is_converted_once_in_the_preferred_format(tmp_path, monkeypatch):
  (tmp_path / 'bach').mkdir()
  for name in ('a.mxl', 'a.krn', 'b.krn', 'c.xml', 'a.rntxt'):
    (tmp_path / 'bach' / name).write_text('')
  monkeypatch.setattr(corpus, 'corpus_root', lambda: str(tmp_path))
  assert [os.path.basename(p) for p in corpus.source_files(corpus.COLLECTIONS['bach'])] == [
      'a.mxl', 'b.krn', 'c.xml']


def test_a_file_of_several_scores_keeps_every_part_as_a_track(tmp_path):
  two_tunes = 'X:1\nT:a\nM:4/4\nL:1/4\nK:C\nCDEF|\n\nX:2\nT:b\nM:4/4\nL:1/4\nK:C\ncBAG|GABc|\n'
  work = corpus.Work('essen', two_tunes, 'essen/x/essen_x.mid')
  assert corpus.convert_work((work, str(tmp_path)))['status'] == 'ok'
  midi = pretty_midi.PrettyMIDI(str(tmp_path / 'essen' / 'x' / 'essen_x.mid'))
  assert [[n.pitch for n in i.notes] for i in midi.instruments] == [
      [60, 62, 64, 65], [72, 71, 69, 67, 67, 69, 71, 72]]
