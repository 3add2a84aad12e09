"""`vrash-reproduce [--preset quick|cpu|paper] [--workdir W]`: the paper end to end.

default corpus (music21's six collections) -> MIDI -> TFRecords -> sweep of LM/VAE/VRASH x seeds
and the rate-distortion frontier -> the paper's claims measured -> results.md, figure5.png,
figure6.png, frontier.png, curves.png, samples, results.html (piano rolls and audio). Every
stage reuses what a previous run of the same preset finished: converted tunes, a dataset
prepared with the same options, trained runs.

* quick: a subset of the corpus, small models, the paper's three models (LM, VAE, VRASH), no
  extra frontier rates; about 3 minutes on a 2-core CPU (167 s on 2026-12-04).
* cpu: the whole corpus, whole melodies, small models trained up to 1500 steps (stopped early at
  saturation); its 34 runs before the Transformer models took 105 minutes of training on a 2-core
  CPU, the 6 Transformer runs add to that.
* paper: the whole corpus and the base configs (hidden 256, depth 3, 20k steps); meant for a
  GPU or TPU (see README for its cost).

On a pod slice: `--distributed --data_dir gs://B/data --workdir gs://B/W` on every worker, with a
dataset prepared for the preset (see docs/accelerators.md).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
from typing import Any

from absl import flags

from experiments import launcher
from experiments.configs import MODELS, SMALL_MODEL, model_config
from vrash_jax import storage
from vrash_jax.config_rules import PAPER_MODELS
from vrash_jax.errors import PROGRESS, VrashError, exit_on_user_error
from vrash_jax.study.runs import Point, Seeds, rate_points
from vrash_jax.study.stages import Stages
from vrash_jax.study.study import ClaimsPlan, Study
from vrash_jax.study.sweep import STAGES


@dataclasses.dataclass(frozen=True)
class Preset:
  works_per_collection: int  # N tunes or works of every collection, spread over its files (0 = all)
  models: tuple[str, ...]  # the models of the comparison, each trained with `seeds`
  prep: dict[str, Any]  # PrepOptions overrides
  config: dict[str, Any]  # overrides of every model's config
  seeds: Seeds  # the same seeds for every model, or {model: seeds}
  iw_samples: int
  num_samples: int
  plan: ClaimsPlan  # the frontier's extra runs, and the samples behind the claims
  notes: str  # why these choices; copied into results.md


# Techniques meant to keep the latent used without inflating the bound, at the default rate.
TECHNIQUES = (
    Point('vrash', 'pretrain', 'encoder pretraining, decoder reset (Li et al. 2019)',
          (('pretrain_steps', 300), ('kl_anneal_steps', 200))),
    Point('vrash', 'cyclical', 'cyclical annealing, 4 cycles (Fu et al. 2019)', (('kl_cycles', 4),)),
    Point('vrash', 'nd0.5-fb1', 'note dropout 0.5, free bits 1 (the earlier default)',
          (('note_dropout', 0.5), ('free_bits', 1.0))),
)
THREE_SEEDS = (0, 1, 2)
WHOLE_CORPUS_FRONTIER = (rate_points('vrash', (0.0, 0.125, 0.25, 1.0), THREE_SEEDS)
                         + tuple(dataclasses.replace(p, seeds=THREE_SEEDS) for p in TECHNIQUES)
                         + rate_points('vae', (0.0, 0.125, 0.25, 1.0)))

PRESETS = {
    'quick': Preset(
        works_per_collection=150, models=PAPER_MODELS,
        prep={'max_len': 128},
        config={**SMALL_MODEL, 'max_len': 128, 'bucket_step': 64, 'batch_size': 32, 'eval_batch_size': 128,
                'train_steps': 300, 'warmup_steps': 50, 'kl_anneal_steps': 150, 'log_every': 100,
                'eval_every': 150, 'checkpoint_every': 300},
        seeds={'lm': (0, 1, 2), 'vae': (0,), 'vrash': (0, 1, 2)},
        iw_samples=8, num_samples=32,
        plan=ClaimsPlan(temperatures=(0.5, 0.7, 0.8, 0.9, 1.0), frontier_iw_samples=8, valid_iw_samples=8),
        notes=('quick preset: 150 tunes or works of each of the six collections (spread over '
               'their files, so every style is in), melodies in chunks of at most 128 notes (most '
               'are whole), lengths bucketed by 64 notes (2 compiled widths), RHN hidden 128 depth 2, 300 '
               'steps of batch 32 with the better of 2 valid evaluations kept: sized for minutes on a 2-core '
               'CPU, so the models are far from saturation. The paper\'s three models: 3 seeds for the LM '
               'and VRASH, 1 for the VAE (its 3 sampling seeds share one model); the Transformer LM and '
               'Transformer VRASH, and the frontier\'s other rates, are in the cpu and paper presets. The '
               'frontier holds each model\'s default rate (bounds at K=8); claims use 3 seeds, 32 samples '
               'each at 5 temperatures. Each run trains alone, its batch split over the CPU cores (on a '
               'CPU runs of different seeds do not pay as a group).')),
    'cpu': Preset(
        works_per_collection=0, models=MODELS,
        prep={'max_len': 256},
        config={**SMALL_MODEL, 'max_len': 256, 'bucket_step': 32, 'batch_size': 64, 'eval_batch_size': 256,
                'train_steps': 1500, 'warmup_steps': 100, 'kl_anneal_steps': 400, 'log_every': 200,
                'eval_every': 250, 'patience': 4, 'checkpoint_every': 250},
        seeds=(0, 1, 2), iw_samples=16, num_samples=128,
        plan=ClaimsPlan(frontier=WHOLE_CORPUS_FRONTIER),
        notes=('cpu preset: the whole default corpus, whole melodies (chunks of at most 256 notes), '
               "the quick preset's model (RHN hidden 128 depth 2) trained up to 1500 steps of batch 64 "
               '(lengths bucketed by 32 notes), evaluated on valid every 250 steps and stopped after '
               '4 evaluations without a better '
               'valid bound; the best checkpoint gives every test figure. Frontier: VAE and VRASH at '
               'free bits 0, 0.125, 0.25, 0.5 and 1 nat per dimension, and VRASH with encoder '
               'pretraining (300 steps), cyclical annealing (4 cycles), and the earlier default (note '
               'dropout 0.5, free bits 1).')),
    'paper': Preset(
        works_per_collection=0, models=MODELS,
        prep={'max_len': 256},
        config={'max_len': 256},
        seeds=(0, 1, 2), iw_samples=64, num_samples=256,
        plan=ClaimsPlan(frontier=WHOLE_CORPUS_FRONTIER),
        notes=('paper preset: the whole default corpus, whole melodies (chunks of at most 256 notes), '
               'RHN hidden 256 depth 3 (Zilly et al.), 20k steps of batch 64 with KL annealed over 2k '
               "steps, the base config's rate (free bits per dimension and note dropout), and the cpu "
               "preset's frontier.")),
}


PREP_MODULES = ('music21', 'tensorflow', 'tensorflow_datasets')  # the `prep` extra
LOG = 'reproduce.log'  # in the workdir: every line, the console's and the library's


def prepared_stats(data_dir: str, options: Any) -> dict[str, Any] | None:
  """DATA_DIR's stats.json (local or gs://) if it holds a dataset this version reads, prepared
  with `options`; else None."""
  from vrash_jax import input_pipeline

  stats_path = storage.join(data_dir, 'stats.json')
  if not storage.path(stats_path).is_file():
    return None
  stats = json.loads(storage.read_text(stats_path))
  if stats.get('options') != dataclasses.asdict(options):
    return None
  try:
    input_pipeline.dataset_info(data_dir)
  except VrashError:
    return None
  return stats


def dataset_matches(midi_dir: str, data_dir: str, options: Any) -> bool:
  """Whether DATA_DIR holds a dataset this version reads, prepared with `options` from as many
  MIDI files as MIDI_DIR holds now."""
  stats = prepared_stats(data_dir, options)
  files = sum(f.endswith(('.mid', '.midi')) for _, _, fs in os.walk(midi_dir) for f in fs)
  return stats is not None and stats.get('files_total') == files


def check_prepared(data_dir: str, preset_name: str) -> None:
  """Refuses a --data_dir that does not hold a dataset prepared with the preset's options."""
  from data_prep.process import PrepOptions

  if prepared_stats(data_dir, PrepOptions(**PRESETS[preset_name].prep)) is None:
    raise VrashError(f'--data_dir {data_dir} holds no dataset prepared for --preset {preset_name} (its stats.json '
                     f'must list the preset\'s options): run `vrash-reproduce --preset {preset_name} --plan_only` '
                     'where the prep extra is installed, and copy its WORKDIR/data there')


