"""`Melodist`: load a trained model and sample, encode, decode and interpolate melodies; its
`Sampler` draws every note of a batch of melodies in one jit-compiled `scan`.

    from vrash_jax import Melodist
    m = Melodist.load('exports/vrash')
    tracks = m.sample(4, temperature=0.9, seed=0)
    Melodist.to_midi(tracks[0], 'a.mid')
    path = m.interpolate('a.mid', 'b.mid', steps=8)      # latents along the slerp
    tracks = m.decode(path)
    tracks = m.variations('a.mid', n=8)                  # z drawn around a.mid's posterior
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from vrash_jax import config_rules, evaluation, export, models, notes, storage
from vrash_jax.errors import VrashError
from vrash_jax.midi import convert
from vrash_jax.midi.tracks import Rejected
from vrash_jax.models import HEADS, MelodyModel

Array = jax.Array
Melody = Union[str, os.PathLike, notes.Track]
DEFAULT_PROGRAM = 73  # flute, as the default corpus's Essen tunes
DEFAULT_TEMPO_BUCKET = 3  # median pause 0.2-0.3 s


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
  """`steps` points from a to b along the great circle (linear where a and b are parallel)."""
  t = np.linspace(0.0, 1.0, steps)[:, None]
  cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if omega < 1e-6:
    return (1 - t) * a + t * b
  return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def track_from_midi(path: str | os.PathLike) -> notes.Track:
  """The first track the data rules keep from a MIDI file, normalized as in training."""
  rules = convert.TrackRules()
  try:
    data = (storage.path(path).read_bytes()[:rules.max_file_bytes + 1] if storage.is_remote(path)
            else convert.read_bytes(os.fspath(path), rules))
    found = convert.file_tracks(data, rules)
  except OSError as e:
    raise VrashError(f'{path}: cannot read this file ({e.strerror or e})') from None
  except Rejected as e:
    raise VrashError(f'{path}: the pipeline rejects this file ({e.reason} {e.detail})'.strip()) from None
  if not found.kept:
    reasons = ', '.join(sorted({reason for _, reason, _ in found.rejected})) or 'no track'
    raise VrashError(f'{path}: the pipeline keeps no track of this file ({reasons})')
  return found.kept[0][1]


def as_track(melody: Melody) -> notes.Track:
  """A track as it is, or a MIDI file's first usable track (`track_from_midi`)."""
  return melody if isinstance(melody, notes.Track) else track_from_midi(melody)


# The LM and VRASH feed each sampled note back as the next step's history; the VAE's decoder
# sees only z, so its notes are drawn from per-step distributions that the previous notes do not
# change. z comes from the prior unless given (e.g. an encoded melody).


class Sampler:
  """Compiled sampling and encoding for one model; parameters are arguments, not state."""

  def __init__(self, model: MelodyModel):
    self.model = model
    self._sample = jax.jit(self._sample_impl, static_argnames=('length', 'greedy'))
    self._encode = jax.jit(self._encode_impl)

  def prior(self, rng: Array, num: int) -> Array:
    return jax.random.normal(rng, (num, self.model.config.latent_dim))

  def sample(self, params, rng: Array, meta: Mapping[str, Array], length: int,
             temperature: float = 1.0, z: Array | None = None, greedy: bool = False
             ) -> dict[str, Array]:
    """Tokens per head [N, length]; N is the size of the meta arrays."""
    num = meta[next(iter(notes.META_FIELDS))].shape[0]
    if self.model.has_latent and z is None:
      z = self.prior(jax.random.fold_in(rng, 1), num)
    return self._sample(params, jax.random.fold_in(rng, 0), dict(meta), z,
                        jnp.float32(temperature), length=length, greedy=greedy)

  def encode(self, params, batch: Mapping[str, Array]) -> tuple[Array, Array]:
    """(posterior mean, log-variance) of each melody in the batch."""
    return self._encode(params, dict(batch))

  def _encode_impl(self, params, batch):
    return self.model.apply({'params': params}, batch, method=MelodyModel.encode)

  def start(self, params, meta: Mapping[str, Array], z: Array | None, length: int):
    """The scan carry before the first of `length` notes: decoder state (a Transformer's cache)
    and start tokens."""
    num = meta[next(iter(notes.META_FIELDS))].shape[0]
    state = self.model.apply({'params': params}, z, num, length, method=MelodyModel.initial_decoder_state)
    return state, {f: jnp.full((num,), notes.VOCAB_SIZES[f], jnp.int32) for f in HEADS}

  def step(self, params, meta: Mapping[str, Array], z: Array | None, temperature: Array,
           greedy: bool, carry, key: Array):
    """Draws one note per melody: (carry, tokens) -> (new carry, tokens {head: [N]})."""
    state, previous = carry
    num = previous[HEADS[0]].shape[0]
    batch = dict(meta, mask=jnp.ones((num, 1), bool),
                 history={f: previous[f][:, None] for f in HEADS})
    logits, state = self.model.apply({'params': params}, batch, z, True, state,
                                     method=MelodyModel.decode)
    tokens = {}
    for f, k in zip(HEADS, jax.random.split(key, len(HEADS))):
      last = logits[f][:, 0]
      tokens[f] = (jnp.argmax(last, -1) if greedy else
                   jax.random.categorical(k, last / temperature)).astype(jnp.int32)
    return (state, tokens), tokens

  def _sample_impl(self, params, rng, meta, z, temperature, length, greedy):
    step = functools.partial(self.step, params, meta, z, temperature, greedy)
    _, out = jax.lax.scan(step, self.start(params, meta, z, length), jax.random.split(rng, length))
    return {f: out[f].T for f in HEADS}


