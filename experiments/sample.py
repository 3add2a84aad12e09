"""`vrash-sample --model PATH --out_dir DIR [--num 16] [--temperature 1.0] [--length 64] [--seed 0]`,
`... --interpolate a.mid,b.mid --steps 8`, or `... --like MELODY.mid --num 8 [--spread 1.0]`
(variations of a melody: z drawn around its posterior): melodies as MIDI files (`--audio`: and
WAVs)."""
import dataclasses
import os

from absl import flags

from experiments import launcher
from vrash_jax import notes, storage
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
flags.DEFINE_list('interpolate', None, 'Two MIDI files: decode the slerp between their latents (the most '
                  'likely notes unless --temperature is given).')
flags.DEFINE_integer('steps', 8, 'Points on the interpolation path, ends included.')
flags.DEFINE_string('like', None, 'A MIDI file: write --num variations of its first usable track, z drawn '
                    'around its posterior and decoded with its instrument and tempo (the most likely notes '
                    'unless --temperature is given; as long as the melody unless --length is given); '
                    'original.mid is the melody as the model reads it.')
flags.DEFINE_float('spread', 1.0, 'With --like: z = mean + spread * sigma * noise (0: the posterior mean).',
                   lower_bound=0.0)
flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Compute dtype (default: the one the '
                  'model was trained with).')
flags.DEFINE_bool('audio', False, 'Also write a WAV beside each MIDI file (sine waves, or the '
                  'instruments of --soundfont).')
flags.DEFINE_string('soundfont', None, 'A General MIDI SoundFont (.sf2) to render the WAVs with '
                    'through fluidsynth (implies --audio).')


@dataclasses.dataclass(frozen=True)
class Request:
  """What to make: `num` samples; or the path between two melodies (`interpolate`); or `num`
  variations of a melody (`like`)."""
  num: int = 16
  temperature: float | None = 1.0  # None: the most likely note at each step (decoding only)
  length: int | None = 64  # None: as long as the melody (variations only)
  seed: int = 0
  program: int = 73
  tempo_bucket: int = 3
  interpolate: tuple[str, ...] = ()
  steps: int = 8
  like: str | None = None
  spread: float = 1.0

  def check(self) -> None:
    if any(x is not None and x <= 0 for x in (self.temperature, self.length, self.num)):
      raise VrashError(f'--temperature, --length and --num must be > 0 '
                       f'(got {self.temperature}, {self.length}, {self.num})')
    if self.interpolate and self.like:
      raise VrashError('--interpolate and --like are two different requests: give one')
    if self.interpolate and len(self.interpolate) != 2:
      raise VrashError('--interpolate takes exactly two MIDI files: a.mid,b.mid')
    for path in self.interpolate + ((self.like,) if self.like else ()):
      if not storage.path(path).is_file():
        raise VrashError(f'{path!r} is not a file')


def sample_to_files(model: str, out_dir: str, request: Request, audio: bool = False,
                    soundfont: str | None = None, dtype: str | None = None) -> list[str]:
  """Makes what `request` asks with an export, and writes one MIDI file per melody, and with
  `audio` (or a `soundfont`) a WAV beside each."""
  from vrash_jax import Melodist
  from vrash_jax.melodist import as_track
  from vrash_jax.report import audio as wav
  request.check()
  if soundfont:
    wav.check_soundfont(soundfont)
  like = as_track(request.like) if request.like else None  # a file with no usable track fails first
  tracks, names = melodies(Melodist.load(model, dtype), request, like)
  with storage.staged(out_dir) as folder:  # on gs://: written here, then uploaded
    for name, track in zip(names, tracks):
      Melodist.to_midi(track, os.path.join(folder, name))
      if audio or soundfont:
        wav.midi_to_wav(os.path.join(folder, name), os.path.join(folder, name[:-4] + '.wav'), soundfont)
  return [storage.join(out_dir, name) for name in names]


def melodies(melodist, r: Request, like: notes.Track | None = None) -> tuple[list[notes.Track], list[str]]:
  """The tracks a request makes (`like`: the track of r.like), and their file names."""
  if r.interpolate:
    tracks = melodist.decode(melodist.interpolate(*r.interpolate, steps=r.steps), r.length, r.temperature,
                             r.seed, r.program, r.tempo_bucket)
    return tracks, [f'interpolation_{i:02d}.mid' for i in range(len(tracks))]
  if like is not None:
    tracks = melodist.variations(like, r.num, r.spread, r.temperature, r.seed, r.length)
    return [like] + tracks, ['original.mid'] + [f'variation_{i:02d}.mid' for i in range(len(tracks))]
  tracks = melodist.sample(r.num, r.temperature, r.seed, r.length, r.program, r.tempo_bucket)
  return tracks, [f'sample_{i:02d}.mid' for i in range(len(tracks))]


def request_from_flags() -> Request:
  """The request the flags make: decoding (interpolations, variations) takes the most likely
  notes unless --temperature is given; variations are as long as their melody unless --length is."""
  decoding = bool(FLAGS.interpolate or FLAGS.like)
  return Request(FLAGS.num, None if decoding and not FLAGS['temperature'].present else FLAGS.temperature,
                 None if FLAGS.like and not FLAGS['length'].present else FLAGS.length, FLAGS.seed, FLAGS.program,
                 FLAGS.tempo_bucket, tuple(FLAGS.interpolate or ()), FLAGS.steps, FLAGS.like, FLAGS.spread)


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(model=FLAGS.model, out_dir=FLAGS.out_dir)
  launcher.quiet_library_logs()
  paths = sample_to_files(FLAGS.model, FLAGS.out_dir, request_from_flags(), FLAGS.audio, FLAGS.soundfont,
                          FLAGS.dtype)
  wavs = ' and WAVs' if FLAGS.audio or FLAGS.soundfont else ''
  print(f'wrote {len(paths)} MIDI files{wavs} to {FLAGS.out_dir}', flush=True)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