def corpus_done(midi_dir: str, works_per_collection: int) -> bool:
  """Whether an earlier sitting converted this preset's corpus to the end (corpus.json)."""
  from data_prep import corpus

  path = os.path.join(midi_dir, 'corpus.json')
  if not os.path.isfile(path):
    return False
  with open(path) as f:
    manifest = json.load(f)
  return manifest.get('limit') == works_per_collection and manifest.get('collections') == list(corpus.COLLECTIONS)


def prepare_data(midi_dir: str, data_dir: str, preset: Preset, workers: int | None) -> None:
  """The default corpus as MIDI, then the dataset; reused when an earlier sitting made them with
  this preset (then music21 and TensorFlow are not needed: a GPU or TPU machine can take both
  folders from a machine that has them)."""
  from data_prep.process import PrepOptions

  options = PrepOptions(**preset.prep)
  if corpus_done(midi_dir, preset.works_per_collection) and dataset_matches(midi_dir, data_dir, options):
    PROGRESS.info('  reusing the corpus in %s and the dataset in %s', midi_dir, data_dir)
    return
  missing = [m for m in PREP_MODULES if importlib.util.find_spec(m) is None]
  if missing:
    raise VrashError(f'preparing the data needs {", ".join(missing)}: pip install -e ".[prep]" (or run '
                     f'the data stages where it is installed and copy {midi_dir} and {data_dir} here)')
  from data_prep import corpus, prep

  manifest = corpus.build_corpus(midi_dir, limit=preset.works_per_collection, workers=workers)
  PROGRESS.info('  corpus: %d tunes and works (%d skipped)', manifest['works'], manifest['skipped'])
  if dataset_matches(midi_dir, data_dir, options):
    PROGRESS.info('  reusing the dataset in %s', data_dir)
  else:
    stats = prep.prepare(midi_dir, data_dir, options, workers)
    PROGRESS.info('  dataset: %s examples (train, valid, test)', ', '.join(
        str(stats['examples'][k]) for k in ('train', 'valid', 'test')))