_SAMPLERS: dict[str, Sampler] = {}


def shared_sampler(config) -> Sampler:
  """The one `Sampler` of every model with this config but for its seed: a model's seeds (and
  each Melodist loaded again) share its compiled sampling and encoding."""
  key = json.dumps({k: v for k, v in config.to_dict().items() if k != 'seed'}, sort_keys=True)
  if key not in _SAMPLERS:
    _SAMPLERS[key] = Sampler(models.MelodyModel(config))
  return _SAMPLERS[key]


def _with_dtype(config, dtype: str | None):
  """`config`, or a copy computing in `dtype`."""
  if dtype is None:
    return config
  config = config.copy_and_resolve_references()
  config.dtype = dtype
  config_rules.validate(config)
  return config


class Melodist:
  """A trained model (LM, VAE, VRASH or a Transformer kin) ready to make melodies."""

  def __init__(self, config, params: Any):
    self.config, self.params = config, params
    self.model = models.MelodyModel(config)
    self._sampler = shared_sampler(config)

  @classmethod
  def load(cls, path: str, dtype: str | None = None) -> 'Melodist':
    """From an export written by `vrash-export`; computes in the dtype it was trained with
    unless `dtype` ('float32' or 'bfloat16') says otherwise."""
    config, params, _ = export.load(path)
    return cls(_with_dtype(config, dtype), params)

  @classmethod
  def from_workdir(cls, workdir: str, step: int | None = None, dtype: str | None = None) -> 'Melodist':
    """From a training checkpoint: the best by the valid bound, else the latest, unless `step`."""
    config, state = evaluation.restore_for_inference(workdir, step)
    return cls(_with_dtype(config, dtype), jax.device_get(state.params))

  def _meta(self, n: int, program: int, tempo_bucket: int) -> dict[str, jax.Array]:
    if not 0 <= program < 128 or not 0 <= tempo_bucket < notes.NUM_TEMPO_BUCKETS:
      raise VrashError(f'program must be in 0..127 and tempo_bucket in 0..{notes.NUM_TEMPO_BUCKETS - 1}')
    return {'family': jnp.full((n,), notes.program_family(program), jnp.int32),
            'tempo_bucket': jnp.full((n,), tempo_bucket, jnp.int32)}

  def _tracks(self, tokens, program: int, tempo_bucket: int) -> list[notes.Track]:
    tokens = jax.device_get(tokens)
    pause = notes.bucket_median_pause_s(tempo_bucket)
    return [notes.Track(*(np.asarray(tokens[f][i]) for f in notes.TOKEN_FIELDS), program, pause)
            for i in range(len(tokens['delay']))]

  def sample(self, n: int = 16, temperature: float = 1.0, seed: int = 0, length: int = 64,
             program: int = DEFAULT_PROGRAM, tempo_bucket: int = DEFAULT_TEMPO_BUCKET,
             z: np.ndarray | None = None) -> list[notes.Track]:
    """`n` new melodies; VAE/VRASH draw z from the prior unless `z` [n, Z] is given."""
    if temperature <= 0:
      raise VrashError(f'temperature must be > 0, got {temperature}')
    if length <= 0 or n <= 0:
      raise VrashError(f'length and n must be > 0, got length={length}, n={n}')
    tokens = self._sampler.sample(self.params, jax.random.key(seed), self._meta(n, program, tempo_bucket),
                                  length, temperature, None if z is None else jnp.asarray(z))
    return self._tracks(tokens, program, tempo_bucket)

  def _require_latent(self) -> None:
    if not self.model.has_latent:
      raise VrashError(f'a {self.config.model!r} model has no latent code: use a vae, vrash or tvrash model')

  def encode(self, melodies: Melody | Sequence[Melody]) -> np.ndarray:
    """Posterior means z [N, Z] (or [Z] for one melody) of MIDI files or tracks."""
    return self.posterior(melodies)[0]

  def posterior(self, melodies: Melody | Sequence[Melody]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, log-variance) of q(z | melody), each [N, Z] (or [Z] for one melody), of MIDI
    files or tracks; a melody longer than the model's max_len is read up to it."""
    self._require_latent()
    single = isinstance(melodies, (str, os.PathLike, notes.Track))
    tracks = [as_track(m) for m in ([melodies] if single else melodies)]
    mean, log_var = (np.asarray(x) for x in self._sampler.encode(self.params, self._batch(tracks)))
    return (mean[0], log_var[0]) if single else (mean, log_var)

  def _batch(self, tracks: Sequence[notes.Track]) -> dict[str, np.ndarray]:
    """Tracks as one batch padded to the model's max_len."""
    width = self.config.max_len
    batch = {f: np.zeros((len(tracks), width), np.int32) for f in notes.TOKEN_FIELDS}
    batch['mask'] = np.zeros((len(tracks), width), bool)
    for i, t in enumerate(tracks):
      n = min(len(t), width)
      for f in notes.TOKEN_FIELDS:
        batch[f][i, :n] = getattr(t, f)[:n]
      batch['mask'][i, :n] = True
    batch['family'] = np.array([t.family for t in tracks], np.int32)
    batch['tempo_bucket'] = np.array([t.tempo_bucket for t in tracks], np.int32)
    return batch

  def decode(self, z: np.ndarray, length: int | None = None, temperature: float | None = None,
             seed: int = 0, program: int = DEFAULT_PROGRAM,
             tempo_bucket: int = DEFAULT_TEMPO_BUCKET) -> list[notes.Track]:
    """Melodies from latents z [N, Z]: the most likely note at each step, or sampled at a
    `temperature` > 0."""
    self._require_latent()
    z = np.atleast_2d(np.asarray(z, np.float32))
    length = length or self.config.max_len
    if temperature is not None and temperature <= 0:
      raise VrashError(f'temperature must be > 0, got {temperature}')
    tokens = self._sampler.sample(self.params, jax.random.key(seed), self._meta(len(z), program, tempo_bucket),
                                  length, temperature or 1.0, jnp.asarray(z), greedy=temperature is None)
    return self._tracks(tokens, program, tempo_bucket)

  def interpolate(self, a: Melody | np.ndarray, b: Melody | np.ndarray, steps: int = 8) -> np.ndarray:
    """`steps` latents [steps, Z] on the slerp from a to b (melodies are encoded first)."""
    self._require_latent()
    if steps < 2:
      raise VrashError(f'steps must be at least 2, got {steps}')
    za, zb = (np.asarray(x) if isinstance(x, np.ndarray) else self.encode(x) for x in (a, b))
    return slerp(za, zb, steps)

  def variations(self, melody: Melody, n: int = 8, spread: float = 1.0, temperature: float | None = None,
                 seed: int = 0, length: int | None = None) -> list[notes.Track]:
    """`n` variations of a melody: z drawn around its posterior, z = mean + spread * sigma * eps
    (spread 1: samples of q(z | melody); 0: its mean, n times), each decoded (the most likely
    note at each step, or sampled at a `temperature` > 0) with the melody's own instrument and
    tempo, as long as the melody unless `length` says otherwise."""
    if n <= 0 or spread < 0:
      raise VrashError(f'n must be > 0 and spread >= 0, got n={n}, spread={spread}')
    track = as_track(melody)
    mean, log_var = self.posterior(track)
    eps = np.random.default_rng(seed).standard_normal((n, mean.shape[-1])).astype(np.float32)
    z = mean + spread * np.exp(0.5 * log_var) * eps
    out = self.decode(z, length or len(track), temperature, seed, track.program, track.tempo_bucket)
    return [notes.Track(t.pitch_class, t.octave, t.delay, track.program, track.median_pause_s) for t in out]

  @staticmethod
  def to_midi(track: notes.Track, path: str) -> str:
    """Writes a track as MIDI at its median pause (the tempo of its source, or of its bucket)."""
    notes.track_to_midi(track, path)
    return path
