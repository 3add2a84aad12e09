"""A causal Transformer decoder: the history model of `tlm` and `tvrash`, attention over the
notes so far where LM and VRASH carry a recurrent state.

Pre-LayerNorm blocks (self-attention, then a 4x GELU MLP, each a residual branch) and a final
LayerNorm. Positions enter only as rotary embeddings of queries and keys (Su et al. 2021,
arXiv:2104.09864), so a score depends on how far apart two notes are, not on where they sit in
a padded row: masked padding before or after a melody changes none of its outputs. Sampling
decodes a note at a time against a cache of the keys and values so far (`init_cache`), which
gives the same outputs as the whole melody at once.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Cache = dict[str, Any]  # {'index': int32 [], 'layers': [{'k', 'v'}: [B, L, heads, head_dim], ...]}
ROTARY_BASE = 10_000.0  # the slowest rotary frequency's period scale (Su et al.)
MASKED = -1e9  # the score of a key a query may not see (finite: a query that sees none stays finite)


def rotate(x: Array, positions: Array) -> Array:
  """Rotary position embedding of x [B, T, heads, D] at `positions` [T]: each pair (i, i + D/2)
  of features turns by the angle position * ROTARY_BASE**(-2i/D)."""
  half = x.shape[-1] // 2
  frequencies = ROTARY_BASE ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[:, None] * frequencies  # [T, D/2]
  cos, sin = jnp.cos(angles)[:, None, :], jnp.sin(angles)[:, None, :]  # over heads
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


def init_cache(batch: int, length: int, width: int, heads: int, layers: int, dtype: Any = jnp.float32) -> Cache:
  """An empty cache for decoding up to `length` notes one at a time."""
  shape = (batch, length, heads, width // heads)
  return {'index': jnp.zeros((), jnp.int32),
          'layers': [{'k': jnp.zeros(shape, dtype), 'v': jnp.zeros(shape, dtype)} for _ in range(layers)]}


class SelfAttention(nn.Module):
  """Multi-head self-attention with rotary positions; `allowed` [B or 1, T, S] says which of
  the S keys each of the T queries sees. With `cache`, the T new keys and values are written at
  the cache's index and the queries attend over the whole cache."""
  heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, positions: Array, allowed: Array, cache: dict[str, Array] | None = None
               ) -> tuple[Array, dict[str, Array] | None]:
    width = x.shape[-1]
    head_dim = width // self.heads
    qkv = nn.DenseGeneral((3, self.heads, head_dim), dtype=self.dtype, name='qkv')(x)
    q, k, v = (rotate(qkv[:, :, 0], positions), rotate(qkv[:, :, 1], positions), qkv[:, :, 2])
    if cache is not None:
      start = (0, positions[0], 0, 0)
      k = jax.lax.dynamic_update_slice(cache['k'], k.astype(cache['k'].dtype), start)
      v = jax.lax.dynamic_update_slice(cache['v'], v.astype(cache['v'].dtype), start)
      cache = {'k': k, 'v': v}
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32) / jnp.sqrt(head_dim)
    scores = jnp.where(allowed[:, None], scores, MASKED)
    weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    out = jnp.einsum('bhqk,bkhd->bqhd', weights, v.astype(self.dtype))
    return nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, name='out')(out), cache


class Block(nn.Module):
  """x + attention(LN(x)), then + MLP(LN(.)), with dropout on both residual branches."""
  heads: int
  dropout: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, positions: Array, allowed: Array, cache: dict[str, Array] | None,
               deterministic: bool) -> tuple[Array, dict[str, Array] | None]:
    drop = nn.Dropout(self.dropout, deterministic=deterministic)
    attended, cache = SelfAttention(self.heads, self.dtype, name='attention')(
        nn.LayerNorm(name='attention_norm')(x), positions, allowed, cache)
    x = x + drop(attended)
    hidden = nn.gelu(nn.Dense(4 * x.shape[-1], dtype=self.dtype, name='mlp_in')(nn.LayerNorm(name='mlp_norm')(x)))
    return x + drop(nn.Dense(x.shape[-1], dtype=self.dtype, name='mlp_out')(hidden)), cache


class TransformerDecoder(nn.Module):
  """Inputs [B, T, width] (already projected) and mask [B, T] -> outputs [B, T, width], and the
  updated cache when one was given (decoding the next T notes after `cache['index']`)."""
  layers: int
  heads: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array, cache: Cache | None = None, deterministic: bool = True
               ) -> tuple[Array, Cache | None]:
    length = x.shape[1]
    if cache is None:
      positions = jnp.arange(length)
      causal = positions[:, None] >= positions[None, :]
      allowed = causal[None] & mask[:, None, :].astype(bool)
    else:
      positions = cache['index'] + jnp.arange(length)
      keys = jnp.arange(cache['layers'][0]['k'].shape[1])
      allowed = (keys[None, :] <= positions[:, None])[None]
    x = nn.Dropout(self.dropout, deterministic=deterministic)(x.astype(jnp.float32))
    new_layers = []
    for i in range(self.layers):
      x, layer_cache = Block(self.heads, self.dropout, self.dtype, name=f'block{i}')(
          x, positions, allowed, None if cache is None else cache['layers'][i], deterministic)
      new_layers.append(layer_cache)
    x = nn.LayerNorm(name='final_norm')(x)
    if cache is None:
      return x, None
    return x, {'index': cache['index'] + length, 'layers': new_layers}
