"""Reading a prepared dataset: our numpy reader against TFDS's own (TensorFlow).

  python -m experiments.bench.bench_read --data_dir DATA [--repeats 3]

Times every split read into padded arrays by `input_pipeline.load_split` (TFRecord framing,
checksums, Example protos; uncached) and, when TensorFlow is installed, the same examples read
by `tfds.builder_from_directory(...).as_dataset(split)` in batches of 4096 (how the package read
them before it could without TensorFlow). Prints a Markdown table: the median of `--repeats`.
"""
from __future__ import annotations

import importlib.util
import statistics
import time

from absl import app, flags

from vrash_jax import input_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'A dataset prepared by vrash-prep.', required=True)
flags.DEFINE_integer('repeats', 3, 'Timings per reader; the median is reported.', lower_bound=1)


def seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def read_ours(data_dir: str) -> int:
  uncached = input_pipeline._load_split.__wrapped__  # load_split without its per-process cache
  return sum(len(uncached(data_dir, s, None, 0)['length']) for s in input_pipeline.splits(data_dir))


def read_tfds(data_dir: str) -> int:
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(input_pipeline.dataset_dir(data_dir))
  return sum(len(c['length']) for s in input_pipeline.splits(data_dir)
             for c in builder.as_dataset(split=s).padded_batch(4096).as_numpy_iterator())


def main(argv: list[str]) -> None:
  del argv
  rows = [('vrash_jax.input_pipeline (numpy)', read_ours)]
  if importlib.util.find_spec('tensorflow') is not None:
    read_tfds(FLAGS.data_dir)  # TensorFlow's import and first graph are not the reader's cost
    rows.append(('tfds as_dataset, padded_batch(4096) (TensorFlow)', read_tfds))
  examples = read_ours(FLAGS.data_dir)
  print(f'{examples} examples in {FLAGS.data_dir}\n\n| reader | seconds | examples/s |\n|---|---|---|')
  for name, fn in rows:
    s = seconds(lambda fn=fn: fn(FLAGS.data_dir), FLAGS.repeats)
    print(f'| {name} | {s:.2f} | {examples / s:,.0f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
