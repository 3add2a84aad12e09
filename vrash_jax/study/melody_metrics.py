"""Objective melody metrics that make the paper's subjective claims measurable.

A note is the triple (pitch class, octave, delay); a melody is a `notes.Track`.
* repeated_note_rate: share of consecutive note pairs with the same pitch (Sec. 5: "the
  tendency to repeat a certain note ... more prominent for the Language Model").
* mean_pitch_entropy: mean per-melody pitch entropy in bits (the pipeline's filter statistic).
* pitch_class_distance: total variation distance between pooled pitch-class histograms.
* distinct_ngram_rate: distinct note n-grams over all n-grams (diversity).
* copied_ngram_share: share of n-grams that also occur in the training melodies (plagiarism).
* mean_longest_run: mean per-melody longest run of one pitch (repetition, Sec. 5).
* loop_share: share of melodies stuck in a loop: a 4-note pattern played 3+ times back to back.
* recurring_ngram_share: share of 4-note patterns that recur later in the same melody, 8+
  notes on (macro structure: phrases that come back; high for loops too, so read it with
  loop_share).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from vrash_jax import notes


def _pitches(track: notes.Track) -> np.ndarray:
  return notes.tokens_to_pitch(track.pitch_class, track.octave)


def repeated_note_rate(tracks: Sequence[notes.Track]) -> float:
  pairs = repeats = 0
  for t in tracks:
    p = _pitches(t)
    pairs += max(len(p) - 1, 0)
    repeats += int((p[1:] == p[:-1]).sum())
  return repeats / max(pairs, 1)


def mean_pitch_entropy(tracks: Sequence[notes.Track]) -> float:
  return float(np.mean([notes.pitch_entropy(_pitches(t)) for t in tracks if len(t)]))


def pitch_class_histogram(tracks: Sequence[notes.Track]) -> np.ndarray:
  counts = np.zeros(notes.NUM_PITCH_CLASSES)
  for t in tracks:
    counts += np.bincount(t.pitch_class, minlength=notes.NUM_PITCH_CLASSES)
  return counts / max(counts.sum(), 1)


def pitch_class_distance(tracks: Sequence[notes.Track], reference: Sequence[notes.Track]) -> float:
  return 0.5 * float(np.abs(pitch_class_histogram(tracks) - pitch_class_histogram(reference)).sum())


def ngrams(track: notes.Track, n: int) -> list[tuple]:
  events = list(zip(track.pitch_class.tolist(), track.octave.tolist(), track.delay.tolist()))
  return [tuple(events[i:i + n]) for i in range(len(events) - n + 1)]


def ngram_set(tracks: Iterable[notes.Track], n: int) -> set[tuple]:
  return {g for t in tracks for g in ngrams(t, n)}


def distinct_ngram_rate(tracks: Sequence[notes.Track], n: int = 4) -> float:
  grams = [g for t in tracks for g in ngrams(t, n)]
  return len(set(grams)) / max(len(grams), 1)


def distinct_ngram_rate_within(tracks: Sequence[notes.Track], n: int = 4) -> float:
  """Distinct over all n-grams inside each melody, averaged over melodies (self-repetition);
  `distinct_ngram_rate` pools every melody (repetition across samples)."""
  rates = [len(set(g)) / len(g) for g in (ngrams(t, n) for t in tracks) if g]
  return float(np.mean(rates)) if rates else 0.0


def copied_ngram_share(tracks: Sequence[notes.Track], training: set[tuple], n: int = 8) -> float:
  grams = [g for t in tracks for g in ngrams(t, n)]
  return sum(g in training for g in grams) / max(len(grams), 1)


def longest_run(track: notes.Track) -> int:
  """The most consecutive notes of one pitch."""
  p = _pitches(track)
  if not len(p):
    return 0
  starts = np.flatnonzero(np.concatenate([[True], p[1:] != p[:-1], [True]]))
  return int(np.diff(starts).max())


def mean_longest_run(tracks: Sequence[notes.Track]) -> float:
  return float(np.mean([longest_run(t) for t in tracks])) if tracks else 0.0


def is_looping(track: notes.Track, n: int = 4, times: int = 3) -> bool:
  """Whether some n-note pattern (pitch and delay) is played `times` times back to back."""
  grams = ngrams(track, n)
  return any(all(grams[i + k * n] == grams[i] for k in range(1, times))
             for i in range(len(grams) - (times - 1) * n))


def loop_share(tracks: Sequence[notes.Track], n: int = 4, times: int = 3) -> float:
  return sum(is_looping(t, n, times) for t in tracks) / max(len(tracks), 1)


def recurring_ngram_share(tracks: Sequence[notes.Track], n: int = 4, min_distance: int = 8) -> float:
  """Share of n-grams whose pattern starts again at least `min_distance` notes later in the
  same melody (over the n-grams that have room for such a recurrence)."""
  recurring = counted = 0
  for t in tracks:
    grams = ngrams(t, n)
    last_start: dict[tuple, int] = {}
    for i, g in enumerate(grams):
      last_start[g] = i
    for i, g in enumerate(grams[:max(len(grams) - min_distance, 0)]):
      counted += 1
      recurring += last_start[g] >= i + min_distance
  return recurring / max(counted, 1)


def melody_metrics(tracks: Sequence[notes.Track], reference: Sequence[notes.Track],
                   training_ngrams: set[tuple], copy_n: int = 8, diversity_n: int = 4) -> dict[str, float]:
  """Every metric of `tracks` (samples, or the test set itself as the data's own row)."""
  return {
      'repeated_note_rate': repeated_note_rate(tracks),
      'pitch_entropy_bits': mean_pitch_entropy(tracks),
      'pitch_class_distance': pitch_class_distance(tracks, reference),
      f'distinct_{diversity_n}gram_rate': distinct_ngram_rate(tracks, diversity_n),
      f'distinct_{diversity_n}gram_within': distinct_ngram_rate_within(tracks, diversity_n),
      f'copied_{copy_n}gram_share': copied_ngram_share(tracks, training_ngrams, copy_n),
      'longest_run': mean_longest_run(tracks),
      'loop_share': loop_share(tracks),
      'recurring_4gram_share': recurring_ngram_share(tracks),
  }
