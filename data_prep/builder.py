"""The `vrash_midi` TFDS dataset: a plain-generator builder (no Apache Beam).

`vrash-prep` first turns MIDI files into part files (one per host shard, see `parts.py`);
this builder merges every part into one versioned TFRecord dataset. The part folder is
handed over as the builder's manual directory.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from data_prep import parts
from data_prep.process import SPLITS
from vrash_jax import notes

_DESCRIPTION = """Monophonic tracks from MIDI files, normalized as in Tikhonov & Yamshchikov
(2017), Sec. 2: median pitch transposed to octave 4, pauses as ratios of the track's median
pause (at most 11 distinct values), low-entropy tracks dropped. Each example is one track (or
one chunk of a long track) as per-note (pitch class, octave, delay) tokens plus meta-information.
"""

_CITATION = """@article{tikhonov2017music,
  title={Music generation with variational recurrent autoencoder supported by history},
  author={Tikhonov, Alexey and Yamshchikov, Ivan P},
  journal={arXiv preprint arXiv:1705.05458},
  year={2017}}"""


def features() -> tfds.features.FeaturesDict:
  tokens = lambda: tfds.features.Tensor(shape=(None,), dtype=np.int32)  # noqa: E731
  scalar = lambda dtype=np.int32: tfds.features.Scalar(dtype=dtype)  # noqa: E731
  return tfds.features.FeaturesDict({
      'pitch_class': tokens(),  # 0..11, C = 0
      'octave': tokens(),  # MIDI pitch // 12 (C4 -> 5)
      'delay': tokens(),  # index into vrash_jax.notes.DELAY_RATIOS
      'length': scalar(),  # notes in this example
      'program': scalar(),  # General MIDI program 0..127
      'family': scalar(),  # program // 8 (meta-information)
      'tempo_bucket': scalar(),  # bucket of the median pause (meta-information)
      'median_pause_s': scalar(np.float32),  # the track's median pause, to restore tempo
      'source': tfds.features.Text(),  # file path relative to the MIDI root
      'collection': tfds.features.Text(),  # first folder of the source ('essen', 'bach', ...)
      'style': tfds.features.Text(),  # finer label: 'essen/chinese', 'bach', ... (labels.py)
      'track': scalar(),  # instrument index in the source file
      'chunk': scalar(),  # chunk index within a track longer than max_len
  })


def to_features(example: dict[str, Any]) -> dict[str, Any]:
  """A part-file example -> the feature dict written to TFRecords."""
  median = example['median_pause_s']
  return {
      'pitch_class': np.asarray(example['pitch_class'], np.int32),
      'octave': np.asarray(example['octave'], np.int32),
      'delay': np.asarray(example['delay'], np.int32),
      'length': len(example['pitch_class']),
      'program': example['program'],
      'family': notes.program_family(example['program']),
      'tempo_bucket': notes.tempo_bucket(median),
      'median_pause_s': np.float32(median),
      'source': example['source'],
      'collection': example['collection'],
      'style': example['style'],
      'track': example['track'],
      'chunk': example['chunk'],
  }


class VrashMidi(tfds.core.GeneratorBasedBuilder):
  """Normalized monophonic MIDI tracks (paper Sec. 2)."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': f'Note schema v{notes.SCHEMA_VERSION}: (pitch class, octave, delay) + meta.',
      '1.1.0': "Labels: `collection` is the source's first folder, `style` is new (labels.py).",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Build with `vrash-prep --midi_dir DIR --data_dir OUT`, which writes the part files '
      'this builder reads from its manual directory.')

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=features(),
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(vocabularies=notes.vocabularies()),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    part_files = parts.list_parts(os.fspath(dl_manager.manual_dir))
    counts = parts.split_counts(part_files)
    # TFDS refuses empty splits; a tiny corpus may leave valid or test empty.
    return {split: self._generate_examples(part_files, split)
            for split in SPLITS if counts.get(split)}

  def _generate_examples(self, part_files: list[str], split: str) -> Iterator[tuple[str, dict]]:
    # Streams the parts once per split so memory stays flat on large corpora.
    for result in parts.read_results(part_files):
      if result['split'] == split:
        for example in result['examples']:
          yield example['key'], to_features(example)
