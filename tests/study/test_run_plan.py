"""A sweep's plan: which runs are left, how many evaluations and compilations they need, the
projection from measured steps, and the progress lines."""
import json
import logging

import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import input_pipeline
from vrash_jax.study import run_plan


def config(model='vrash', seed=0, **overrides):
  c = smoke.get_config(model)
  c.seed = seed
  c.update(overrides)  # train_steps 8, eval_every 4 unless overridden
  return c


def test_a_run_is_where_its_run_json_left_it(tmp_path):
  fresh = run_plan.planned_run(config(), str(tmp_path / 'fresh'))
  assert (fresh.name, fresh.done_steps, fresh.finished, fresh.remaining_steps) == ('fresh', 0, False, 8)
  for name, info, remaining in (('half', {'step': 3, 'stopped_by': 'SIGTERM'}, 5),
                                ('saturated', {'step': 4, 'stopped_by': 'saturation'}, 0),
                                ('done', {'step': 8, 'stopped_by': None}, 0)):
    (tmp_path / name).mkdir()
    (tmp_path / name / 'run.json').write_text(json.dumps({'train_wall_s': 1.0, **info}))
    assert run_plan.planned_run(config(), str(tmp_path / name)).remaining_steps == remaining, name


def test_evaluations_left_count_every_eval_every_steps_and_the_last():
  assert run_plan.evaluations(run_plan.PlannedRun('a', config(train_steps=10, eval_every=4), 0, False)) == 3
  assert run_plan.evaluations(run_plan.PlannedRun('a', config(train_steps=10, eval_every=4), 8, False)) == 1
  assert run_plan.evaluations(run_plan.PlannedRun('a', config(eval_every=0), 0, False)) == 0
  assert run_plan.evaluations(run_plan.PlannedRun('a', config(), 0, True)) == 0


def test_the_projection_counts_steps_evaluations_and_one_compilation_per_config():
  measured = {'lm': {'mean_step_s': 0.5, 'evaluation_s': 2.0, 'compile_s': 3.0, 'widths': [8, 16],
                     'step_s': {8: 0.25, 16: 0.75}},
              'vrash': {'mean_step_s': 1.0, 'evaluation_s': 4.0, 'compile_s': 5.0, 'widths': [8, 16, 24],
                        'step_s': {8: 0.5, 24: 1.5}}}
  runs = [run_plan.PlannedRun('lm-seed0', config('lm', 0), 0, False),
          run_plan.PlannedRun('lm-seed1', config('lm', 1), 4, False),  # shares lm-seed0's compilations
          run_plan.PlannedRun('vrash-seed0', config('vrash'), 8, True),  # finished: nothing left
          run_plan.PlannedRun('vrash-fb0', config('vrash', free_bits=0.0), 0, False)]
  out = run_plan.project(runs, measured)
  assert out['training'] == pytest.approx(8 * 0.5 + 4 * 0.5 + 8 * 1.0)
  assert out['evaluation'] == pytest.approx(2 * 2.0 + 1 * 2.0 + 2 * 4.0)
  assert out['compilation'] == pytest.approx(3.0 * 2 + 5.0 * 3)
  assert out['total'] == pytest.approx(out['training'] + out['evaluation'] + out['compilation'])
  text = run_plan.describe(runs, measured, out, '1 cpu')
  assert text.startswith('plan: 4 runs, 1 finished in earlier sittings')
  assert 'vrash: 3 widths (8, 16, 24); measured on 1 cpu: step 500.0 ms at width 8, 1500.0 ms at width 24' in text
  assert 'projected for the 3 runs to go: about 0.8 min' in text


def test_progress_names_each_run_once_with_the_time_left(caplog):
  measured = {'vrash': {'mean_step_s': 7.5, 'evaluation_s': 0.0, 'compile_s': 0.0, 'widths': [8]}}
  runs = [run_plan.PlannedRun(f'vrash-seed{s}', config(seed=s), 0, False) for s in (0, 1)]
  progress = run_plan.Progress(runs, measured)
  with caplog.at_level(logging.INFO):
    for name in ('vrash-seed0', 'vrash-seed0', 'vrash-seed1', 'unplanned'):
      progress.starting(f'/w/runs/{name}')
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('run ')]
  assert lines == ['run 1 of 2: vrash-seed0; about 2.0 min of training and evaluation to go, this run included',
                   'run 2 of 2: vrash-seed1; about 1.0 min of training and evaluation to go, this run included']


def test_a_model_is_measured_at_its_narrowest_and_widest_batch(tiny_dataset):
  c = config(bucket_step=1)
  train = dict(input_pipeline.load_split(tiny_dataset, 'train', c.max_len))
  train['length'] = np.where(np.arange(len(train['length'])) % 2, train['length'], 5)  # two widths
  train['mask'] = np.arange(c.max_len)[None, :] < train['length'][:, None]
  valid = input_pipeline.load_split(tiny_dataset, 'valid', c.max_len)
  widths = run_plan.batch_widths(c, train)
  m = run_plan.measure_model(c, train, valid)
  assert m['widths'] == sorted(set(widths.tolist())) and len(m['widths']) > 1
  assert set(m['step_s']) == {min(widths), max(widths)} and all(s > 0 for s in m['step_s'].values())
  assert min(m['step_s'].values()) <= m['mean_step_s'] <= max(m['step_s'].values())
  assert m['compile_s'] > 0 and m['evaluation_s'] > 0
  assert np.isfinite(list(m['step_s'].values())).all()
