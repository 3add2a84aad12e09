"""LM, VAE and VRASH (paper Figs. 2-4), and their Transformer kin, as one model family chosen
by `config.model`.

* LM: an RHN decoder reads the previous notes (and the track's meta-information) and
  predicts the next note.
* VAE: an RHN encoder reads the whole melody; its final state gives the mean and
  log-variance of z; the decoder reconstructs the melody from z alone: z initializes its
  state and is fed at every step, with no previous-note inputs.
* VRASH: the VAE whose decoder also receives the previous notes ("history"), some of them
  hidden by note dropout so that the decoder has to rely on z.
* Transformer LM (`tlm`): the LM with a causal Transformer decoder (`transformer.py`) in place
  of the RHN: attention over the previous notes instead of a recurrent state.
* Transformer VRASH (`tvrash`): VRASH's RHN encoder and a Transformer decoder that gets z added
  to every input (`latent_to_input`); with that projection zero it is the Transformer LM.

Every model has three softmax heads: pitch class, octave and delay. A note's input is the
concatenation of its pitch-class, octave and delay embeddings and the meta-information
embeddings (paper Sec. 2 end). Each embedding table has one extra row, the start token that
stands before the first note.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vrash_jax import notes
from vrash_jax.config_rules import MODEL_SPECS, MODELS
from vrash_jax.rhn import RHN, scan_unroll
from vrash_jax.transformer import TransformerDecoder, init_cache

Array = jax.Array
HEADS = notes.TOKEN_FIELDS


def shift_right(tokens: Array, start_token: int) -> Array:
  """[B, T] -> the same with the start token prepended and the last note dropped."""
  return jnp.concatenate([jnp.full_like(tokens[:, :1], start_token), tokens[:, :-1]], axis=1)


def _embed(vocab: int, size: int, dtype: Any, name: str, tokens: Array) -> Array:
  """A float32 table's rows, looked up in float32 and then cast to DTYPE: the lookup's gradient
  (a scatter-add of every token's row into a table of a few rows) then accumulates in float32.
  A bfloat16 table made that scatter-add the slowest part of a bfloat16 step on a GPU."""
  return nn.Embed(vocab, size, dtype=jnp.float32, name=name)(tokens).astype(dtype)


class NoteEmbed(nn.Module):
  """(pitch class, octave, delay) tokens [B, T] each -> concatenated embeddings [B, T, E]."""
  sizes: Mapping[str, int]  # embedding size per token field
  dtype: Any = jnp.float32  # of the embeddings (the tables stay float32)

  @nn.compact
  def __call__(self, tokens: Mapping[str, Array]) -> Array:
    return jnp.concatenate([_embed(notes.VOCAB_SIZES[f] + 1, self.sizes[f], self.dtype, f'{f}_embed', tokens[f])
                            for f in HEADS], axis=-1)


class MetaEmbed(nn.Module):
  """Track meta-information [B] per field -> concatenated embeddings [B, M]."""
  size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch: Mapping[str, Array]) -> Array:
    return jnp.concatenate([_embed(n, self.size, self.dtype, f'{f}_embed', batch[f])
                            for f, n in notes.META_FIELDS.items()], axis=-1)


def _broadcast_time(x: Array, length: int) -> Array:
  return jnp.broadcast_to(x[:, None, :], (x.shape[0], length, x.shape[-1]))


# The decoder's parameters: what encoder pretraining (Li et al. 2019) re-initializes.
DECODER_PARAMS = ('decoder', 'latent_to_state', 'attention_in', 'latent_to_input') + tuple(f'heads_{f}' for f in HEADS)


class MelodyModel(nn.Module):
  """One of LM / VAE / VRASH; `__call__` returns (logits per head, (mean, log-variance)).

  `config.dtype` is the compute dtype of embeddings, RHN matmuls and heads; parameters, the
  RHN state across time, the posterior and the returned logits are float32.
  """
  config: ml_collections.ConfigDict

  def setup(self):
    c = self.config
    if c.model not in MODELS:
      raise ValueError(f'config.model must be one of {MODELS}, not {c.model!r}')
    compute = jnp.dtype(c.dtype)
    sizes = {'pitch_class': c.pitch_embed, 'octave': c.octave_embed, 'delay': c.delay_embed}
    self.note_embed = NoteEmbed(sizes, compute)
    self.meta_embed = MetaEmbed(c.meta_embed, compute)
    rhn = dict(hidden=c.hidden, depth=c.depth, transform_bias=c.transform_bias,
               input_dropout=c.input_dropout, state_dropout=c.state_dropout,
               output_dropout=c.output_dropout, dtype=compute, custom_backward=c.custom_backward,
               scan_unroll=scan_unroll(c.scan_unroll), kernel=c.rhn_kernel)
    if self.attends:
      self.attention_in = nn.Dense(c.attention_width, dtype=compute)
      self.decoder = TransformerDecoder(c.attention_layers, c.attention_heads, c.attention_dropout, compute)
    else:
      self.decoder = RHN(**rhn)
    if self.has_latent:
      self.encoder = RHN(**rhn)
      self.posterior = nn.Dense(2 * c.latent_dim)
      if self.attends:
        self.latent_to_input = nn.Dense(c.attention_width, dtype=compute)
      else:
        self.latent_to_state = nn.Dense(c.hidden)
    self.heads = {f: nn.Dense(notes.VOCAB_SIZES[f], dtype=compute) for f in HEADS}

  @property
  def has_latent(self) -> bool:
    return MODEL_SPECS[self.config.model].latent

  @property
  def has_history(self) -> bool:
    return MODEL_SPECS[self.config.model].history

  @property
  def attends(self) -> bool:
    """Whether the decoder is a Transformer (else an RHN)."""
    return MODEL_SPECS[self.config.model].attention

  def encode(self, batch: Mapping[str, Array], deterministic: bool = True) -> tuple[Array, Array]:
    """Melody -> (mean, log-variance) of q(z | melody), each [B, Z]."""
    length = batch['mask'].shape[1]
    x = jnp.concatenate([self.note_embed(batch),
                         _broadcast_time(self.meta_embed(batch), length)], axis=-1)
    _, final = self.encoder(x, batch['mask'], deterministic=deterministic)
    mean, log_var = jnp.split(self.posterior(final), 2, axis=-1)
    return mean, log_var

  def initial_decoder_state(self, z: Array | None, batch_size: int, length: int = 0) -> Any:
    """The decoder's state before the first note: from z for VAE/VRASH, zeros for the LM; for a
    Transformer, an empty cache for `length` notes."""
    c = self.config
    if self.attends:
      return init_cache(batch_size, length, c.attention_width, c.attention_heads, c.attention_layers,
                        jnp.dtype(c.dtype))
    if self.has_latent:
      return jnp.tanh(self.latent_to_state(z))
    return jnp.zeros((batch_size, self.config.hidden), jnp.float32)

  def decode(self, batch: Mapping[str, Array], z: Array | None, deterministic: bool = True,
             initial_state: Array | None = None, note_dropout: float | Array | None = None
             ) -> tuple[dict[str, Array], Array]:
    """Teacher-forced decoding -> (logits per head [B, T, V], final decoder state).

    `batch` holds the notes to predict; history inputs are those notes shifted right.
    `initial_state` continues an earlier call (step-by-step sampling; a Transformer's cache).
    `note_dropout` replaces the config's (an array for runs trained as one group, each with its
    own rate).
    """
    c = self.config
    rate = c.note_dropout if note_dropout is None else note_dropout
    mask = batch['mask']
    length = mask.shape[1]
    parts = [_broadcast_time(self.meta_embed(batch), length)]
    if initial_state is None and not self.attends:
      initial_state = self.initial_decoder_state(z, mask.shape[0])
    if self.has_latent and not self.attends:
      parts.append(_broadcast_time(z, length))
    if self.has_history:
      history = self.note_embed(batch['history'] if 'history' in batch else
                                {f: shift_right(batch[f], notes.VOCAB_SIZES[f]) for f in HEADS})
      if not deterministic and (isinstance(rate, jax.Array) or rate > 0):
        # Drawn for max_len positions and cut: a note's mask does not depend on how far its
        # batch is padded (a run trained in a group, padded to the group's width, sees its own).
        keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - rate, (mask.shape[0], max(c.max_len, length)))
        history = history * keep[:, :length, None]
      parts.append(history)
    inputs = jnp.concatenate(parts, axis=-1)
    if self.attends:
      inputs = self.attention_in(inputs)
      if self.has_latent:
        inputs = inputs + self.latent_to_input(z)[:, None, :]
    outputs, final = self.decoder(inputs, mask, initial_state, deterministic=deterministic)
    return {f: self.heads[f](outputs).astype(jnp.float32) for f in HEADS}, final

  def __call__(self, batch: Mapping[str, Array], deterministic: bool = True,
               sample_latent: bool | None = None, note_dropout: float | Array | None = None
               ) -> tuple[dict[str, Array], tuple[Array, Array] | None]:
    """Reconstruction (or next-note) logits, and the posterior (None for the LM).

    `deterministic` turns dropout off. z is sampled from the posterior with the 'latent'
    RNG stream when `sample_latent` (default: when not deterministic), else it is the mean.
    `note_dropout`: see `decode`.
    """
    posterior, z = None, None
    if self.has_latent:
      mean, log_var = self.encode(batch, deterministic)
      posterior = (mean, log_var)
      sample = (not deterministic) if sample_latent is None else sample_latent
      z = reparameterize(self.make_rng('latent'), mean, log_var) if sample else mean
    logits, _ = self.decode(batch, z, deterministic, note_dropout=note_dropout)
    return logits, posterior


def reparameterize(rng: Array, mean: Array, log_var: Array) -> Array:
  """z = mean + sigma * eps: a sample whose gradient flows to mean and log-variance."""
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(rng, mean.shape, mean.dtype)
