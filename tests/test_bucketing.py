"""Length bucketing: every note exactly once, bounded shapes, less padding, resumable."""
import numpy as np
import pytest

from vrash_jax import input_pipeline


def melodies(count=203, max_len=128, seed=0):
  """Arrays shaped like `load_split`'s: token rows whose notes encode (example, position)."""
  rng = np.random.default_rng(seed)
  lengths = np.minimum(rng.geometric(1 / 40, count) + 3, max_len).astype(np.int32)
  arrays = {'length': lengths, 'mask': np.arange(max_len)[None] < lengths[:, None]}
  position = np.broadcast_to(np.arange(max_len), (count, max_len))
  example = np.broadcast_to(np.arange(count)[:, None], (count, max_len))
  for field, value in zip(input_pipeline.SEQUENCE_FIELDS, (example, position, example + position)):
    arrays[field] = np.where(arrays['mask'], value, 0).astype(np.int32)
  for field in input_pipeline.META_FIELDS:
    arrays[field] = np.arange(count, dtype=np.int32)
  return arrays


def seen_notes(batch):
  """(example, position) of every real note of a batch."""
  mask = batch['mask']
  return set(zip(batch['pitch_class'][mask].tolist(), batch['octave'][mask].tolist()))


def test_padded_widths_by_hand():
  lengths = np.array([1, 8, 9, 33, 40, 64, 65, 70, 100, 128, 129, 130, 200, 256, 300])
  np.testing.assert_array_equal(
      input_pipeline.padded_widths(lengths, 256, 8),
      [8, 8, 16, 40, 40, 64, 80, 80, 112, 128, 160, 160, 224, 256, 256])
  np.testing.assert_array_equal(input_pipeline.padded_widths(lengths[:4], 256, 32), [32, 32, 32, 64])
  np.testing.assert_array_equal(input_pipeline.padded_widths(lengths[:4], 100, 0), [100] * 4)
  every = input_pipeline.padded_widths(np.arange(1, 1025), 1024, 8)
  assert (every >= np.arange(1, 1025)).all()
  assert len(set(every)) == 8 + 4 * 4  # 8, 16, ..., 64, then 4 per doubling: 80, ..., 1024
  assert ((every - np.arange(1, 1025)) / np.arange(1, 1025))[64:].max() < 0.25


@pytest.mark.parametrize('bucket_step', [16, 32, 128])
def test_an_epoch_holds_every_note_exactly_once(bucket_step):
  arrays = melodies()
  batches = input_pipeline.TrainBatches(arrays, 16, seed=3, bucket_step=bucket_step)
  everything = {(i, p) for i, n in enumerate(arrays['length']) for p in range(n)}
  seen, count, widths = set(), 0, set()
  for step in range(batches.batches_per_epoch, 2 * batches.batches_per_epoch):  # epoch 1
    batch = batches(step)
    width = batch['mask'].shape[1]
    widths.add(width)
    assert width % bucket_step == 0 and width <= 128
    real = batch['mask'].any(1)
    # A row's meta and its notes come from the same example; the width covers every note.
    assert (batch['family'][real] == batch['pitch_class'][real, 0]).all()
    assert (batch['mask'].sum(1)[real] == arrays['length'][batch['pitch_class'][real, 0]]).all()
    count += int(batch['mask'].sum())
    seen |= seen_notes(batch)
  assert seen == everything and count == len(everything)
  assert len(widths) <= 128 // bucket_step


def test_bucketing_cuts_padding_and_batches_are_reproducible():
  arrays = melodies()
  plain = input_pipeline.TrainBatches(arrays, 16, seed=3)
  bucketed = input_pipeline.TrainBatches(arrays, 16, seed=3, bucket_step=16)
  slots = sum(16 * bucketed(s)['mask'].shape[1] for s in range(bucketed.batches_per_epoch))
  assert bucketed.padded_share() == pytest.approx(1 - arrays['length'].sum() / slots)
  assert bucketed.padded_share() < 0.3 < 0.6 < plain.padded_share()  # 0.24 and 0.65 here
  resumed = input_pipeline.TrainBatches(arrays, 16, seed=3, bucket_step=16)
  for step in (40, 3, 17):  # any order, as after a restart
    for field, value in bucketed(step).items():
      np.testing.assert_array_equal(resumed(step)[field], value)
  other_epoch = bucketed(3 + bucketed.batches_per_epoch)['pitch_class'][:, 0]
  assert set(other_epoch) != set(bucketed(3)['pitch_class'][:, 0])


def test_hosts_share_one_global_bucketed_batch():
  arrays = melodies()
  whole = input_pipeline.TrainBatches(arrays, 16, seed=1, bucket_step=32)(5)
  parts = [input_pipeline.TrainBatches(arrays, 16, seed=1, process_index=i, process_count=2,
                                       bucket_step=32)(5) for i in range(2)]
  for field, value in whole.items():
    np.testing.assert_array_equal(np.concatenate([p[field] for p in parts]), value)


def test_without_bucketing_every_batch_is_full_width_from_one_stream():
  arrays = melodies(count=20)
  batches = input_pipeline.TrainBatches(arrays, 8, seed=0)
  examples = [batches(s)['family'] for s in range(5)]  # 40 positions = 2 epochs
  assert all(batches(s)['mask'].shape == (8, 128) for s in range(5))
  assert sorted(np.concatenate(examples)[:20]) == list(range(20))
  assert sorted(np.concatenate(examples)[20:]) == list(range(20))


@pytest.mark.parametrize('bucket_step', [0, 32])
def test_evaluation_batches_hold_every_note_once(bucket_step):
  arrays = melodies(count=50)
  batches = list(input_pipeline.eval_batches(arrays, 16, bucket_step=bucket_step))
  assert len(batches) == 4
  seen = set().union(*(seen_notes(b) for b in batches))
  assert seen == {(i, p) for i, n in enumerate(arrays['length']) for p in range(n)}
  assert sum(int(b['mask'].sum()) for b in batches) == len(seen)
  widths = [b['mask'].shape[1] for b in batches]
  assert widths == [128] * 4 if bucket_step == 0 else widths == sorted(widths)


def test_every_seed_has_the_same_width_at_a_step_and_batches_of_its_own():
  """Runs of several seeds in one group pad nothing to each other: their batches' widths agree
  step by step; which melodies fill them does not."""
  arrays = melodies()
  seeds = [input_pipeline.TrainBatches(arrays, 16, seed=s, bucket_step=16) for s in range(4)]
  epoch = seeds[0].batches_per_epoch
  for step in range(2 * epoch):
    batches = [b(step) for b in seeds]
    assert len({b['mask'].shape[1] for b in batches}) == 1
    examples = [frozenset(b['pitch_class'][:, 0][b['mask'][:, 0]].tolist()) for b in batches]
    assert len(set(examples)) > 1 or len(examples[0]) <= 1
  orders = {tuple(np.concatenate([b.indices(s) for s in range(epoch)])) for b in seeds}
  assert len(orders) == 4  # each seed its own order of melodies
  widths = [seeds[0].width(seeds[0].indices(s)) for s in range(epoch, 2 * epoch)]
  assert widths != [seeds[0].width(seeds[0].indices(s)) for s in range(epoch)]  # each epoch its own
