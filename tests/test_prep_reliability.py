"""The data pipeline under hostile input: fuzzed bytes, random tracks, reruns, interruptions."""
import filecmp
import glob
import os

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import midi_factory
from data_prep import builder, prep, process
from data_prep.process import PrepOptions
from vrash_jax import input_pipeline, notes
from vrash_jax.errors import VrashError
from vrash_jax.midi import normalize
from vrash_jax.midi.tracks import RawTrack, Rejected, monophonize

FILE_REASONS = {'ok', 'empty_file', 'not_midi', 'midi_type_2', 'too_large', 'unreadable',
                'no_notes', 'too_many_notes'}
TRACK_REASONS = {'drums', 'no_notes', 'polyphonic', 'too_short', 'pitch_out_of_range',
                 'too_many_pauses', 'pause_off_grid', 'low_entropy'}


def assert_valid_example(example):
  n = len(example['delay'])
  assert n >= 1 and len(example['pitch_class']) == len(example['octave']) == n
  assert all(0 <= p < notes.NUM_PITCH_CLASSES for p in example['pitch_class'])
  assert all(0 <= o < notes.NUM_OCTAVES for o in example['octave'])
  assert all(0 <= d < notes.NUM_DELAYS for d in example['delay'])
  assert example['median_pause_s'] > 0 and 0 <= example['program'] < 128


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
  data = bytearray(data)
  kind = rng.integers(4)
  if kind == 0:  # flip random bytes
    for i in rng.integers(0, len(data), rng.integers(1, 20)):
      data[i] = rng.integers(256)
  elif kind == 1:  # truncate
    data = data[:rng.integers(0, len(data))]
  elif kind == 2:  # insert garbage
    i = rng.integers(0, len(data))
    data[i:i] = rng.bytes(int(rng.integers(1, 64)))
  else:  # duplicate a slice
    a = rng.integers(0, len(data))
    data[a:a] = data[a:a + int(rng.integers(1, 200))]
  return bytes(data)


def test_fuzzed_midi_is_accepted_or_rejected_with_a_reason(tmp_path):
  seeds = [midi_factory.write(str(tmp_path / 'a.mid'), midi_factory.melody(64)),
           midi_factory.write(str(tmp_path / 'b.mid'), midi_factory.melody(40, seed=1),
                              midi_factory.instrument([36] * 20, [0.25] * 20, is_drum=True),
                              midi_factory.melody(30, seed=2, program=0))]
  originals = [open(p, 'rb').read() for p in seeds]
  rng = np.random.default_rng(1234)
  seen = {}
  for case in range(300):
    path = str(tmp_path / f'fuzz{case}.mid')
    with open(path, 'wb') as f:
      f.write(mutate(originals[case % len(originals)], rng))
    result = process.process_file((path, f'fuzz{case}.mid'), PrepOptions())
    assert result['status'] in FILE_REASONS, result
    seen[result['status']] = seen.get(result['status'], 0) + 1
    for _, reason, _ in result['rejected']:
      assert reason in TRACK_REASONS
    for example in result['examples']:
      assert_valid_example(example)
  assert seen.get('ok', 0) >= 20 and seen.get('unreadable', 0) >= 100, seen  # both paths exercised


GRID = [0.25, 1 / 3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
OFF_GRID = [0.8, 1.06, 2.3, 37.0]


@settings(max_examples=200, deadline=None)
@given(pitches=st.lists(st.integers(0, 127), min_size=3, max_size=60),
       ratio_picks=st.lists(st.sampled_from(GRID + OFF_GRID), min_size=59, max_size=59),
       base=st.floats(0.03, 1.5), last=st.floats(0.0, 5.0))
def test_normalization_invariants(pitches, ratio_picks, base, last):
  n = len(pitches)
  pauses = np.array(ratio_picks[:n - 1]) * base
  raw = RawTrack(0, 0, np.array(pitches, np.int32), np.concatenate([[0.0], np.cumsum(pauses)]), last)
  try:
    track = normalize.normalize_track(raw)
  except Rejected as e:
    assert e.reason in {'pitch_out_of_range', 'too_many_pauses', 'pause_off_grid'}
    return
  decoded = notes.tokens_to_pitch(track.pitch_class, track.octave)
  assert decoded.min() >= 0 and decoded.max() <= 127 and len(decoded) == n
  assert 60 <= np.floor(np.median(decoded)) <= 71  # the median pitch is in octave 4
  assert ((decoded - np.array(pitches)) % 12 == 0).all()  # whole octaves only
  assert len(set(track.delay[:-1].tolist())) <= normalize.MAX_PAUSES
  assert track.delay.min() >= 0 and track.delay.max() < notes.NUM_DELAYS
  np.testing.assert_allclose(notes.delay_ratios(track.delay[:-1]) * track.median_pause_s, pauses,
                             rtol=notes.DELAY_TOLERANCE * 1.1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 127), st.floats(0, 10), st.floats(0.01, 2)), min_size=1, max_size=50))
def test_monophony_keeps_one_highest_note_per_onset(notes_in):
  pitches = np.array([p for p, _, _ in notes_in], np.int32)
  starts = np.array([s for _, s, _ in notes_in])
  ends = starts + np.array([d for _, _, d in notes_in])
  kept, onsets, last_duration, chord_fraction = monophonize(pitches, starts, ends)
  assert (np.diff(onsets) > 0.01).all() and 0 <= chord_fraction <= 1 and last_duration >= 0
  bounds = np.append(onsets, np.inf)
  for g, pitch in enumerate(kept):  # group g: every note starting in [onset g, onset g+1)
    in_group = (starts >= bounds[g]) & (starts < bounds[g + 1])
    assert pitch == pitches[in_group].max()
  assert in_group.sum() + sum(((starts >= bounds[g]) & (starts < bounds[g + 1])).sum()
                              for g in range(len(kept) - 1)) == len(pitches)


def test_rerun_writes_byte_identical_tfrecords(tmp_path):
  midi_factory.write_corpus(str(tmp_path / 'midi'), files=10)
  options = PrepOptions(valid_fraction=0.2, test_fraction=0.2)
  for out in ('a', 'b'):
    prep.prepare(str(tmp_path / 'midi'), str(tmp_path / out), options, workers=2)
  found = glob.glob(str(tmp_path / 'a' / '**' / '*.tfrecord*'), recursive=True)
  records = sorted(os.path.relpath(p, tmp_path / 'a') for p in found)
  assert records
  for rel in records:
    assert filecmp.cmp(tmp_path / 'a' / rel, tmp_path / 'b' / rel, shallow=False), rel


def test_an_interrupted_build_leaves_nothing_a_reader_accepts(tmp_path, monkeypatch):
  midi_factory.write_corpus(str(tmp_path / 'midi'), files=10)
  data_dir = str(tmp_path / 'out')
  prep.prepare(str(tmp_path / 'midi'), data_dir, PrepOptions(), workers=1)  # a good build first
  calls = []

  def dies_midway(example):
    calls.append(1)
    if len(calls) > 3:
      raise KeyboardInterrupt  # as Ctrl-C or a kill would, half-way through writing
    return original(example)

  original = builder.to_features
  monkeypatch.setattr(builder, 'to_features', dies_midway)
  with pytest.raises(KeyboardInterrupt):
    prep.prepare(None, data_dir, PrepOptions(), stage='build')
  assert not os.path.exists(os.path.join(data_dir, 'stats.json'))
  with pytest.raises(VrashError, match='no prepared vrash_midi dataset'):
    input_pipeline.load_split(data_dir, 'train')
