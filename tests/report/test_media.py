"""What the results page plays and shows of a MIDI file: its WAV and its piano roll."""
import matplotlib.image
import numpy as np
import pretty_midi
import pytest

from vrash_jax.report import audio, piano_roll


def two_note_midi(path):
  """A4 from 0 to 0.5 s, silence, C5 from 1.0 to 1.5 s."""
  midi = pretty_midi.PrettyMIDI()
  flute = pretty_midi.Instrument(program=73)
  flute.notes += [pretty_midi.Note(90, 69, 0.0, 0.5), pretty_midi.Note(90, 72, 1.0, 1.5)]
  midi.instruments.append(flute)
  midi.write(str(path))
  return str(path)


def window(samples, rate, start, end):
  return samples[int(start * rate):int(end * rate)]


def dominant_hz(x, rate):
  spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()]


def test_the_wav_of_two_notes_sounds_at_their_times_and_pitches(tmp_path):
  wav = audio.midi_to_wav(two_note_midi(tmp_path / 'two.mid'), str(tmp_path / 'two.wav'))
  samples, rate = audio.read_wav(wav)
  assert rate == audio.SAMPLE_RATE
  assert len(samples) == round((1.5 + audio.TAIL_S) * rate)

  def rms(a, b):
    return float(np.sqrt(np.mean(window(samples, rate, a, b) ** 2)))

  assert rms(0.05, 0.35) > 0.3 and rms(1.05, 1.35) > 0.3
  assert rms(0.55, 0.95) < 1e-3 and rms(1.55, 1.5 + audio.TAIL_S) < 1e-3
  assert abs(dominant_hz(window(samples, rate, 0.05, 0.35), rate) - 440.0) < 5
  assert abs(dominant_hz(window(samples, rate, 1.05, 1.35), rate) - 523.25) < 5


def test_a_silent_midi_gives_a_silent_wav(tmp_path):
  midi = pretty_midi.PrettyMIDI()
  midi.write(str(tmp_path / 'empty.mid'))
  samples, rate = audio.read_wav(audio.midi_to_wav(str(tmp_path / 'empty.mid'), str(tmp_path / 'e.wav')))
  assert len(samples) == round(audio.TAIL_S * rate) and not samples.any()


def test_a_missing_soundfont_is_refused_in_one_sentence(tmp_path):
  from vrash_jax.errors import VrashError
  with pytest.raises(VrashError, match=r"--soundfont '.*none.sf2' is not a file"):
    audio.check_soundfont(str(tmp_path / 'none.sf2'))


def test_piano_roll_cells_put_each_note_at_its_pitch_and_time():
  notes = [(60, 0.0, 0.5), (64, 0.5, 0.6), (60, 1.0, 1.01), (70, 0.0, 0.05)]
  grid = piano_roll.cells(notes, low=59, high=65, duration_s=1.1)
  expected = np.zeros((7, 22), np.uint8)
  expected[5, 0], expected[5, 1:10] = piano_roll.ONSET, piano_roll.SUSTAIN  # C4: row 65 - 60
  expected[1, 10], expected[1, 11] = piano_roll.ONSET, piano_roll.SUSTAIN  # E4
  expected[5, 20] = piano_roll.ONSET  # a short note still takes one column
  expected[0, 0] = piano_roll.ONSET  # B-flat 4 is above the range: drawn on the top row
  np.testing.assert_array_equal(grid, expected)


def test_piano_roll_png_has_the_cells_at_their_pixels(tmp_path):
  grid = piano_roll.cells([(60, 0.0, 0.1), (62, 0.1, 0.2)], low=59, high=63, duration_s=0.25)
  path = piano_roll.write_png(str(tmp_path / 'roll.png'), grid, '#c8322d', high=63)
  pixels = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
  rows, cols = piano_roll.PIXELS
  assert pixels.shape == (5 * rows, 5 * cols, 3)

  def at(r, c):
    return tuple(pixels[r * rows + rows // 2, c * cols + cols // 2])

  assert at(3, 0) == (110, 27, 24)  # onset of C4: 0.55 x the colour
  assert at(3, 1) == (200, 50, 45)  # its sustain: the colour
  assert at(1, 2) == (110, 27, 24)  # onset of D4
  assert at(3, 4) == (piano_roll.C_ROW_GREY,) * 3  # the C row, empty here
  assert at(0, 0) == (255, 255, 255) and at(4, 4) == (255, 255, 255)


def fake_fluidsynth(folder, script):
  path = folder / 'fluidsynth'
  path.write_text('#!/bin/sh\n' + script)
  path.chmod(0o755)
  return str(folder)


def test_a_soundfont_renders_through_the_fluidsynth_program(tmp_path, monkeypatch):
  from vrash_jax.errors import VrashError
  midi, soundfont = two_note_midi(tmp_path / 'two.mid'), tmp_path / 'gm.sf2'
  soundfont.write_bytes(b'sf2')
  # Records its arguments and writes the file named after -F, as fluidsynth does.
  record = 'echo "$@" > "$(dirname "$0")/args"; while [ "$1" != -F ]; do shift; done; echo RIFF > "$2"\n'
  monkeypatch.setenv('PATH', fake_fluidsynth(tmp_path, record) + ':/usr/bin:/bin')
  out = audio.midi_to_wav(midi, str(tmp_path / 'gm.wav'), str(soundfont))
  assert open(out).read() == 'RIFF\n'
  assert (tmp_path / 'args').read_text().split() == [
      '-ni', '-q', '-F', out, '-T', 'wav', '-r', str(audio.SAMPLE_RATE), str(soundfont), midi]
  fake_fluidsynth(tmp_path, 'echo "fluidsynth: error: not a SoundFont" >&2; exit 1\n')
  with pytest.raises(VrashError, match=r'fluidsynth could not render .* \(fluidsynth: error: not a SoundFont\)'):
    audio.midi_to_wav(midi, str(tmp_path / 'bad.wav'), str(soundfont))


def test_a_roll_fits_its_melody_with_at_least_the_minimum_span():
  assert piano_roll.fit([(60, 0.0, 1.0), (62, 1.0, 2.5)]) == (54, 68, 2.5)  # 59..63 widened to 14
  assert piano_roll.fit([(40, 0.0, 1.0), (80, 1.0, 2.0)]) == (39, 81, 2.0)
