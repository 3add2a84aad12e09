"""Test-wide set-up: eight CPU devices for data-parallel tests, quiet TensorFlow."""
import os
import tempfile

import xla_flags

# Must happen before jax is imported anywhere in the test session (xla_flags.py says why these).
os.environ.setdefault('XLA_FLAGS', xla_flags.with_devices(xla_flags.FAST_COMPILE, 8))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
# gs:// paths through gcsfs, which the tests' local GCS server can serve (TensorFlow's GCS
# client always calls Google); read once, when epath first meets a gs:// path.
os.environ.setdefault('EPATH_USE_TF', 'false')
# Tests compile the same tiny steps many times: share compilations within the session (its
# workers inherit this environment, so they share the cache too).
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='vrash-jax-cache-'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
  """A prepared vrash_midi dataset of 24 synthetic melodies (all three splits non-empty)."""
  import midi_factory
  from data_prep import prep
  from data_prep.process import PrepOptions

  root = tmp_path_factory.mktemp('tiny')
  midi_factory.write_corpus(str(root / 'midi'), files=24, notes=40)
  prep.prepare(str(root / 'midi'), str(root / 'data'),
               PrepOptions(valid_fraction=0.25, test_fraction=0.25, max_len=16), workers=1)
  return str(root / 'data')


@pytest.fixture(scope='session')
def swept(tiny_dataset, tmp_path_factory):
  """(workdir, results) of a tiny sweep and its report, as `vrash-sweep` writes them: made once
  for the whole run, by the first test worker that needs it (the others wait for it; their tiny
  datasets are alike)."""
  import fcntl
  import json

  import tiny_sweep

  shared = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    shared = shared.parent  # the test workers' common folder (this run's)
  workdir = shared / 'tiny-sweep'
  with open(shared / 'tiny-sweep.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (workdir / 'results.json').is_file():
      tiny_sweep.sweep_and_report(tiny_dataset, str(workdir))
  with open(workdir / 'results.json') as f:
    return str(workdir), json.load(f)


@pytest.fixture(scope='session')
def gcs(tmp_path_factory):
  """A local GCS server for the whole test run, with its environment set; yields the bucket's URL."""
  import gcs_server

  server = gcs_server.LocalGcs(str(tmp_path_factory.mktemp('gcs')))
  yield f'gs://{gcs_server.BUCKET}'
  server.stop()


@pytest.fixture
def bucket_dir(gcs, request):
  """A fresh gs:// folder for one test."""
  return f'{gcs}/{request.node.name.replace("[", "-").replace("]", "")}'


@pytest.fixture
def pretend_platform(monkeypatch):
  """`pretend_platform('gpu')`: `jax.devices()` reports one device of that platform for the rest
  of the test, for code that decides by platform (the computations still run on the CPU)."""
  import types

  import jax

  def pretend(platform: str) -> None:
    monkeypatch.setattr(jax, 'devices', lambda *args: [types.SimpleNamespace(platform=platform)])

  return pretend
