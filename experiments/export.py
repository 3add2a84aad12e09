"""`vrash-export --workdir W --out PATH`: a self-contained export for sampling."""
from absl import flags

from experiments import launcher
from vrash_jax.errors import exit_on_user_error, require

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A training workdir (local or gs://).')
flags.DEFINE_string('out', None, 'Where the export is written, local or gs:// (replaced if it is an export).')
flags.DEFINE_integer('step', None, 'Export this checkpoint step (among the latest kept) instead of the best.')


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(workdir=FLAGS.workdir, out=FLAGS.out)
  from vrash_jax import export
  launcher.quiet_library_logs()
  print(f'exported to {export.export_workdir(FLAGS.workdir, FLAGS.out, FLAGS.step)}', flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
