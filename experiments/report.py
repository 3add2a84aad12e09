"""`vrash-report --workdir W [--soundfont PATH]`: rebuilds W/results.md, the figures and
W/results.html (with its piano rolls and WAVs) from W/results.json, without retraining."""
from absl import flags

from experiments import launcher
from vrash_jax.errors import exit_on_user_error, require

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A sweep or reproduction workdir holding results.json.')
flags.DEFINE_string('soundfont', None, 'Render audio with this General MIDI SoundFont (.sf2) through '
                    'fluidsynth instead of sine waves.')


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(workdir=FLAGS.workdir)
  from vrash_jax.report import render
  print(f'results page: {render.rebuild(FLAGS.workdir, FLAGS.soundfont)}', flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
