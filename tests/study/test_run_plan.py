"""A sweep's plan: which runs are left, which train together, how many evaluations and
compilations they need, the projection from measured group steps, and the progress lines."""
import logging
import os

import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import input_pipeline
from vrash_jax.errors import VrashError
from vrash_jax.study import run_plan


def config(model='vrash', seed=0, **overrides):
  c = smoke.get_config(model)
  c.seed = seed
  c.update(overrides)  # train_steps 8, eval_every 4 unless overridden
  return c


def planned(name, c, done=0, finished=False):
  return run_plan.PlannedRun(f'/w/runs/{name}', c, done, finished)


def test_a_run_is_where_its_checkpoints_and_run_json_left_it(tmp_path):
  fresh = run_plan.planned_run(config(), str(tmp_path / 'fresh'))
  assert (fresh.name, fresh.done_steps, fresh.finished, fresh.remaining_steps) == ('fresh', 0, False, 8)
  for name, steps, stopped_by, remaining in (('half', [2, 4], 'SIGTERM', 4), ('saturated', [4], 'saturation', 0),
                                             ('done', [4, 8], None, 0)):
    for step in steps + ['6.orbax-checkpoint-tmp-1']:  # a save cut short is no step
      os.makedirs(tmp_path / name / 'checkpoints' / str(step))
    (tmp_path / name / 'run.json').write_text(f'{{"train_wall_s": 1.0, "stopped_by": "{stopped_by}"}}')
    assert run_plan.planned_run(config(), str(tmp_path / name)).remaining_steps == remaining, name


def test_groups_hold_runs_that_can_share_a_step_one_seeds_runs_first():
  runs = [planned('lm-seed0', config('lm', 0)), planned('lm-seed1', config('lm', 1)),
          planned('vrash-seed0', config('vrash', 0)), planned('vrash-seed1', config('vrash', 1)),
          planned('vrash-fb0-seed0', config('vrash', 0, free_bits=0.0)),
          planned('vrash-fb0-seed1', config('vrash', 1, free_bits=0.0)),
          planned('vrash-long-seed0', config('vrash', 0, train_steps=16)),  # another schedule: alone
          planned('vrash-half-seed0', config('vrash', 0), done=4),  # another step reached: alone
          planned('vrash-done-seed0', config('vrash', 0), finished=True)]  # nothing to train
  groups = [[r.name for r in g] for g in run_plan.form_groups(runs, 2)]
  assert groups == [['lm-seed0', 'lm-seed1'], ['vrash-seed0', 'vrash-fb0-seed0'], ['vrash-seed1', 'vrash-fb0-seed1'],
                    ['vrash-long-seed0'], ['vrash-half-seed0']]
  assert [len(g) for g in run_plan.form_groups(runs, 1)] == [1] * 8
  assert not run_plan.mixes_seeds()  # the tests' CPU
  one_seed = [[r.name for r in g] for g in run_plan.form_groups(runs, 2, mix_seeds=False)]  # as on a CPU
  assert one_seed == [['lm-seed0'], ['lm-seed1'], ['vrash-seed0', 'vrash-fb0-seed0'],
                      ['vrash-seed1', 'vrash-fb0-seed1'], ['vrash-long-seed0'], ['vrash-half-seed0']]


def test_evaluations_left_count_every_eval_every_steps_and_the_last():
  assert run_plan.evaluations(planned('a', config(train_steps=10, eval_every=4))) == 3
  assert run_plan.evaluations(planned('a', config(train_steps=10, eval_every=4), done=8)) == 1
  assert run_plan.evaluations(planned('a', config(eval_every=0))) == 0
  assert run_plan.evaluations(planned('a', config(), finished=True)) == 0


MEASURED = {'lm': {'runs': 2, 'mean_step_s': 0.5, 'evaluation_s': 2.0, 'compile_s': 3.0, 'widths': [8, 16],
                   'step_s': {8: 0.25, 16: 0.75}},
            'vrash': {'runs': 2, 'mean_step_s': 1.0, 'evaluation_s': 4.0, 'compile_s': 5.0, 'widths': [8, 16, 24],
                      'step_s': {8: 0.5, 24: 1.5}}}


