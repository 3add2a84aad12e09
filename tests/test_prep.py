"""End to end: a folder of good and hostile MIDI files -> TFRecords, stats, plot, errors."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import midi_factory
from data_prep import parts, prep
from data_prep.process import PrepOptions
from vrash_jax import input_pipeline, notes
from vrash_jax.errors import VrashError

GOOD_FILES = 12


def huge_midi(num_notes: int) -> bytes:
  """A type-0 file with `num_notes` notes, written with running status (6 bytes a note)."""
  events = b'\x00\x90\x3c\x50\x0c\x3c\x00' + b'\x00\x3c\x50\x0c\x3c\x00' * (num_notes - 1) + b'\x00\xff\x2f\x00'
  return b'MThd' + struct.pack('>IHHH', 6, 0, 1, 96) + b'MTrk' + struct.pack('>I', len(events)) + events


def write_hostile_files(folder):
  """One file per bad-input case; returns {file name: expected reason}."""
  good = open(midi_factory.write(os.path.join(folder, 'tmp.mid'), midi_factory.melody(40, seed=99)), 'rb').read()
  os.remove(os.path.join(folder, 'tmp.mid'))
  cases = {
      'truncated.mid': good[:len(good) // 2],
      'zero.mid': b'',
      'text.midi': b'this is not a MIDI file at all',
      'type2.mid': b'MThd' + struct.pack('>IHHH', 6, 2, 1, 96) + b'MTrk\x00\x00\x00\x04\x00\xff\x2f\x00',
      'huge.mid': huge_midi(400_000),
  }
  for name, data in cases.items():
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(data)
  midi_factory.write(os.path.join(folder, 'drums only.mid'),
                     midi_factory.instrument([36] * 40, [0.25] * 40, is_drum=True))
  import pretty_midi
  midi_factory.write(os.path.join(folder, 'silent.mid'), pretty_midi.Instrument(0))
  midi_factory.write(os.path.join(folder, 'ünïcödé 曲.mid'), midi_factory.melody(40, seed=100))
  return {'truncated.mid': 'unreadable', 'zero.mid': 'empty_file', 'text.midi': 'not_midi',
          'type2.mid': 'midi_type_2', 'huge.mid': 'too_large', 'silent.mid': 'no_notes'}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp('prep')
  midi_dir, data_dir = str(root / 'midi'), str(root / 'out')
  midi_factory.write_corpus(midi_dir, files=GOOD_FILES)
  expected_failures = write_hostile_files(midi_dir)
  options = PrepOptions(valid_fraction=0.2, test_fraction=0.2, max_len=32)
  stats = prep.prepare(midi_dir, data_dir, options, workers=2)
  return midi_dir, data_dir, stats, expected_failures


def test_stats_count_every_file_and_every_rejection(prepared):
  _, data_dir, stats, expected_failures = prepared
  assert stats['files_total'] == GOOD_FILES + 1 + 1 + len(expected_failures) + 0  # + drums-only + unicode
  expected = {}
  for reason in expected_failures.values():
    expected[reason] = expected.get(reason, 0) + 1
  assert stats['files_failed'] == expected
  assert stats['rejected'] == {'drums': 1}
  assert stats['tracks_kept'] == GOOD_FILES + 1
  assert stats['files_without_kept_tracks'] == 1  # drums only
  on_disk = json.load(open(os.path.join(data_dir, 'stats.json')))
  assert on_disk['examples'] == stats['examples'] and sum(on_disk['examples'].values()) > GOOD_FILES
  assert on_disk['vocabularies']['delay_ratios'][11] == '1'
  logged = [json.loads(line) for line in open(os.path.join(data_dir, 'rejections.jsonl'))]
  by_source = {r['source']: r['reason'] for r in logged}
  for name, reason in expected_failures.items():
    assert by_source[name] == reason
  assert by_source['drums only.mid'] == 'drums'
  with open(os.path.join(data_dir, 'entropy.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def _part_examples(data_dir):
  part_files = parts.list_parts(os.path.join(data_dir, prep.PARTS_DIR))
  return {e['key']: (r['split'], e) for r in parts.read_results(part_files) for e in r['examples']}


def test_tfds_reads_back_the_same_sequences_with_no_leakage(prepared):
  _, data_dir, stats, _ = prepared
  import tensorflow_datasets as tfds
  expected = _part_examples(data_dir)
  seen, split_of_source = 0, {}
  for split, count in stats['examples'].items():
    if not count:
      continue
    for ex in tfds.load('vrash_midi', split=split, data_dir=data_dir).as_numpy_iterator():
      key = f"{ex['source'].decode()}:{ex['track']}:{ex['chunk']}"
      want_split, want = expected[key]
      assert want_split == split
      for f in notes.TOKEN_FIELDS:
        np.testing.assert_array_equal(ex[f], want[f])
      assert ex['length'] == len(want['delay']) <= 32
      assert ex['family'] == notes.program_family(want['program'])
      split_of_source.setdefault(ex['source'].decode(), set()).add(split)
      seen += 1
  assert seen == len(expected)
  assert all(len(s) == 1 for s in split_of_source.values())  # a file never spans splits
  assert any(s.startswith('ünïcödé') for s in split_of_source)


def test_input_pipeline_loads_padded_arrays(prepared):
  _, data_dir, stats, _ = prepared
  arrays = input_pipeline.load_split(data_dir, 'train', max_len=40)
  n = stats['examples']['train']
  assert arrays['delay'].shape == (n, 40) and arrays['mask'].shape == (n, 40)
  assert (arrays['mask'].sum(1) == arrays['length']).all()
  assert (arrays['pitch_class'][~arrays['mask']] == 0).all()
  assert set(arrays['tempo_bucket']) <= set(range(notes.NUM_TEMPO_BUCKETS))
  with pytest.raises(VrashError, match='no prepared vrash_midi'):
    input_pipeline.load_split(os.path.dirname(data_dir), 'train')


def test_sharded_preparation_builds_the_same_dataset(prepared, tmp_path):
  midi_dir, data_dir, stats, _ = prepared
  out = str(tmp_path / 'sharded')
  options = PrepOptions(valid_fraction=0.2, test_fraction=0.2, max_len=32)
  prep.prepare(midi_dir, out, options, workers=1, stage='process', shard_index=1, num_shards=2)
  with pytest.raises(VrashError, match='1 of 2 shards are not processed'):
    prep.prepare(None, out, options, stage='build')
  prep.prepare(midi_dir, out, options, workers=1, stage='process', shard_index=0, num_shards=2)
  sharded = prep.prepare(None, out, options, stage='build')
  assert sharded['examples'] == stats['examples'] and sharded['num_shards'] == 2
  assert _part_examples(out).keys() == _part_examples(data_dir).keys()


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'data_prep.prep', *args],
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('args, message', [
    (['--midi_dir=/no/such/dir', '--data_dir=/tmp/x'], "--midi_dir '/no/such/dir' is not a directory"),
    (['--midi_dir={empty}', '--data_dir=/tmp/x'], 'no .mid or .midi files'),
    (['--midi_dir={midi}', '--data_dir={file}/sub'], 'cannot write to --data_dir'),
    (['--midi_dir={midi}', '--data_dir=/tmp/x', '--test_fraction=0.7', '--valid_fraction=0.5'],
     'sum to less than 1'),
    (['--midi_dir={midi}', '--data_dir=/tmp/x', '--workers=0'], '--workers'),
    (['--data_dir=/tmp/x'], '--midi_dir'),
])
def test_cli_errors_are_one_clear_line(prepared, tmp_path, args, message):
  midi_dir = prepared[0]
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'file').write_text('x')
  fill = dict(empty=tmp_path / 'empty', midi=midi_dir, file=tmp_path / 'file')
  result = _cli(*[a.format(**fill) for a in args])
  assert result.returncode != 0
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
