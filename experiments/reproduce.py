"""`vrash-reproduce [--preset quick|cpu|paper] [--workdir W]`: the paper end to end.

default corpus (music21's six collections) -> MIDI -> TFRecords -> sweep of LM/VAE/VRASH x seeds
and the rate-distortion frontier -> the paper's claims measured -> results.md, figure5.png,
figure6.png, frontier.png, curves.png, samples, results.html (piano rolls and audio). Every
stage reuses what a previous run of the same preset finished: converted tunes, a dataset
prepared with the same options, trained runs.

* tiny: 4 works a collection, the tests' tiny models, 8 steps: every stage in a minute or two,
  to try a command before an accelerator runs it (`vrash-borrowed`).
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

import functools
import importlib.util
import json
import os
from typing import Any

from absl import flags

from experiments import launcher
from experiments.configs import model_config
from experiments.presets import PRESETS, Preset, check_prepared, dataset_matches
from vrash_jax import storage
from vrash_jax.errors import PROGRESS, VrashError, exit_on_user_error
from vrash_jax.study.stages import Stages
from vrash_jax.study.study import Study
from vrash_jax.study.sweep import STAGES

PREP_MODULES = ('music21', 'tensorflow', 'tensorflow_datasets')  # the `prep` extra
LOG = 'reproduce.log'  # in the workdir: every line, the console's and the library's


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
launcher.define_once(flags.DEFINE_enum, 'preset', 'quick', list(PRESETS), 'tiny (a smoke test of every '
                     'stage), quick (CPU, minutes), cpu (whole corpus, CPU, over an hour) or paper (GPU/TPU).')
launcher.define_once(flags.DEFINE_string, 'workdir', None, 'Everything goes here (default runs/PRESET; gs:// '
                     'with --data_dir); re-running reuses it.')
flags.DEFINE_integer('workers', None, 'Worker processes for the data stages (default: all cores).',
                     lower_bound=1)
flags.DEFINE_bool('plan_only', False, 'Prepare the data, say the plan (runs, widths, a projected wall '
                  'time from steps measured here) and stop before training.')
launcher.define_group_size()
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
