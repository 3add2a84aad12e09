"""`vrash-sweep --data_dir OUT --workdir W [--models lm,vae,vrash,tlm,tvrash] [--seeds 0,1,2] [--config.x=y]`.

Trains every model x seed (each run resumable) and, with --frontier_free_bits, VAE/VRASH at
other rates; evaluates them on the test split, measures the paper's claims and writes
W/results.json, W/results.md, W/figure5.png, W/figure6.png, W/frontier.png, W/curves.png and
W/results.html. `--config.FIELD=VALUE` overrides
a field of every model's config (experiments/configs/{lm,vae,vrash,tlm,tvrash}.py).

On a pod slice: the same command on every worker with `--distributed` (and DATA, W in a bucket):
each group's runs spread over the hosts, and process 0 uploads the report's files when done.
"""
import functools
import os

from absl import flags
from ml_collections import config_flags

from experiments import launcher
from experiments.configs import MODELS, base, model_config
from vrash_jax.config_rules import LANGUAGE_MODELS
from vrash_jax.errors import VrashError, exit_on_user_error, require

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'Folder holding the prepared vrash_midi dataset (local or gs://).')
flags.DEFINE_string('workdir', None, 'Runs, results and figures go here (local or gs://).')
flags.DEFINE_list('models', list(MODELS), 'Which models to compare (tlm, tvrash: the Transformer LM and VRASH).')
flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds per model.')
flags.DEFINE_integer('iw_samples', 16, 'Posterior samples of the importance-weighted NLL bound.', lower_bound=1)
flags.DEFINE_integer('num_samples', 64, 'Melodies sampled per model for the objective metrics.', lower_bound=1)
flags.DEFINE_list('frontier_free_bits', [], 'Also train VAE and VRASH at these free-bits floors (nats '
                  'per latent dimension) for the rate-distortion frontier, with --seeds.')
launcher.define_group_size()
flags.DEFINE_list('temperatures', ['0.5', '0.7', '0.8', '0.9', '1.0', '1.2'], 'Sampling temperatures of the '
                  'claims\' samples (a curve: structure is read where a model is as diverse as the data).')
flags.DEFINE_integer('sample_seeds', 3, 'Sampling seeds per temperature for the claims.', lower_bound=1)
flags.DEFINE_bool('plan_only', False, 'Say the plan (runs, widths, a projected wall time from steps '
                  'measured here) and stop before training.')
flags.DEFINE_string('soundfont', None, 'Render the results page\'s audio with this General MIDI '
                    'SoundFont (.sf2) through fluidsynth instead of sine waves.')
flags.DEFINE_bool('verbose', False, 'Show every log line on the console (they always go to WORKDIR/sweep.log).')
launcher.define_host_flags()


def check_overrides(overrides: dict, models: list[str]) -> None:
  """Refuses overrides that would silently change what distinguishes the models."""
  if 'model' in overrides:
    raise VrashError('--config.model cannot be overridden in a sweep: use --models')
  if 'note_dropout' in overrides and set(models) & {'lm', 'vae'}:
    raise VrashError('--config.note_dropout would also change the LM/VAE configs; sweep '
                     '--models vrash to vary it')


def parse_seeds(values: list[str]) -> list[int]:
  try:
    return [int(v) for v in values]
  except ValueError:
    raise VrashError(f'--seeds must be integers, got {",".join(values)}') from None


def parse_numbers(flag: str, values: list[str]) -> tuple[float, ...]:
  try:
    numbers = tuple(float(v) for v in values)
  except ValueError:
    numbers = ()
  if len(numbers) != len(values) or any(not n >= 0 for n in numbers):
    raise VrashError(f'--{flag} must be numbers >= 0, got {",".join(values)}')
  return numbers


def claims_plan(models: list[str], free_bits: tuple[float, ...], temperatures: tuple[float, ...],
                sample_seeds: int, seeds: list[int], iw_samples: int):
  """The claims' plan: the frontier at `free_bits`, its test bound at the comparison's own K (one K
  for every test bound on the page; the comparison's test figures are reused, not measured again)."""
  from vrash_jax.study.runs import rate_points
  from vrash_jax.study.study import ClaimsPlan
  if not temperatures or min(temperatures) <= 0:
    raise VrashError('--temperatures must be numbers > 0')
  frontier = tuple(p for m in models if m not in LANGUAGE_MODELS for p in rate_points(m, free_bits, seeds))
  return ClaimsPlan(frontier=frontier, temperatures=temperatures, sample_seeds=sample_seeds,
                    frontier_iw_samples=iw_samples)


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(data_dir=FLAGS.data_dir, workdir=FLAGS.workdir)
  unknown = sorted(set(FLAGS.models) - set(MODELS))
  if unknown or not FLAGS.models:
    raise VrashError(f'--models must be a non-empty subset of {",".join(MODELS)} (unknown: {",".join(unknown)})')
  import jax

  from vrash_jax.report import answer, audio, render
  from vrash_jax.study import sweep
  from vrash_jax.study.study import Study
  launcher.quiet_library_logs()
  launcher.join_hosts()
  if FLAGS.soundfont:
    audio.check_soundfont(FLAGS.soundfont)
  overrides = config_flags.get_override_values(FLAGS['config'])
  check_overrides(overrides, FLAGS.models)
  config_for = functools.partial(model_config, overrides=overrides)
  seeds = parse_seeds(FLAGS.seeds)
  plan = claims_plan(FLAGS.models, parse_numbers('frontier_free_bits', FLAGS.frontier_free_bits),
                     parse_numbers('temperatures', FLAGS.temperatures), FLAGS.sample_seeds, seeds,
                     FLAGS.iw_samples)
  study = Study(FLAGS.data_dir, FLAGS.workdir, config_for, tuple(FLAGS.models), seeds, plan, FLAGS.iw_samples,
                FLAGS.num_samples, group_size=FLAGS.group_size)
  study.validate(devices=jax.device_count())  # every run's config is valid before any work
  with sweep.report_folder(FLAGS.workdir) as folder:
    launcher.study_console(os.path.join(folder, 'sweep.log'), FLAGS.verbose)
    if FLAGS.plan_only:
      sweep.plan_sweep(study)
      return
    results = sweep.run_sweep(study, folder=folder)
    if jax.process_index() == 0:
      render.write_report(results, folder, FLAGS.soundfont)
  if jax.process_index() == 0:
    print(f'\n{answer.console_summary(results)}\n', flush=True)
    print(f'tables: {os.path.join(FLAGS.workdir, "results.md")}', flush=True)
    print(f'results page: {os.path.join(FLAGS.workdir, "results.html")}', flush=True)


def run() -> None:
  launcher.run(main, overridable=base.get_config())


if __name__ == '__main__':
  run()
