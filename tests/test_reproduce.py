"""`vrash-reproduce`'s data stages: reused without music21 or TensorFlow when an earlier sitting
made them with the preset's options, and a one-line request for the `prep` extra otherwise."""
import dataclasses
import importlib.util
import json
import os
import shutil

import pytest

from data_prep import corpus, prep
from data_prep.process import PrepOptions
from experiments import reproduce
from vrash_jax.errors import VrashError

TINY_PREP = {'valid_fraction': 0.25, 'test_fraction': 0.25, 'max_len': 16}  # as conftest's tiny_dataset


@pytest.fixture
def workdir(tiny_dataset, tmp_path):
  """A workdir whose corpus and dataset an earlier sitting finished (tiny_dataset's MIDI files)."""
  midi, data = tmp_path / 'midi', tmp_path / 'data'
  shutil.copytree(os.path.join(os.path.dirname(tiny_dataset), 'midi'), midi)
  shutil.copytree(tiny_dataset, data)
  (midi / 'corpus.json').write_text(json.dumps({'limit': 5, 'collections': list(corpus.COLLECTIONS)}))
  return midi, data


def preset(**prep_options):
  return dataclasses.replace(reproduce.PRESETS['quick'], works_per_collection=5, prep=prep_options)


def without_prep_extra(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: None if name in reproduce.PREP_MODULES else real(name, *a))
  monkeypatch.setattr(prep, 'prepare', lambda *a, **k: pytest.fail('the dataset was prepared again'))
  monkeypatch.setattr(corpus, 'build_corpus', lambda *a, **k: pytest.fail('the corpus was converted again'))


def test_finished_data_stages_are_reused_without_the_prep_extra(workdir, monkeypatch):
  midi, data = workdir
  assert reproduce.dataset_matches(str(midi), str(data), PrepOptions(**TINY_PREP))
  without_prep_extra(monkeypatch)
  reproduce.prepare_data(str(midi), str(data), preset(**TINY_PREP), workers=1)


def test_other_options_need_the_prep_extra_and_say_so(workdir, monkeypatch):
  midi, data = workdir
  assert not reproduce.dataset_matches(str(midi), str(data), PrepOptions(**{**TINY_PREP, 'max_len': 32}))
  without_prep_extra(monkeypatch)
  with pytest.raises(VrashError, match=r'^preparing the data needs music21, tensorflow, tensorflow_datasets: '
                                       r'pip install -e "\.\[prep\]" \(or run the data stages where'):
    reproduce.prepare_data(str(midi), str(data), preset(**{**TINY_PREP, 'max_len': 32}), workers=1)
  (midi / 'corpus.json').write_text(json.dumps({'limit': 6, 'collections': list(corpus.COLLECTIONS)}))
  assert not reproduce.corpus_done(str(midi), 5)  # a corpus of another size


def test_a_given_dataset_must_be_prepared_with_the_presets_options(tiny_dataset, monkeypatch):
  with pytest.raises(VrashError, match=r'^--data_dir \S+ holds no dataset prepared for --preset quick \(its '
                                       r'stats.json must list the preset\'s options\)'):
    reproduce.check_prepared(tiny_dataset, 'quick')
  monkeypatch.setitem(reproduce.PRESETS, 'quick', preset(**TINY_PREP))
  reproduce.check_prepared(tiny_dataset, 'quick')


def test_a_bucket_workdir_needs_a_prepared_dataset(tiny_dataset):
  with pytest.raises(VrashError, match=r"^--workdir must be a local folder, not 'gs://b/study': the data stages "
                                       r'write the corpus'):
    reproduce.checked('quick', 'gs://b/study', None)
  reproduce.checked('quick', 'gs://b/study', None, data_dir=tiny_dataset)  # the data stages are skipped
