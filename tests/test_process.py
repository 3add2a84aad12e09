"""Per-file processing: hash split, chunking, and the MIDI -> tokens -> MIDI round trip."""
import os

import numpy as np
import pytest

import midi_factory
from data_prep import process
from data_prep.process import PrepOptions
from vrash_jax import notes
from vrash_jax.errors import VrashError


def test_split_is_a_deterministic_function_of_content_with_the_asked_shares():
  rng = np.random.default_rng(0)
  blobs = [rng.bytes(32) for _ in range(4000)]
  splits = [process.split_of(b, 0.1, 0.2) for b in blobs]
  assert splits == [process.split_of(b, 0.1, 0.2) for b in blobs]
  shares = {s: splits.count(s) / len(splits) for s in process.SPLITS}
  assert shares['test'] == pytest.approx(0.2, abs=0.03)
  assert shares['valid'] == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize('length, max_len, bounds', [
    (64, 64, [(0, 64)]), (100, 64, [(0, 50), (50, 100)]),
    (129, 64, [(0, 43), (43, 86), (86, 129)]), (500, 0, [(0, 500)])])
def test_chunks_are_equal_and_cover_every_note(length, max_len, bounds):
  assert process.chunk_bounds(length, max_len) == bounds


def test_bad_options_are_refused_with_the_reason():
  with pytest.raises(VrashError, match='sum to less than 1'):
    PrepOptions(valid_fraction=0.6, test_fraction=0.5).validate()
  with pytest.raises(VrashError, match='min_notes'):
    PrepOptions(min_notes=1).validate()


def test_midi_tokens_midi_round_trip(tmp_path):
  pitches = [48, 50, 52, 53, 55, 57, 59, 60] * 3  # median 54.5 -> up one octave
  pauses = [0.3, 0.15, 0.15, 0.3, 0.45, 0.15, 0.3, 0.6] * 3
  path = midi_factory.write(str(tmp_path / 'a.mid'), midi_factory.instrument(pitches, pauses, 40))
  result = process.process_file((path, 'a.mid'), PrepOptions(max_len=0))
  assert result['status'] == 'ok' and result['rejected'] == []
  (example,) = result['examples']
  track = notes.Track(*(np.array(example[k]) for k in notes.TOKEN_FIELDS),
                      example['program'], example['median_pause_s'])
  decoded = notes.track_to_notes(track)
  assert [p for p, _, _ in decoded] == [p + 12 for p in pitches]
  np.testing.assert_allclose([s for _, s, _ in decoded], np.cumsum([0] + pauses[:-1]), atol=2e-3)
  again = str(tmp_path / 'b.mid')
  notes.track_to_midi(track, again)
  (example2,) = process.process_file((again, 'b.mid'), PrepOptions(max_len=0))['examples']
  for k in notes.TOKEN_FIELDS + ('program',):
    assert example2[k] == example[k]
  assert example2['median_pause_s'] == pytest.approx(example['median_pause_s'], abs=1e-3)


def test_long_tracks_become_chunks_with_shared_meta(tmp_path):
  path = midi_factory.write(str(tmp_path / 'x' / 'long.mid'), midi_factory.melody(150))
  result = process.process_file((path, os.path.join('x', 'long.mid')), PrepOptions(max_len=64))
  assert [len(e['delay']) for e in result['examples']] == [50, 50, 50]
  assert {e['collection'] for e in result['examples']} == {'x'}
  assert [e['key'] for e in result['examples']] == ['x/long.mid:0:0', 'x/long.mid:0:1', 'x/long.mid:0:2']


def test_unreadable_and_missing_files_come_back_as_failures(tmp_path):
  (tmp_path / 'junk.mid').write_bytes(b'MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x60MTrk\x00\x00\x10\x00')
  assert process.process_file((str(tmp_path / 'junk.mid'), 'junk.mid'), PrepOptions())['status'] == 'unreadable'
  assert process.process_file((str(tmp_path / 'nope.mid'), 'nope.mid'), PrepOptions())['status'] == 'read_error'
