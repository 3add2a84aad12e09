"""`vrash-eval --workdir W --data_dir OUT --split test`: one JSON line of per-note figures."""
import json

from absl import flags

from experiments import launcher
from vrash_jax.errors import exit_on_user_error, require

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A training workdir, local or gs:// (its best checkpoint by the valid bound is '
                    'evaluated, else its latest).')
flags.DEFINE_string('data_dir', None, 'Folder holding the prepared vrash_midi dataset (local or gs://).')
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Which split to evaluate.')
flags.DEFINE_integer('step', None, 'Evaluate this checkpoint step (among the latest kept) instead.')
flags.DEFINE_integer('iw_samples', 16, 'Posterior samples of the importance-weighted NLL bound '
                     '(0: leave it out).', lower_bound=0)


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(workdir=FLAGS.workdir, data_dir=FLAGS.data_dir)
  from vrash_jax import evaluation
  launcher.quiet_library_logs()
  print(json.dumps(evaluation.evaluate_checkpoint(FLAGS.workdir, FLAGS.data_dir, FLAGS.split, FLAGS.step,
                                                      FLAGS.iw_samples)),
        flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
