"""`vrash-train --config experiments/configs/vrash.py --data_dir OUT --workdir W [--config.x=y]`."""
import os

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from experiments import launcher
from vrash_jax import config_rules, storage
from vrash_jax.errors import VrashError, exit_on_user_error, require

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A config file from experiments/configs/.')
flags.DEFINE_string('data_dir', None, 'Folder holding the prepared vrash_midi dataset (local or gs://).')
flags.DEFINE_string('workdir', None, 'Checkpoints and metrics go here (local or gs://); a run resumes from it.')
launcher.define_host_flags()


def load_config() -> ml_collections.ConfigDict:
  """The --config flag's value; a missing or broken file becomes a one-line VrashError."""
  path = config_flags.get_config_filename(FLAGS['config'])
  if not path or not os.path.isfile(path.split(':', 1)[0]):  # 'file.py:arg' passes arg
    raise VrashError(f'--config {path!r} is not a file (the configs live in experiments/configs/)')
  try:
    return FLAGS.config.lock()  # ml_collections reports load errors on first access
  except (OSError, AttributeError) as e:
    raise VrashError(f'cannot load --config {path!r}: {str(e).strip().splitlines()[-1]}') from None


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(data_dir=FLAGS.data_dir, workdir=FLAGS.workdir)
  config = load_config()
  config_rules.validate(config)  # before jax starts (train_and_evaluate adds the device count)
  from vrash_jax import train  # after flag parsing: jax starts here
  launcher.quiet_library_logs()
  launcher.join_hosts()
  train.enable_compilation_cache(storage.join(FLAGS.workdir, 'jax_cache'))
  result = train.train_and_evaluate(config, FLAGS.data_dir, FLAGS.workdir)
  if not result['stopped_by']:
    logging.info('finished at step %d', result['step'])


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