def test_the_projection_counts_group_steps_evaluations_and_one_compilation_per_group_config_and_size():
  groups = [[planned('lm-seed0', config('lm', 0)), planned('lm-seed1', config('lm', 1))],
            [planned('vrash-seed1', config('vrash', 1), done=4),
             planned('vrash-fb0-seed1', config('vrash', 1, free_bits=0.0), done=4)],
            [planned('vrash-seed2', config('vrash', 2))],  # a group of one compiles its own program
            [planned('vrash-seed3', config('vrash', 3))]]  # ... which serves the next group of one
  out = run_plan.project(groups, MEASURED)
  assert out['training'] == pytest.approx(8 * 0.5 + 4 * 1.0 + 8 * 1.0 + 8 * 1.0)
  assert out['evaluation'] == pytest.approx(2 * 2 * 2.0 + 2 * 1 * 4.0 + 2 * 4.0 + 2 * 4.0)
  assert out['compilation'] == pytest.approx(3.0 * 2 + 5.0 * 3 + 5.0 * 3)
  assert out['total'] == pytest.approx(out['training'] + out['evaluation'] + out['compilation'])
  runs = [r for g in groups for r in g] + [planned('lm-seed2', config('lm', 2), finished=True)]
  text = run_plan.describe(runs, groups, MEASURED, out, '2 cpu')
  assert text.startswith('plan: 7 runs, 1 finished in earlier sittings; 6 to train in 4 groups of 2 or 1 runs')
  assert ('vrash: 3 widths (8, 16, 24); measured on 2 cpu: a step of 2 run(s) 500.0 ms at width 8, 1500.0 ms at '
          'width 24') in text
  assert 'projected for the 6 runs to go: about 1.5 min' in text
  unmeasured = run_plan.describe(runs, groups, {}, None, '2 cpu')
  assert unmeasured.splitlines()[0] == text.splitlines()[0] and 'projected' not in unmeasured
  singles = run_plan.describe(runs, [[r] for r in runs[:2]], {}, None, '2 cpu')
  assert 'to train in 2 groups of 1 run; steps per run' in singles
  nothing_left = run_plan.describe(runs, [], {}, None, '2 cpu')
  assert nothing_left == 'plan: 7 runs, all finished in earlier sittings; nothing to train'


def test_progress_names_each_group_once_with_the_time_left(caplog):
  groups = [[planned(f'vrash-seed{s}', config(seed=s))] for s in (0, 1)]
  progress = run_plan.Progress(groups, {'vrash': {**MEASURED['vrash'], 'mean_step_s': 7.5, 'evaluation_s': 0.0}})
  with caplog.at_level(logging.INFO):
    for names in (['vrash-seed0'], ['vrash-seed1'], ['unplanned']):
      progress.starting([f'/w/runs/{n}' for n in names])
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('group ')]
  assert lines == ['group 1 of 2: vrash-seed0; about 2.0 min of training and evaluation to go, this group included',
                   'group 2 of 2: vrash-seed1; about 1.0 min of training and evaluation to go, this group included']


def test_unmeasured_progress_learns_each_models_pace_from_its_groups(caplog):
  groups = [[planned('lm-seed0', config('lm', 0))], [planned('vrash-seed0', config(seed=0))],
            [planned('vrash-seed1', config(seed=1))], [planned('lm-seed1', config('lm', 1))]]
  progress = run_plan.Progress(groups)
  with caplog.at_level(logging.INFO):
    progress.starting(['/w/runs/lm-seed0'])
    progress.finished(['/w/runs/lm-seed0'], 30.0, 8)  # 3.75 s a step
    progress.starting(['/w/runs/vrash-seed0'])
    progress.finished(['/w/runs/vrash-seed0'], 60.0, 8)
    progress.starting(['/w/runs/vrash-seed1'])
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('group ')]
  assert lines == ['group 1 of 4: lm-seed0; lm, vrash not timed yet',
                   'group 2 of 4: vrash-seed0; about 0.5 min of training and evaluation to go, this group '
                   'included (vrash not timed yet)',
                   'group 3 of 4: vrash-seed1; about 1.5 min of training and evaluation to go, this group included']


