"""Objective melody metrics against hand-computed values."""
import numpy as np
import pytest

from vrash_jax import input_pipeline, notes
from vrash_jax.study import melody_metrics as metrics


def track(pitches, delays=None):
  pitches = np.array(pitches)
  pc, octave = notes.pitch_to_tokens(pitches)
  delays = np.zeros(len(pitches), np.int32) if delays is None else np.array(delays)
  return notes.Track(pc, octave, delays, 0, 0.25)


def test_repeated_note_rate():
  # pairs: (60,60) (60,62) (62,62) | (70,71): 2 repeats of 4 pairs
  assert metrics.repeated_note_rate([track([60, 60, 62, 62]), track([70, 71])]) == 0.5
  assert metrics.repeated_note_rate([track([72, 60])]) == 0.0  # same class, other octave


def test_mean_pitch_entropy():
  assert metrics.mean_pitch_entropy([track([60, 62]), track([60, 60, 62, 64])]) == pytest.approx((1 + 1.5) / 2)


def test_pitch_class_distance_is_total_variation():
  a = [track([60, 60, 62, 64])]  # C .5, D .25, E .25
  b = [track([60, 62, 62, 65])]  # C .25, D .5, F .25
  assert metrics.pitch_class_distance(a, b) == pytest.approx(0.5 * (0.25 + 0.25 + 0.25 + 0.25))
  assert metrics.pitch_class_distance(a, a) == 0


def test_distinct_and_copied_ngrams():
  t = track([60, 62, 60, 62, 60])  # 2-grams: (60,62) (62,60) (60,62) (62,60)
  assert metrics.distinct_ngram_rate([t], 2) == 0.5
  training = metrics.ngram_set([track([60, 62, 64])], 2)  # {(60,62), (62,64)}
  assert metrics.copied_ngram_share([t], training, 2) == 0.5
  assert metrics.copied_ngram_share([track([60, 62], [0, 1])], training, 2) == 0  # delays differ


def test_melody_metrics_keys_and_tracks_from_arrays():
  arrays = {'pitch_class': np.array([[0, 2, 0], [4, 0, 0]]), 'octave': np.array([[5, 5, 0], [5, 0, 0]]),
            'delay': np.array([[11, 11, 0], [11, 0, 0]]), 'length': np.array([2, 1]),
            'program': np.array([73, 40]), 'median_pause_s': np.array([0.25, 0.5])}
  tracks = input_pipeline.tracks_from_arrays(arrays)
  assert [len(t) for t in tracks] == [2, 1] and tracks[1].program == 40
  out = metrics.melody_metrics(tracks, tracks, set())
  assert set(out) == {'repeated_note_rate', 'pitch_entropy_bits', 'pitch_class_distance',
                      'distinct_4gram_rate', 'distinct_4gram_within', 'copied_8gram_share',
                      'longest_run', 'loop_share',
                      'recurring_4gram_share'}


def test_longest_run_of_one_pitch():
  assert metrics.longest_run(track([60, 60, 60, 62, 62, 60])) == 3
  assert metrics.longest_run(track([60, 72, 60])) == 1  # the same class in another octave
  assert metrics.longest_run(track([])) == 0
  assert metrics.mean_longest_run([track([60, 60]), track([61, 61, 61, 61])]) == 3.0


def test_loop_detector_on_hand_made_melodies():
  phrase = [60, 62, 64, 65]
  assert metrics.is_looping(track([55] + phrase * 3 + [67]))
  assert not metrics.is_looping(track(phrase * 2 + [67] + phrase))  # twice, then broken
  assert metrics.is_looping(track([60] * 12))  # one note held in a loop
  assert not metrics.is_looping(track([60] * 11))
  # The same pitches with other delays the third time are not a loop.
  assert not metrics.is_looping(track(phrase * 3, [0] * 8 + [1] * 4))
  assert metrics.loop_share([track(phrase * 3), track(phrase), track([60] * 12), track([])]) == 0.5


def test_recurring_patterns_eight_notes_on():
  phrase, other = [60, 62, 64, 65], [70, 71, 72, 73, 74, 75, 76, 77]
  # 16 notes: 4-grams start at 0..12; those with room for a recurrence 8+ on start at 0..4,
  # and only the phrase at 0 comes back (at 12).
  melody = track(phrase + other + phrase)
  assert metrics.recurring_ngram_share([melody]) == pytest.approx(1 / 5)
  assert metrics.recurring_ngram_share([track(phrase + phrase)]) == 0  # only 4 notes apart
  assert metrics.recurring_ngram_share([track([60] * 20)]) == 1.0
  assert metrics.recurring_ngram_share([track([60, 61])]) == 0


def test_distinct_ngrams_within_each_melody():
  looping = track([60, 62, 60, 62, 60, 62])  # bigrams (60,62) x3, (62,60) x2: 2 distinct of 5
  fresh = track([60, 62, 64, 65])  # 3 distinct of 3
  assert metrics.distinct_ngram_rate_within([looping, fresh], 2) == pytest.approx((2 / 5 + 1) / 2)
  assert metrics.distinct_ngram_rate([looping, looping], 2) == pytest.approx(2 / 10)
  assert metrics.distinct_ngram_rate_within([track([60])], 2) == 0.0  # no bigram at all
