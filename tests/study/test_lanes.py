"""Runs side by side in lanes (`runs.train_groups`): each as it would train alone, the first of
each compiled program ahead, the main thread's stop signals heard in every lane, a lane's error
raised in the main thread, and the progress lines of a study's stages."""
import logging
import os
import signal
import threading

import jax
import numpy as np
import pytest

from test_groups import alone, config, trained_params
from vrash_jax import run_log, sharding
from vrash_jax.errors import VrashError
from vrash_jax.study import run_plan, runs, stages


def planned(c, directory):
  return run_plan.PlannedRun(str(directory), c, 0, False)


def test_runs_in_lanes_train_as_they_would_alone(tiny_dataset, tmp_path):
  configs = [config(0, model='lm'), config(1, model='lm')]
  groups = [[planned(c, tmp_path / f'run{i}')] for i, c in enumerate(configs)]
  runs.train_groups(groups, tiny_dataset, lanes=2)
  for c, (run,) in zip(configs, groups):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 trained_params(run.directory), alone(c, tiny_dataset))
    assert os.path.isfile(os.path.join(run.directory, 'run.json'))


def test_lanes_split_the_devices_and_a_lane_meshes_its_own():
  devices = jax.devices()  # the tests' 8 CPU devices
  assert [runs.devices_of_lane(i, 2) for i in range(2)] == [devices[:4], devices[4:]]
  with pytest.raises(VrashError, match='16 lanes need at least as many devices, or one; there are 8'):
    runs.devices_of_lane(3, 16)
  with sharding.on_devices(devices[4:]):
    assert sharding.lane_devices() == devices[4:] and sharding.data_mesh().devices.size == 4
  assert sharding.lane_devices() == devices


def test_the_first_group_of_each_compiled_program_goes_first():
  lm = [[planned(config(s, model='lm'), f'lm{s}')] for s in (0, 1)]
  vrash = [[planned(config(s), f'vrash{s}')] for s in (0, 1)]
  fb0 = [[planned(config(0, free_bits=0.0), 'fb0')]]  # another rate: the same program as vrash's
  order = runs.compile_first(lm + vrash + fb0)
  assert [g[0].directory for g in order] == ['lm0', 'vrash0', 'lm1', 'vrash1', 'fb0']


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])  # a preemption, Ctrl-C
def test_a_signal_the_main_thread_catches_is_heard_in_every_lane(sig):
  """(A whole `vrash-train` process stopped by SIGTERM: tests/test_reliability.py.)"""
  heard, before = [], signal.getsignal(sig)
  with run_log.StopSignals() as main:
    os.kill(os.getpid(), sig)
    assert main.received == sig.name

    def lane():
      with run_log.StopSignals() as own:
        heard.append(own.received)

    thread = threading.Thread(target=lane)
    thread.start()
    thread.join()
  assert heard == [sig.name]
  assert run_log.StopSignals().received is None  # closed: heard no more
  assert signal.getsignal(sig) is before


def test_a_lanes_error_is_raised_after_the_other_lane_ends_its_group(monkeypatch):
  ended = []

  def train_group(configs, data_dir, directories, progress=None):
    if directories[0] == 'b':
      raise VrashError('b broke')
    ended.append(directories[0])

  monkeypatch.setattr(runs, 'train_group', train_group)
  with pytest.raises(VrashError, match='^b broke$'):
    runs.train_groups([[planned(config(0), 'a')], [planned(config(1), 'b')]], 'unused', lanes=2)
  assert ended == ['a']


def test_stages_say_where_a_study_is_and_how_long_each_part_took(caplog):
  with caplog.at_level(logging.INFO):
    said = stages.Stages(('data', 'training', 'report'))
    said.begin('data')
    said.begin('training', '7 runs')
    said.done(1, 2, 'lm-seed0')
    said.done(2, 2, 'lm-seed1')
    seconds = said.end()
  lines = [r.getMessage() for r in caplog.records if r.name == 'vrash.progress']
  assert lines[0].startswith('[1/3] data (0.0 min so far)') and lines[1].startswith('[2/3] training: 7 runs (')
  assert lines[2].startswith('  lm-seed0: 1 of 2 done; about ') and lines[2].endswith(' min left in this stage')
  assert lines[3] == '  lm-seed1: 2 of 2 done'
  assert set(seconds) == {'data', 'training'} and all(s >= 0 for s in seconds.values())
