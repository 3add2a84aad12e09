"""Loading, header checks, the monophony rule and the split of a file into tracks."""
import struct

import numpy as np
import pretty_midi
import pytest

import midi_factory
from vrash_jax.midi import tracks
from vrash_jax.midi.tracks import Rejected


def test_monophonize_keeps_the_highest_note_of_each_onset_group():
  pitches = np.array([60, 64, 67, 62, 72, 65])
  starts = np.array([0.0, 0.0, 0.0, 0.5, 1.004, 1.0])  # 65 and 72 are one chord (4 ms apart)
  ends = np.array([0.4, 0.4, 0.4, 0.9, 1.5, 1.2])
  kept, onsets, last_duration, chord_fraction = tracks.monophonize(pitches, starts, ends)
  np.testing.assert_array_equal(kept, [67, 62, 72])
  np.testing.assert_allclose(onsets, [0.0, 0.5, 1.0])
  assert last_duration == pytest.approx(0.5)  # 72 ends at 1.5, its group starts at 1.0
  assert chord_fraction == pytest.approx(2 / 3)


def test_unisons_do_not_count_as_chords():
  _, _, _, chord_fraction = tracks.monophonize(
      np.array([60, 60, 62]), np.array([0.0, 0.0, 0.5]), np.array([0.5, 0.5, 1.0]))
  assert chord_fraction == 0


def test_split_tracks_drops_drums_polyphony_and_short_tracks():
  midi = pretty_midi.PrettyMIDI()
  melody = midi_factory.melody(32)
  drums = midi_factory.instrument([36] * 32, [0.25] * 32, is_drum=True)
  chords = pretty_midi.Instrument(program=0)
  for k in range(20):  # a piano part: a triad on every beat
    for p in (48, 52, 55):
      chords.notes.append(pretty_midi.Note(70, p, k * 0.5, k * 0.5 + 0.4))
  short = midi_factory.instrument([60, 62, 64], [0.25] * 3)
  empty = pretty_midi.Instrument(program=1)
  midi.instruments.extend([melody, drums, chords, short, empty])
  kept, rejected = tracks.split_tracks(midi, max_chord_fraction=0.25, min_notes=16)
  assert [t.index for t in kept] == [0]
  assert kept[0].program == 73 and len(kept[0].pitches) == 32
  assert rejected == [(1, 'drums'), (2, 'polyphonic'), (3, 'too_short'), (4, 'no_notes')]


def _header(fmt):
  return b'MThd' + struct.pack('>IHHH', 6, fmt, 1, 96)


@pytest.mark.parametrize('data, reason', [
    (b'', 'empty_file'),
    (b'RIFF1234RMIDdata', 'not_midi'),
    (_header(2) + b'MTrk\x00\x00\x00\x00', 'midi_type_2'),
    (_header(1) + b'x' * 200, 'too_large'),
])
def test_header_checks(data, reason):
  with pytest.raises(Rejected) as e:
    tracks.check_header(data, max_bytes=100)
  assert e.value.reason == reason


def test_parse_rejects_truncated_and_note_less_files(tmp_path):
  good = open(midi_factory.write(str(tmp_path / 'a.mid'), midi_factory.melody(64)), 'rb').read()
  with pytest.raises(Rejected) as e:
    tracks.parse_midi(good[:len(good) // 2], 1 << 20, 1000)
  assert e.value.reason == 'unreadable'
  silent = open(midi_factory.write(str(tmp_path / 'b.mid'), pretty_midi.Instrument(0)), 'rb').read()
  with pytest.raises(Rejected) as e:
    tracks.parse_midi(silent, 1 << 20, 1000)
  assert e.value.reason == 'no_notes'
  with pytest.raises(Rejected) as e:
    tracks.parse_midi(good, 1 << 20, max_notes=10)
  assert e.value.reason == 'too_many_notes'
