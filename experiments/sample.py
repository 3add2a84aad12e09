"""`vrash-sample --model PATH --out_dir DIR [--num 16] [--temperature 1.0] [--length 64] [--seed 0]`
or `... --interpolate a.mid,b.mid --steps 8`: melodies as MIDI files (`--audio`: and WAVs)."""
import os

from absl import flags

from experiments import launcher
from vrash_jax import storage
from vrash_jax.errors import VrashError, exit_on_user_error, require

FLAGS = flags.FLAGS
flags.DEFINE_string('model', None, 'An export written by vrash-export (a local path or gs://).')
flags.DEFINE_string('out_dir', None, 'Where the MIDI files go (a local folder or gs://).')
flags.DEFINE_integer('num', 16, 'Melodies to sample.')
flags.DEFINE_float('temperature', 1.0, 'Softmax temperature (> 0).')
flags.DEFINE_integer('length', 64, 'Notes per melody.')
flags.DEFINE_integer('seed', 0, 'Random seed.')
flags.DEFINE_integer('program', 73, 'General MIDI program of the melodies (meta-information).')
flags.DEFINE_integer('tempo_bucket', 3, 'Tempo bucket (meta-information), 0 = fastest.')
flags.DEFINE_list('interpolate', None, 'Two MIDI files: decode the slerp between their latents.')
flags.DEFINE_integer('steps', 8, 'Points on the interpolation path, ends included.')
flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Compute dtype (default: the one the '
                  'model was trained with).')
flags.DEFINE_bool('audio', False, 'Also write a WAV beside each MIDI file (sine waves, or the '
                  'instruments of --soundfont).')
flags.DEFINE_string('soundfont', None, 'A General MIDI SoundFont (.sf2) to render the WAVs with '
                    'through fluidsynth (implies --audio).')


def sample_to_files(model: str, out_dir: str, num: int, temperature: float, length: int, seed: int,
                    program: int, tempo_bucket: int, interpolate: list[str] | None = None,
                    steps: int = 8, audio: bool = False, soundfont: str | None = None,
                    dtype: str | None = None) -> list[str]:
  """Samples (or interpolates) with an export and writes one MIDI file per melody, and with
  `audio` (or a `soundfont`) a WAV beside each."""
  from vrash_jax import Melodist
  from vrash_jax.report import audio as wav
  if temperature <= 0 or length <= 0 or num <= 0:
    raise VrashError(f'--temperature, --length and --num must be > 0 '
                     f'(got {temperature}, {length}, {num})')
  if soundfont:
    wav.check_soundfont(soundfont)
  melodist = Melodist.load(model, dtype)
  if interpolate:
    if len(interpolate) != 2:
      raise VrashError('--interpolate takes exactly two MIDI files: a.mid,b.mid')
    for path in interpolate:
      if not storage.path(path).is_file():
        raise VrashError(f'--interpolate: {path!r} is not a file')
    tracks = melodist.decode(melodist.interpolate(*interpolate, steps=steps), length=length,
                             program=program, tempo_bucket=tempo_bucket)
    prefix = 'interpolation'
  else:
    tracks = melodist.sample(num, temperature, seed, length, program, tempo_bucket)
    prefix = 'sample'
  names = [f'{prefix}_{i:02d}.mid' for i in range(len(tracks))]
  with storage.staged(out_dir) as folder:  # on gs://: written here, then uploaded
    for name, track in zip(names, tracks):
      melodist.to_midi(track, os.path.join(folder, name))
      if audio or soundfont:
        wav.midi_to_wav(os.path.join(folder, name), os.path.join(folder, name[:-4] + '.wav'), soundfont)
  return [storage.join(out_dir, name) for name in names]


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(model=FLAGS.model, out_dir=FLAGS.out_dir)
  paths = sample_to_files(FLAGS.model, FLAGS.out_dir, FLAGS.num, FLAGS.temperature, FLAGS.length,
                          FLAGS.seed, FLAGS.program, FLAGS.tempo_bucket, FLAGS.interpolate, FLAGS.steps,
                          FLAGS.audio, FLAGS.soundfont, FLAGS.dtype)
  wavs = ' and WAVs' if FLAGS.audio or FLAGS.soundfont else ''
  print(f'wrote {len(paths)} MIDI files{wavs} to {FLAGS.out_dir}', flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
