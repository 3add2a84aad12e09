"""The shared vocabulary: token maps, the delay grid, meta buckets, decoding."""
import fractions

import numpy as np
import pretty_midi

from vrash_jax import notes


def test_pitch_tokens_round_trip_and_octave_convention():
  pitches = np.arange(128)
  pc, octave = notes.pitch_to_tokens(pitches)
  assert pc.max() == 11 and octave.max() == notes.NUM_OCTAVES - 1
  np.testing.assert_array_equal(notes.tokens_to_pitch(pc, octave), pitches)
  assert notes.pitch_to_tokens([60])[1][0] == notes.MEDIAN_OCTAVE_TOKEN  # C4


def test_delay_grid_holds_the_common_ratios_and_snaps_within_tolerance():
  grid = set(notes.DELAY_RATIOS)
  for r in ('1/8', '1/3', '1/2', '3/4', '1', '3/2', '2', '8', '12', '16'):
    assert fractions.Fraction(r) in grid
  assert notes.NUM_DELAYS == 104
  one = notes.DELAY_RATIOS.index(1)
  three_halves = notes.DELAY_RATIOS.index(fractions.Fraction(3, 2))
  tokens = notes.snap_ratios(np.array([1.0, 1.01, 1.5, 1.06, 9.5, 17.0]))
  np.testing.assert_array_equal(tokens, [one, one, three_halves, -1, -1, -1])
  np.testing.assert_allclose(notes.delay_ratios(tokens[:3]), [1.0, 1.0, 1.5])


def test_tempo_buckets_and_families():
  assert notes.tempo_bucket(0.05) == 0
  assert notes.tempo_bucket(0.25) == 3
  assert notes.tempo_bucket(5.0) == notes.NUM_TEMPO_BUCKETS - 1
  for b in range(notes.NUM_TEMPO_BUCKETS):
    assert notes.tempo_bucket(notes.bucket_median_pause_s(b)) == b
  assert notes.program_family(73) == 9 and notes.program_family(0) == 0


def test_track_decodes_to_legato_notes_and_midi(tmp_path):
  one, two = notes.DELAY_RATIOS.index(1), notes.DELAY_RATIOS.index(2)
  track = notes.Track(np.array([0, 4, 7]), np.array([5, 5, 6]), np.array([one, two, one]),
                      program=73, median_pause_s=0.25)
  assert notes.track_to_notes(track) == [(60, 0.0, 0.25), (64, 0.25, 0.75), (79, 0.75, 1.0)]
  path = str(tmp_path / 'x.mid')
  notes.track_to_midi(track, path)
  midi = pretty_midi.PrettyMIDI(path)
  assert midi.instruments[0].program == 73
  got = [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in midi.instruments[0].notes]
  assert got == [(60, 0.0, 0.25), (64, 0.25, 0.75), (79, 0.75, 1.0)]


def test_pitches_beyond_midi_are_played_an_octave_lower():
  one = notes.DELAY_RATIOS.index(1)
  track = notes.Track(np.array([11, 7]), np.array([10, 10]), np.array([one, one]), 0, 0.5)
  assert [p for p, _, _ in notes.track_to_notes(track)] == [119, 127]
