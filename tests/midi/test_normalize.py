"""Paper Sec. 2 rules against hand-computed expectations."""
import fractions

import numpy as np
import pytest

from vrash_jax import notes
from vrash_jax.midi import normalize
from vrash_jax.midi.tracks import RawTrack, Rejected


def raw(pitches, pauses, last=None):
  onsets = np.concatenate([[0.0], np.cumsum(pauses)])
  return RawTrack(0, 73, np.asarray(pitches, np.int32), onsets, pauses[-1] if last is None else last)


@pytest.mark.parametrize('pitches, expected', [
    ([40, 42, 45, 47], [64, 66, 69, 71]),  # median 43.5 (octave 2) -> up two octaves
    ([72, 84, 96], [48, 60, 72]),  # median 84 (octave 6) -> down two octaves
    ([60, 65, 71], [60, 65, 71]),  # already in octave 4
])
def test_transposition_moves_the_median_into_octave_4_by_whole_octaves(pitches, expected):
  out = normalize.transpose_to_octave_4(np.array(pitches))
  np.testing.assert_array_equal(out, expected)
  assert 60 <= np.median(out) < 72


def test_transposition_out_of_midi_range_is_rejected():
  with pytest.raises(Rejected) as e:
    normalize.transpose_to_octave_4(np.array([0, 0, 0, 127]))
  assert e.value.reason == 'pitch_out_of_range'


def test_pause_ratios_to_the_median_pause():
  onsets = np.array([0.0, 0.5, 1.0, 1.25, 2.0])  # pauses .5 .5 .25 .75
  assert normalize.median_pause(onsets) == 0.5
  np.testing.assert_allclose(normalize.pause_ratios(onsets, 0.5), [1, 1, 0.5, 1.5])


ELEVEN = [0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1, 1.5, 2, 3, 4, 6]  # median 1


def test_eleven_distinct_pauses_pass_and_twelve_do_not():
  pauses = [0.2 * r for r in ELEVEN]
  track = normalize.normalize_track(raw(list(range(60, 71)) + [60], pauses))
  ratios = notes.delay_ratios(track.delay[:-1])
  np.testing.assert_allclose(ratios, ELEVEN)
  assert track.median_pause_s == pytest.approx(0.2)
  with pytest.raises(Rejected) as e:
    normalize.normalize_track(raw(list(range(60, 72)) + [60], pauses + [1.6]))
  assert e.value.reason == 'too_many_pauses'


def test_off_grid_pauses_are_rejected_and_counted_as_distinct():
  assert normalize.count_distinct_pauses(np.array([1, 1, 1.06, 1.061, 2.0])) == 3
  with pytest.raises(Rejected) as e:
    normalize.normalize_track(raw([60, 62, 64, 65, 67], [0.2, 0.2, 0.2, 0.212]))
  assert e.value.reason == 'pause_off_grid'


def test_last_note_delay_is_its_duration_snapped_to_the_grid():
  track = normalize.normalize_track(raw([60, 62, 64], [0.2, 0.2], last=0.41))
  assert notes.DELAY_RATIOS[track.delay[-1]] == fractions.Fraction(2)


@pytest.mark.parametrize('pitches, bits', [
    ([60] * 8, 0.0), ([60, 62], 1.0), ([60, 60, 62, 64], 1.5), (list(range(60, 68)), 3.0)])
def test_pitch_entropy_in_bits(pitches, bits):
  assert normalize.pitch_entropy(np.array(pitches)) == pytest.approx(bits)
