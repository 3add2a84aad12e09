"""Sampling, export and the Melodist API: determinism, round trips, MIDI output, bad input."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pretty_midi
import pytest

import midi_factory
from experiments.configs import smoke
from vrash_jax import Melodist, export, input_pipeline, notes, train, train_state
from vrash_jax.errors import VrashError
from vrash_jax.melodist import slerp
from vrash_jax.report import audio


@pytest.fixture(scope='module')
def trained(tiny_dataset, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('trained'))
  train.train_and_evaluate(smoke.get_config('vrash'), tiny_dataset, workdir)
  return workdir


@pytest.fixture(scope='module')
def language_model(tiny_dataset, tmp_path_factory):
  """A workdir of a tiny LM (no encoder) trained one step."""
  workdir = str(tmp_path_factory.mktemp('lm'))
  config = smoke.get_config('lm')
  config.train_steps = config.warmup_steps = 1
  train.train_and_evaluate(config, tiny_dataset, workdir)
  return workdir


@pytest.fixture(scope='module')
def autoencoder(tiny_dataset):
  """A tiny VAE overfit (no KL, no dropout) on four training melodies."""
  config = smoke.get_config('vae')
  config.input_dropout = config.state_dropout = config.output_dropout = 0.0
  config.kl_anneal_steps, config.learning_rate, config.warmup_steps = 10**9, 0.01, 1
  config.hidden, config.train_steps = 32, 10**6
  arrays = input_pipeline.load_split(tiny_dataset, 'train', config.max_len)
  batch = input_pipeline.gather(arrays, np.arange(4))
  state = train_state.create_state(config, jax.random.key(0))
  step = jax.jit(train.make_train_step(config))
  for _ in range(600):
    state, _ = step(state, batch, jax.random.key(1))
  return Melodist(config, state.params), input_pipeline.tracks_from_arrays(arrays, 4)


def same_tracks(a, b):
  return all((getattr(x, f) == getattr(y, f)).all() for x, y in zip(a, b) for f in notes.TOKEN_FIELDS)


def test_export_samples_exactly_like_the_training_checkpoint(trained, tmp_path):
  from_checkpoint = Melodist.from_workdir(trained).sample(6, temperature=0.8, seed=3, length=20)
  path = export.export_workdir(trained, str(tmp_path / 'export'))
  info = json.load(open(os.path.join(path, 'export.json')))
  assert info['model'] == 'vrash' and info['step'] == 8
  loaded = Melodist.load(path)
  assert same_tracks(from_checkpoint, loaded.sample(6, temperature=0.8, seed=3, length=20))
  assert not same_tracks(from_checkpoint, loaded.sample(6, temperature=0.8, seed=4, length=20))
  assert [len(t) for t in from_checkpoint] == [20] * 6


def test_sampled_midi_parses_back_to_the_sampled_tokens(trained, tmp_path):
  (track,) = Melodist.from_workdir(trained).sample(1, seed=0, length=24, program=40, tempo_bucket=2)
  path = Melodist.to_midi(track, str(tmp_path / 's.mid'))
  midi = pretty_midi.PrettyMIDI(path)
  (instrument,) = midi.instruments
  assert instrument.program == 40
  got = [n.pitch for n in instrument.notes]
  want = notes.tokens_to_pitch(track.pitch_class, track.octave)
  assert got == np.where(want > 127, want - 12, want).tolist()
  onsets = np.concatenate([[0], np.cumsum(notes.delay_ratios(track.delay))[:-1]]) * notes.bucket_median_pause_s(2)
  np.testing.assert_allclose([n.start for n in instrument.notes], onsets, atol=2e-3)


def test_encode_decode_round_trip_on_a_trained_model(autoencoder):
  melodist, tracks = autoencoder
  decoded = melodist.decode(melodist.encode(tracks), length=melodist.config.max_len)
  hits = [np.mean(np.concatenate([getattr(t, f) == getattr(d, f)[:len(t)] for f in notes.TOKEN_FIELDS]))
          for t, d in zip(tracks, decoded)]
  assert np.mean(hits) >= 0.9


def test_interpolation_ends_decode_like_the_endpoints(autoencoder):
  melodist, tracks = autoencoder
  path = melodist.interpolate(tracks[0], tracks[1], steps=5)
  z = melodist.encode(tracks[:2])
  np.testing.assert_allclose(path[[0, -1]], z, rtol=1e-5, atol=1e-6)
  assert same_tracks(melodist.decode(path[[0, -1]]), melodist.decode(z))


def test_slerp_keeps_the_norm_between_equal_norm_ends():
  a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
  path = slerp(a, b, 5)
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0)
  np.testing.assert_allclose(path[2], [np.sqrt(0.5)] * 2)
  np.testing.assert_allclose(slerp(a, 2 * a, 3)[1], 1.5 * a)  # parallel ends: linear


def test_bad_input_is_refused_in_one_sentence(trained, tmp_path, language_model):
  melodist = Melodist.from_workdir(trained)
  with pytest.raises(VrashError, match='temperature must be > 0'):
    melodist.sample(2, temperature=0)
  with pytest.raises(VrashError, match='length and n must be > 0'):
    melodist.sample(2, length=0)
  drums = midi_factory.write(str(tmp_path / 'drums.mid'),
                             midi_factory.instrument([36] * 32, [0.25] * 32, is_drum=True))
  with pytest.raises(VrashError, match=r'keeps no track of this file \(drums\)'):
    melodist.encode(drums)
  with pytest.raises(VrashError, match='not a vrash_jax export'):
    Melodist.load(str(tmp_path))
  path = export.export_workdir(trained, str(tmp_path / 'old'))
  info = json.load(open(os.path.join(path, 'export.json')))
  json.dump(dict(info, version=0), open(os.path.join(path, 'export.json'), 'w'))
  with pytest.raises(VrashError, match='re-export it'):
    Melodist.load(path)
  with pytest.raises(VrashError, match='has no latent code'):
    Melodist.from_workdir(language_model).encode(drums)


def test_sample_launcher_writes_midi_and_rejects_bad_flags(trained, tmp_path):
  model = export.export_workdir(trained, str(tmp_path / 'export'))

  def run(*args):
    return subprocess.run([sys.executable, '-m', 'experiments.sample', f'--model={model}', *args],
                          capture_output=True, text=True, timeout=180)

  ok = run(f'--out_dir={tmp_path}/out', '--num=3', '--length=12', '--audio')
  assert ok.returncode == 0, ok.stderr[-2000:]
  files = sorted(os.listdir(tmp_path / 'out'))
  assert files == [f'sample_0{i}.{ext}' for i in range(3) for ext in ('mid', 'wav')]
  midi = pretty_midi.PrettyMIDI(str(tmp_path / 'out' / files[0]))
  assert len(midi.instruments[0].notes) == 12
  samples, rate = audio.read_wav(str(tmp_path / 'out' / files[1]))
  assert abs(len(samples) / rate - midi.get_end_time() - audio.TAIL_S) < 2 / rate
  assert np.abs(samples).max() > 0.5
  bad = run(f'--out_dir={tmp_path}/bad', '--temperature=0')
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith('error: --temperature')


def test_variations_draw_z_around_the_posterior_and_decode_it(autoencoder, monkeypatch):
  melodist, tracks = autoencoder
  melody = notes.Track(tracks[0].pitch_class, tracks[0].octave, tracks[0].delay, 40, 0.17)
  mean, log_var = melodist.posterior(melody)
  np.testing.assert_allclose(mean, melodist.encode(melody), rtol=1e-6)
  at_the_mean = melodist.variations(melody, n=3, spread=0.0)
  assert same_tracks(at_the_mean, melodist.decode(np.stack([mean] * 3), length=len(melody), program=40,
                                                  tempo_bucket=melody.tempo_bucket))
  assert all(t.program == 40 and t.median_pause_s == 0.17 and len(t) == len(melody) for t in at_the_mean)
  drawn = []
  monkeypatch.setattr(melodist, 'decode', lambda z, *args: drawn.append(z) or [melody] * len(z))
  melodist.variations(melody, n=4000, spread=0.5, seed=1)
  z = drawn[0]
  np.testing.assert_allclose(z.mean(0), mean, atol=0.05 * np.exp(0.5 * log_var).max() + 1e-3)
  np.testing.assert_allclose(z.std(0), 0.5 * np.exp(0.5 * log_var), rtol=0.06)


def test_seeds_of_a_model_share_one_compiled_sampler(trained, tmp_path):
  from vrash_jax.melodist import Sampler
  again = Melodist.from_workdir(trained)
  first = Melodist.from_workdir(trained)
  assert again._sampler is first._sampler
  alone = Melodist(first.config, first.params)
  alone._sampler = Sampler(alone.model)  # an unshared sampler: the same melodies
  assert same_tracks(alone.sample(3, seed=2, length=10), first.sample(3, seed=2, length=10))


def test_sample_launcher_writes_variations_of_a_melody_or_one_error_line(trained, language_model, tmp_path):
  model = export.export_workdir(trained, str(tmp_path / 'export'))
  tune = midi_factory.write(str(tmp_path / 'tune.mid'), midi_factory.melody(20, seed=3))

  def run(*args, export_path=model):
    return subprocess.run([sys.executable, '-m', 'experiments.sample', f'--model={export_path}', *args],
                          capture_output=True, text=True, timeout=180)

  ok = run(f'--out_dir={tmp_path}/like', f'--like={tune}', '--num=3')
  assert ok.returncode == 0, ok.stderr[-2000:]
  files = sorted(os.listdir(tmp_path / 'like'))
  assert files == ['original.mid'] + [f'variation_0{i}.mid' for i in range(3)]
  (original,) = pretty_midi.PrettyMIDI(str(tmp_path / 'like' / 'original.mid')).instruments
  assert len(original.notes) == 20
  for name in files[1:]:
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / 'like' / name)).instruments[0].notes) == 20
  drums = midi_factory.write(str(tmp_path / 'drums.mid'),
                             midi_factory.instrument([36] * 32, [0.25] * 32, is_drum=True))
  no_track = run(f'--out_dir={tmp_path}/x', f'--like={drums}')
  assert no_track.returncode == 2 and no_track.stderr.strip().splitlines()[-1] == (
      f'error: {drums}: the pipeline keeps no track of this file (drums)')
  lm = export.export_workdir(language_model, str(tmp_path / 'lm-export'))
  no_encoder = run(f'--out_dir={tmp_path}/y', f'--like={tune}', export_path=lm)
  assert no_encoder.returncode == 2 and no_encoder.stderr.strip().splitlines()[-1] == (
      "error: a 'lm' model has no latent code: use a vae, vrash or tvrash model")
  assert not any(line.startswith('error:') for line in no_encoder.stderr.splitlines()[:-1])