def checked(preset_name: str, workdir: str, soundfont: str | None, data_dir: str | None = None
            ) -> tuple[Preset, Any]:
  """The preset and its `config_for`, once the preset, the workdir, the SoundFont and every run's
  config are valid: nothing is written before."""
  if preset_name not in PRESETS:
    raise VrashError(f'--preset must be one of {", ".join(PRESETS)}, not {preset_name!r}')
  if data_dir is None:
    storage.require_local(workdir, '--workdir', 'the data stages write the corpus and the dataset there with '
                          'local tools; give --data_dir, a dataset prepared with this preset (in the bucket)')
  if soundfont:
    from vrash_jax.report import audio
    audio.check_soundfont(soundfont)
  preset = PRESETS[preset_name]
  config_for = functools.partial(model_config, overrides=preset.config)
  for model in preset.models:
    config_for(model)  # refuses a preset that breaks a config rule before any work
  for point in preset.plan.frontier:
    point.config(config_for)
  return preset, config_for


def reproduce(preset_name: str, workdir: str, workers: int | None = None, soundfont: str | None = None,
              plan_only: bool = False, group_size: int = 0, data_dir: str | None = None,
              folder: str | None = None) -> dict[str, Any] | None:
  """Every stage of a preset in WORKDIR (each reused when an earlier sitting finished it), its
  runs in groups of up to `group_size` (0: see `run_plan.group_size`); with `plan_only`, the
  data stages and then the sweep's plan only. With `data_dir` (local or gs://) the data stages
  are that dataset's, prepared with the preset; the report's files go to `folder` (see
  `sweep.report_folder`; by default the workdir, then local)."""
  preset, config_for = checked(preset_name, workdir, soundfont, data_dir)
  stages = Stages(('data',) + STAGES + ('report',))
  if data_dir is None:
    data_dir = os.path.join(workdir, 'data')
    stages.begin('data', f'the default corpus ({preset.works_per_collection or "all"} works of each collection), '
                         'then the dataset')
    prepare_data(os.path.join(workdir, 'midi'), data_dir, preset, workers)
  else:
    stages.begin('data', f'the dataset in {data_dir}')
    check_prepared(data_dir, preset_name)

  import jax

  from vrash_jax.report import render
  from vrash_jax.study import sweep
  study = Study(data_dir, workdir, config_for, preset.models, preset.seeds, preset.plan, preset.iw_samples,
                preset.num_samples, preset.notes, group_size)
  if plan_only:
    sweep.plan_sweep(study)
    return None
  results = sweep.run_sweep(study, stages, folder)
  if jax.process_index() == 0:
    stages.begin('report', 'results.md, figures, piano rolls and audio, results.html')
    render.write_report(results, folder or workdir, soundfont)
  seconds = stages.end()
  PROGRESS.info('reproduction (%s) took %.0f s: %s', preset_name, sum(seconds.values()),
                ', '.join(f'{name} {s:.0f} s' for name, s in seconds.items()))
  return results