def test_a_group_is_measured_at_its_narrowest_and_widest_batch(tiny_dataset):
  c = config(bucket_step=1)
  train = dict(input_pipeline.load_split(tiny_dataset, 'train', c.max_len))
  train['length'] = np.where(np.arange(len(train['length'])) % 2, train['length'], 5)  # two widths
  train['mask'] = np.arange(c.max_len)[None, :] < train['length'][:, None]
  valid = input_pipeline.load_split(tiny_dataset, 'valid', c.max_len)
  widths = run_plan.batch_widths(c, train)
  m = run_plan.measure_model(c, 2, train, valid)
  assert m['runs'] == 2 and m['widths'] == sorted(set(widths.tolist())) and len(m['widths']) > 1
  assert set(m['step_s']) == {min(widths), max(widths)} and all(s > 0 for s in m['step_s'].values())
  assert min(m['step_s'].values()) <= m['mean_step_s'] <= max(m['step_s'].values())
  assert m['compile_s'] > 0 and m['evaluation_s'] > 0


def test_on_a_cpu_a_group_has_a_run_per_device(tiny_dataset):
  import jax
  train = input_pipeline.load_split(tiny_dataset, 'train', 16)
  assert run_plan.group_size(config(), train, _chunks(100)) == jax.device_count()  # the tests' 8 CPU devices
  assert run_plan.group_size(config(), train, _chunks(3)) == 3


def _chunks(runs: int):
  """The group sizes of `runs` runs of one model at a cap, as `form_groups` makes them."""
  return lambda cap: [min(cap, runs - start) for start in range(0, runs, cap)]


@pytest.mark.parametrize('step_ms, measured, chosen', [
    (lambda g: 100 + 5 * g, [1, 2, 4, 8, 16, 21], 21),  # a floor of latency: one group of all 21
    (lambda g: 100 + 5 * g if g <= 16 else 1e4, [1, 2, 4, 8, 16, 21], 16),  # past 16 it no longer fits
    (lambda g: 10 * g, [1, 2, 4, 8, 16, 21], 1),  # no floor: any cap takes as long; the smallest
    (lambda g: 100 + 5 * g if g <= 4 else 100 * g, [1, 2, 4, 8], 4),  # measuring stops where it stops paying
])
def test_on_an_accelerator_the_cap_is_the_one_whose_groups_take_least_time(tiny_dataset, monkeypatch,
                                                                          pretend_platform, step_ms, measured, chosen):
  train = input_pipeline.load_split(tiny_dataset, 'train', 16)
  timed = []

  def time_group_step(config, runs, train_arrays, width):
    timed.append(runs)
    return 1.0, step_ms(runs) / 1e3

  pretend_platform('gpu')
  monkeypatch.setattr(run_plan, 'time_group_step', time_group_step)
  assert run_plan.group_size(config(), train, _chunks(21)) == chosen
  assert timed == measured


def test_on_many_hosts_a_group_spreads_its_runs_and_every_host_must_plan_it_alike(tiny_dataset, monkeypatch):
  train = input_pipeline.load_split(tiny_dataset, 'train', 16)
  monkeypatch.setattr(run_plan.jax, 'process_count', lambda: 2)
  assert run_plan.mixes_seeds()  # seeds share a group: that is how runs spread over the hosts
  assert run_plan.group_size(config(), train, _chunks(8)) == 8  # a run a device of every host
  runs = [run_plan.PlannedRun(f'/w/runs/lm-seed{s}', config(), 0, False) for s in (0, 1)]
  other_host = {'differs': 0}  # how the other host's plan differs from this one's
  monkeypatch.setattr(run_plan.multihost_utils, 'process_allgather',
                      lambda digest: np.stack([digest, digest + other_host['differs']]))
  run_plan.agree([runs])  # the same groups
  other_host['differs'] = 1
  with pytest.raises(VrashError, match=r'^the 2 hosts planned different groups from the workdir \(this one: '
                                       r'lm-seed0,lm-seed1\); does every host see the same --workdir\?'):
    run_plan.agree([runs])
