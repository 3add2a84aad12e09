"""Objective melody metrics that make the paper's subjective claims measurable.

A note is the triple (pitch class, octave, delay); a melody is a `notes.Track`.
* repeated_note_rate: share of consecutive note pairs with the same pitch (Sec. 5: "the
  tendency to repeat a certain note ... more prominent for the Language Model").
* mean_pitch_entropy: mean per-melody pitch entropy in bits (the pipeline's filter statistic).
* pitch_class_distance: total variation distance between pooled pitch-class histograms.
* distinct_ngram_rate: distinct note n-grams over all n-grams (diversity).
* copied_ngram_share: share of n-grams that also occur in the training melodies (plagiarism).
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


def copied_ngram_share(tracks: Sequence[notes.Track], training: set[tuple], n: int = 8) -> float:
  grams = [g for t in tracks for g in ngrams(t, n)]
  return sum(g in training for g in grams) / max(len(grams), 1)


def melody_metrics(tracks: Sequence[notes.Track], reference: Sequence[notes.Track],
                   training_ngrams: set[tuple], copy_n: int = 8, diversity_n: int = 4) -> dict[str, float]:
  """Every metric of `tracks` (samples, or the test set itself as the data's own row)."""
  return {
      'repeated_note_rate': repeated_note_rate(tracks),
      'pitch_entropy_bits': mean_pitch_entropy(tracks),
      'pitch_class_distance': pitch_class_distance(tracks, reference),
      f'distinct_{diversity_n}gram_rate': distinct_ngram_rate(tracks, diversity_n),
      f'copied_{copy_n}gram_share': copied_ngram_share(tracks, training_ngrams, copy_n),
  }


def tracks_from_arrays(arrays: dict, limit: int | None = None) -> list[notes.Track]:
  """Padded split arrays (input_pipeline.load_split) -> tracks cut to their lengths."""
  out = []
  for i in range(len(arrays['length']) if limit is None else min(limit, len(arrays['length']))):
    n = int(arrays['length'][i])
    out.append(notes.Track(*(arrays[f][i, :n] for f in notes.TOKEN_FIELDS),
                           int(arrays['program'][i]), float(arrays['median_pause_s'][i])))
  return out
