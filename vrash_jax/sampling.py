"""Batched, jit-compiled melody sampling: one `scan` step per note, all melodies at once.

The LM and VRASH feed each sampled note back as the next step's history; the VAE's decoder
sees only z, so its notes are drawn from per-step distributions that the previous notes do
not change. z comes from the prior unless given (e.g. an encoded melody).
"""
from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp

from vrash_jax import notes
from vrash_jax.models import HEADS, MelodyModel

Array = jax.Array


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

  def start(self, params, meta: Mapping[str, Array], z: Array | None):
    """The scan carry before the first note: decoder state and start tokens."""
    num = meta[next(iter(notes.META_FIELDS))].shape[0]
    state = self.model.apply({'params': params}, z, num, method=MelodyModel.initial_decoder_state)
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
    _, out = jax.lax.scan(step, self.start(params, meta, z), jax.random.split(rng, length))
    return {f: out[f].T for f in HEADS}