FLAGS = flags.FLAGS
flags.DEFINE_enum('preset', 'quick', list(PRESETS),
                  'quick (CPU, minutes), cpu (whole corpus, CPU, over an hour) or paper (GPU/TPU).')
flags.DEFINE_string('workdir', None, 'Everything goes here (default runs/PRESET; gs:// with --data_dir); '
                    're-running reuses it.')
flags.DEFINE_integer('workers', None, 'Worker processes for the data stages (default: all cores).',
                     lower_bound=1)
flags.DEFINE_bool('plan_only', False, 'Prepare the data, say the plan (runs, widths, a projected wall '
                  'time from steps measured here) and stop before training.')
flags.DEFINE_integer('group_size', 0, 'Runs trained together (one jitted step over their stacked states); '
                     '0: a run per CPU device, or on an accelerator the size after which runs per second '
                     'stop growing.', lower_bound=0)
flags.DEFINE_string('soundfont', None, 'Render the results page\'s audio with this General MIDI '
                    'SoundFont (.sf2) through fluidsynth instead of sine waves.')
flags.DEFINE_bool('verbose', False, 'Show every log line on the console (they always go to WORKDIR/reproduce.log).')
launcher.define_once(flags.DEFINE_string, 'data_dir', None, 'A dataset prepared with this preset (local or gs://; '
                     'the `data` folder of an earlier reproduction): no data stages. Needed for a gs:// --workdir.')
launcher.define_host_flags()


@exit_on_user_error
def main(argv: list[str]) -> None:
  launcher.quiet_library_logs()
  workdir = FLAGS.workdir or os.path.join('runs', FLAGS.preset)
  checked(FLAGS.preset, workdir, FLAGS.soundfont, FLAGS.data_dir)
  if (FLAGS.distributed or FLAGS.coordinator_address) and not FLAGS.data_dir:
    raise VrashError('on many hosts give --data_dir, a dataset prepared with the preset (each host would '
                     'prepare its own in the workdir): see docs/accelerators.md')
  launcher.join_hosts()
  from vrash_jax.study import sweep
  with sweep.report_folder(workdir) as folder:
    launcher.study_console(os.path.join(folder, LOG), FLAGS.verbose)
    results = reproduce(FLAGS.preset, workdir, FLAGS.workers, FLAGS.soundfont, FLAGS.plan_only, FLAGS.group_size,
                        FLAGS.data_dir, folder)
  import jax
  if results is None or jax.process_index() != 0:
    return
  from vrash_jax.report import answer
  print(f'\n{answer.console_summary(results)}\n', flush=True)
  print(f'tables: {os.path.join(workdir, "results.md")}; everything said: {os.path.join(workdir, LOG)}', flush=True)
  print(f'results page: {os.path.join(workdir, "results.html")}', flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
