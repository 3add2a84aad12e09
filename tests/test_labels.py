"""Collection and style labels: from file names to TFRecords, tfds.load and stats.json."""
import json
import shutil

import pytest

import midi_factory
from data_prep import labels, prep
from data_prep.process import PrepOptions
from vrash_jax import input_pipeline
from vrash_jax.errors import VrashError


def test_essen_file_names_map_to_regions():
  assert labels.essen_style('han1') == labels.essen_style('han2') == 'essen/chinese'
  assert labels.essen_style('lot') == 'essen/lorraine' and labels.essen_style('lux') == 'essen/luxembourg'
  for german in ('altdeu10', 'ballad80', 'boehme20', 'dva0', 'erk5', 'fink0', 'kinder0', 'zuccal0'):
    assert labels.essen_style(german) == 'essen/german', german
  for other in ('irl', 'folkHaydn', 'test0', 'teste', 'variant0'):
    assert labels.essen_style(other) == 'essen/other', other


def test_labels_come_from_the_path():
  assert labels.labels_of('essen/han1/essen_han1_0001.mid') == ('essen', 'essen/chinese')
  assert labels.labels_of('essen/erk20/essen_erk20_0007.mid') == ('essen', 'essen/german')
  assert labels.labels_of('ryans/AcaciaReel/ryans_AcaciaReel.mid') == ('ryans', 'ryans')
  assert labels.labels_of('bach/bach_bwv1.6.mid') == ('bach', 'bach')
  assert labels.labels_of('my_own.mid') == ('.', '.')


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
  root = tmp_path_factory.mktemp('labelled')
  files = {'essen/han1/essen_han1_{}.mid': 'essen/chinese', 'essen/lux/essen_lux_{}.mid': 'essen/luxembourg',
           'palestrina/palestrina_{}.mid': 'palestrina'}
  seed = 0
  for pattern in files:
    for k in range(4):
      seed += 1
      voices = [midi_factory.melody(40, seed=seed * 10 + v, program=52) for v in range(2)]
      midi_factory.write(str(root / 'midi' / pattern.format(k)), *voices)
  stats = prep.prepare(str(root / 'midi'), str(root / 'data'),
                       PrepOptions(valid_fraction=0.25, test_fraction=0.25, max_len=16), workers=1)
  return str(root / 'data'), stats


def test_labels_reach_the_tfrecords_and_stats(labelled):
  data_dir, stats = labelled
  arrays = [input_pipeline.load_split(data_dir, split, 16) for split in ('train', 'valid', 'test')]
  pairs = {(c, s) for a in arrays for c, s in zip(a['collection'], a['style'])}
  assert pairs == {('essen', 'essen/chinese'), ('essen', 'essen/luxembourg'), ('palestrina', 'palestrina')}
  for a in arrays:
    for source, style in zip(a['source'], a['style']):
      assert labels.labels_of(source)[1] == style
  assert set(stats['per_style']) == {'essen/chinese', 'essen/luxembourg', 'palestrina'}
  assert stats['per_collection']['palestrina']['files'] == 4
  assert stats['per_collection']['palestrina']['tracks'] == 8  # two voices per file
  assert sum(v['examples'] for v in stats['per_style'].values()) == sum(stats['examples'].values())
  assert json.load(open(f'{data_dir}/stats.json'))['per_style'] == stats['per_style']


def test_tfds_load_gives_the_labels(labelled):
  import tensorflow_datasets as tfds

  data_dir, _ = labelled
  examples = list(tfds.load('vrash_midi', data_dir=data_dir, split='train').as_numpy_iterator())
  assert examples and {e['style'].decode() for e in examples} <= {'essen/chinese', 'essen/luxembourg', 'palestrina'}


def test_a_dataset_without_labels_is_refused_clearly(labelled, tmp_path):
  data_dir, _ = labelled
  old = tmp_path / 'old'
  shutil.copytree(data_dir, old)
  (features_path,) = old.glob('vrash_midi/*/features.json')
  features = json.loads(features_path.read_text())
  del features['featuresDict']['features']['style']
  features_path.write_text(json.dumps(features))
  with pytest.raises(VrashError, match=r'prepared by an older vrash-prep \(version 1.1.0, without style '
                                       r'labels\): run `vrash-prep` again'):
    input_pipeline.dataset_info(str(old))
