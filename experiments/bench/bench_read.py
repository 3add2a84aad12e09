"""Reading a prepared dataset: our numpy reader against TFDS's own (TensorFlow).

  vrash-bench read --data_dir DATA [--repeats 5]

Times every split read into padded arrays by `input_pipeline.load_split` (TFRecord framing,
checksums, Example protos; uncached) and, when TensorFlow is installed, the same examples read
by `tfds.builder_from_directory(...).as_dataset(split)` in batches of 4096 (how the package read
them before it could without TensorFlow). Prints a Markdown table: the median of `--repeats`
(the first read of each, untimed, warms the file cache alike).
"""
from __future__ import annotations

import importlib.util

from absl import flags

from vrash_jax import input_pipeline
from vrash_jax.errors import require
from vrash_jax.study import step_timing

FLAGS = flags.FLAGS  # --data_dir and --repeats: the harness's
DEFAULTS: dict = {}


def read_ours(data_dir: str) -> int:
  uncached = input_pipeline._load_split.__wrapped__  # load_split without its per-process cache
  return sum(len(uncached(data_dir, s, None, 0)['length']) for s in input_pipeline.splits(data_dir))


def read_tfds(data_dir: str) -> int:
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(input_pipeline.dataset_dir(data_dir))
  return sum(len(c['length']) for s in input_pipeline.splits(data_dir)
             for c in builder.as_dataset(split=s).padded_batch(4096).as_numpy_iterator())


def run(config) -> dict:
  del config  # reading needs no model
  require(data_dir=FLAGS.data_dir)
  readers = [('vrash_jax.input_pipeline (numpy)', read_ours)]
  if importlib.util.find_spec('tensorflow') is not None:
    read_tfds(FLAGS.data_dir)  # TensorFlow's import and first graph are not the reader's cost
    readers.append(('tfds as_dataset, padded_batch(4096) (TensorFlow)', read_tfds))
  examples = read_ours(FLAGS.data_dir)
  rows = [{'reader': name, 'seconds': step_timing.median_seconds(lambda fn=fn: fn(FLAGS.data_dir), FLAGS.repeats)}
          for name, fn in readers]
  return {'data_dir': FLAGS.data_dir, 'examples': examples, 'rows': rows}


def table(result: dict) -> str:
  lines = [f"{result['examples']} examples in {result['data_dir']}", '', '| reader | seconds | examples/s |',
           '|---|---|---|']
  for r in result['rows']:
    lines.append(f"| {r['reader']} | {r['seconds']:.2f} | {result['examples'] / r['seconds']:,.0f} |")
  return '\n'.join(lines)
