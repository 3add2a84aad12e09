"""A sweep of every model (LM, VAE, VRASH and the Transformer LM and VRASH) x 2 seeds with one
frontier point (2 seeds), 2 steps a run."""
from experiments.configs import MODELS, smoke


def config(model):
  """A smoke config trained for 2 steps."""
  config = smoke.get_config(model)
  config.train_steps, config.log_every, config.eval_every, config.checkpoint_every = 2, 2, 0, 2
  return config


def sweep_and_report(data_dir, workdir):
  """Runs the sweep and writes its report, as `vrash-sweep` does; returns the results."""
  from vrash_jax.report import render
  from vrash_jax.study import runs, sweep
  from vrash_jax.study.study import ClaimsPlan, Study

  # Samples as long as the listening ones, and the runs' own K on each split: the claims reuse
  # what the comparison compiled and measured (the test figures, the valid figures the runs logged).
  plan = ClaimsPlan(frontier=runs.rate_points('vrash', (0.0,), seeds=(0, 1)), temperatures=(0.5, 1.0),
                    sample_seeds=2, sample_length=16, frontier_iw_samples=2, valid_iw_samples=8)
  # A model's seeds share a group (one compiled step for both: a shorter suite); on a CPU a sweep
  # trains each run alone by default, side by side in lanes (tested in tests/study/test_run_plan.py).
  study = Study(data_dir, workdir, config, MODELS, (0, 1), plan, iw_samples=2, num_samples=4, group_size=2,
                mix_seeds=True)
  results = sweep.run_sweep(study)
  render.write_report(results, workdir)
  return results
