"""MIDI -> WAV offline, so a page of results can be listened to in a browser.

By default pretty_midi's own synthesizer renders each note as a sine wave (numpy only, so it
always works); given a General MIDI SoundFont (`.sf2`, e.g. Debian's fluid-soundfont-gm at
/usr/share/sounds/sf2/FluidR3_GM.sf2), the `fluidsynth` program renders real instruments.
Nothing is downloaded. No jax.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import wave

import numpy as np

from vrash_jax.errors import VrashError

SAMPLE_RATE = 16000  # Hz: melodies need no more, and a page of WAVs stays small
TAIL_S = 0.25  # silence kept after the last note ends


def write_wav(path: str, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
  """Mono 16-bit PCM, peak-normalized to 80% of full scale (silence stays silent)."""
  peak = float(np.abs(audio).max()) if audio.size else 0.0
  scaled = audio * (0.8 * 32767 / peak) if peak > 0 else np.zeros_like(audio)
  with wave.open(path, 'wb') as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(sample_rate)
    f.writeframes(scaled.astype('<i2').tobytes())
  return path


def read_wav(path: str) -> tuple[np.ndarray, int]:
  """(samples in [-1, 1], sample rate) of a mono 16-bit WAV."""
  with wave.open(path, 'rb') as f:
    frames = f.readframes(f.getnframes())
    return np.frombuffer(frames, '<i2').astype(np.float32) / 32767, f.getframerate()


def midi_to_wav(midi_path: str, wav_path: str, soundfont: str | None = None,
                sample_rate: int = SAMPLE_RATE) -> str:
  """Renders a MIDI file: sine waves, or the SoundFont's instruments through fluidsynth."""
  if soundfont:
    return _fluidsynth(midi_path, wav_path, soundfont, sample_rate)
  import pretty_midi

  midi = pretty_midi.PrettyMIDI(midi_path)
  audio = midi.synthesize(fs=sample_rate, normalize=False) if midi.instruments else np.zeros(0)
  length = int(round((midi.get_end_time() + TAIL_S) * sample_rate))
  return write_wav(wav_path, np.pad(audio, (0, max(0, length - audio.size)))[:length], sample_rate)


def check_soundfont(soundfont: str) -> None:
  """Refuses a SoundFont that cannot be used, before any rendering starts."""
  if not os.path.isfile(soundfont):
    raise VrashError(f'--soundfont {soundfont!r} is not a file (a General MIDI .sf2, e.g. from '
                     "Debian's fluid-soundfont-gm: /usr/share/sounds/sf2/FluidR3_GM.sf2)")
  if shutil.which('fluidsynth') is None:
    raise VrashError('--soundfont needs the fluidsynth program (Debian: apt-get install fluidsynth)')


def _fluidsynth(midi_path: str, wav_path: str, soundfont: str, sample_rate: int) -> str:
  check_soundfont(soundfont)
  command = ['fluidsynth', '-ni', '-q', '-F', wav_path, '-T', 'wav', '-r', str(sample_rate),
             soundfont, midi_path]
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0 or not os.path.isfile(wav_path):
    detail = (result.stderr.strip().splitlines() or ['no output'])[-1]
    raise VrashError(f'fluidsynth could not render {midi_path} with {soundfont} ({detail})')
  return wav_path
