"""`vrash-eval --workdir W --data_dir OUT --split test`: one JSON line of per-note figures."""
import json

from absl import app, flags

from vrash_jax.errors import VrashError, exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A training workdir (its latest checkpoint is evaluated).')
flags.DEFINE_string('data_dir', None, 'Folder holding the prepared vrash_midi dataset.')
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Which split to evaluate.')
flags.DEFINE_integer('step', None, 'Evaluate this checkpoint step instead of the latest.')


@exit_on_user_error
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise VrashError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.workdir or not FLAGS.data_dir:
    raise VrashError('--workdir and --data_dir are required')
  from vrash_jax import evaluation
  from vrash_jax.metric_writers import quiet_library_logs
  quiet_library_logs()
  print(json.dumps(evaluation.evaluate_checkpoint(FLAGS.workdir, FLAGS.data_dir, FLAGS.split, FLAGS.step)),
        flush=True)


def run() -> None:
  app.run(main)


if __name__ == '__main__':
  run()
