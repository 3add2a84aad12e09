"""The RHN's two scans over time as fused Pallas kernels: one kernel launch for the whole forward
pass and one for the backward pass's reverse scan, instead of a chain of small kernels per time
step and micro-layer.

On a GPU the XLA step is launch latency, not arithmetic (BENCHMARKS.md, "GPU": about 1,150
kernels a step at the paper's size, for about 0.1 ms of tensor work). Melodies are independent
of each other, so each kernel program takes a block of `BATCH_BLOCK` melodies and carries their
state through every time step and micro-layer itself; nothing but the outputs leaves the
program. The recurrent weights (3 x 256 x 512 at the paper's size, more than one SM's shared
memory) are read in `chunk` x `chunk` tiles at every step, from the GPU's L2 cache after the
first, in the compute dtype (bfloat16 halves that traffic). Every slice is taken from a buffer,
never from a value, so the kernels lower to Triton.

The equations and their gradients are `rhn.rhn_step`'s and `rhn._rhn_scan_bwd`'s; the tests
check both against them in Pallas's interpreter, which is how these kernels run on a CPU.
On one H200 (2026-12-04, `vrash-bench suite --variants default,pallas`) the paper-size VRASH
step took 21.34 ms with these kernels against 3.92 ms with XLA's loops: they stay off by default
(BENCHMARKS.md, "The fused RHN kernel").
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from vrash_jax.errors import VrashError

Array = jax.Array

BATCH_BLOCK = 16  # melodies a program carries: the smallest M of a Triton matmul
MAX_CHUNK = 64  # widest tile of a recurrent weight read at once
MIN_TILE = 16  # Triton's smallest matmul side
NUM_WARPS = 4  # Triton warps a program: 128 threads over a 16 x 64 tile


def chunk_width(hidden: int) -> int:
  """The tile width: the largest power of two that divides `hidden`, up to MAX_CHUNK (64 at hidden
  128 or 256)."""
  return math.gcd(hidden, MAX_CHUNK)


def backend(kernel: str) -> dict[str, Any]:
  """pallas_call's arguments that pick the backend: interpreted on a CPU (the tests), Triton on
  GPUs (Pallas's default there is Mosaic GPU, whose kernels must fit one SM's shared memory);
  refused elsewhere."""
  platform = jax.devices()[0].platform
  if platform not in ('gpu', 'cpu'):
    raise VrashError(f"config.rhn_kernel={kernel!r} is written for GPUs (Triton), not {platform}; "
                     "use config.rhn_kernel='xla'")
  if platform == 'cpu':
    return {'interpret': True}
  return {'compiler_params': pltriton.CompilerParams(num_warps=NUM_WARPS, num_stages=1)}


def _compiler(hidden: int) -> dict[str, Any]:
  params = backend('pallas')
  if 'interpret' not in params and chunk_width(hidden) < MIN_TILE:
    raise VrashError(f"config.rhn_kernel='pallas': config.hidden={hidden} does not split into "
                     f'tiles of at least {MIN_TILE} (Triton\'s smallest matmul); allowed on GPUs: '
                     f'a multiple of {MIN_TILE}')
  return params


def _whole(shape: tuple[int, ...]) -> pl.BlockSpec:
  """Every program sees all of an array (the weights)."""
  return pl.BlockSpec(shape, lambda i: (0,) * len(shape))


def _batch_block(shape: tuple[int, ...], axis: int) -> pl.BlockSpec:
  """Program i sees melodies [i * BATCH_BLOCK, (i + 1) * BATCH_BLOCK) along `axis`."""
  block = tuple(BATCH_BLOCK if a == axis else n for a, n in enumerate(shape))
  return pl.BlockSpec(block, lambda i: tuple(i if a == axis else 0 for a in range(len(shape))))


def _pad_batch(x: Array, axis: int) -> Array:
  pad = -x.shape[axis] % BATCH_BLOCK
  return x if pad == 0 else jnp.pad(x, [(0, pad if a == axis else 0) for a in range(x.ndim)])


def _columns(c: int, width: int, offset: int = 0) -> pl.Slice:
  return pl.ds(offset + c * width, width)


def _matmul(rows: list[Array], weight_ref, layer: int, column: int, width: int, dtype: Any,
            offset: int = 0) -> Array:
  """sum_k rows[k] @ weight[layer, k-th row tile, column-th column tile (+ offset)]."""
  out = None
  for k, row in enumerate(rows):
    tile = weight_ref[layer, _columns(k, width), _columns(column, width, offset)]
    part = jnp.dot(row.astype(dtype), tile, preferred_element_type=jnp.float32)
    out = part if out is None else out + part
  return out


def _forward_kernel(depth, width, dtype, has_keep, projected_ref, mask_ref, state0_ref, weight_ref,
                    bias_ref, *refs):
  """One program: its melodies through every time step and micro-layer, writing their states
  and each micro-layer's input, h and t (the backward pass's residuals)."""
  keep_ref, refs = (refs[0], refs[1:]) if has_keep else (None, refs)
  states_ref, inputs_ref, h_ref, t_ref = refs
  length, hidden = projected_ref.shape[0], state0_ref.shape[-1]
  chunks = hidden // width

  def time_step(time, state):
    keep_going = mask_ref[time, :][:, None] > 0.0
    new = list(state)
    for layer in range(depth):
      rows = new if keep_ref is None else [
          s * keep_ref[layer, :, _columns(c, width)] for c, s in enumerate(new)]
      out = []
      for c in range(chunks):
        pre_h = _matmul(rows, weight_ref, layer, c, width, dtype) + bias_ref[layer, _columns(c, width)][None, :]
        pre_t = (_matmul(rows, weight_ref, layer, c, width, dtype, hidden)
                 + bias_ref[layer, _columns(c, width, hidden)][None, :])
        if layer == 0:
          pre_h = pre_h + projected_ref[time, :, _columns(c, width)]
          pre_t = pre_t + projected_ref[time, :, _columns(c, width, hidden)]
        h, t = jnp.tanh(pre_h), jax.nn.sigmoid(pre_t)
        inputs_ref[layer, time, :, _columns(c, width)] = new[c]
        h_ref[layer, time, :, _columns(c, width)] = h
        t_ref[layer, time, :, _columns(c, width)] = t
        out.append(h * t + new[c] * (1.0 - t))
      new = out
    state = tuple(jnp.where(keep_going, n, s) for n, s in zip(new, state))
    for c in range(chunks):
      states_ref[time, :, _columns(c, width)] = state[c]
    return state

  initial = tuple(state0_ref[:, _columns(c, width)] for c in range(chunks))
  jax.lax.fori_loop(0, length, time_step, initial)


def forward(projected: Array, mask: Array, state0: Array, recurrent: Array, bias: Array,
            dtype: Any, state_keep: Array | None) -> tuple[Array, tuple]:
  """`rhn._rhn_scan_fwd`'s outputs: states [T, B, H] and, per micro-layer, its inputs, h and t
  [T, B, H] (what the backward pass needs)."""
  length, batch, hidden = projected.shape[0], state0.shape[0], state0.shape[1]
  depth, width = recurrent.shape[0], chunk_width(hidden)
  has_keep = state_keep is not None
  args = [_pad_batch(projected, 1), _pad_batch(mask.astype(jnp.float32), 1), _pad_batch(state0, 0),
          recurrent.astype(dtype), bias] + ([_pad_batch(state_keep, 1)] if has_keep else [])
  padded = args[2].shape[0]
  in_specs = [_batch_block(args[0].shape, 1), _batch_block(args[1].shape, 1),
              _batch_block(args[2].shape, 0), _whole(recurrent.shape), _whole(bias.shape)]
  in_specs += [_batch_block(args[5].shape, 1)] if has_keep else []
  per_layer = (depth, length, padded, hidden)
  out_shape = [jax.ShapeDtypeStruct((length, padded, hidden), jnp.float32)] + [
      jax.ShapeDtypeStruct(per_layer, jnp.float32)] * 3
  out_specs = [_batch_block((length, padded, hidden), 1)] + [_batch_block(per_layer, 2)] * 3

  def kernel(*refs):
    _forward_kernel(depth, width, dtype, has_keep, *refs)

  states, inputs, h, t = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(padded // BATCH_BLOCK,), in_specs=in_specs,
      out_specs=out_specs, **_compiler(hidden))(*args)
  saved = tuple((inputs[i, :, :batch], h[i, :, :batch], t[i, :, :batch]) for i in range(depth))
  return states[:, :batch], saved


def _backward_kernel(depth, width, dtype, has_keep, d_states_ref, mask_ref, inputs_ref, h_ref, t_ref,
                     weight_t_ref, *refs):
  """One program: the reverse scan for its melodies, writing each step's pre-activation
  gradients, then the first state's and the dropout masks' gradients."""
  keep_ref, refs = (refs[0], refs[1:]) if has_keep else (None, refs)
  d_pre_ref, d_state0_ref, *d_keep_ref = refs
  length, hidden = d_states_ref.shape[0], d_states_ref.shape[-1]
  chunks = hidden // width

  def time_step(i, carry):
    time = length - 1 - i
    d_state, d_keeps = carry
    keep_going = mask_ref[time, :][:, None] > 0.0
    d_state = [d + d_states_ref[time, :, _columns(c, width)] for c, d in enumerate(d_state)]
    d_new = [jnp.where(keep_going, d, 0.0) for d in d_state]
    d_state = [jnp.where(keep_going, 0.0, d) for d in d_state]  # padded steps pass it through
    d_keeps = [list(d) for d in d_keeps]
    for layer in reversed(range(depth)):
      s, h, t = ([ref[layer, time, :, _columns(c, width)] for c in range(chunks)]
                 for ref in (inputs_ref, h_ref, t_ref))
      d_pre = ([d_new[c] * t[c] * (1.0 - h[c] * h[c]) for c in range(chunks)]
               + [d_new[c] * (h[c] - s[c]) * t[c] * (1.0 - t[c]) for c in range(chunks)])
      for k, d in enumerate(d_pre):
        d_pre_ref[layer, time, :, _columns(k, width)] = d
      for c in range(chunks):
        d_in = _matmul(d_pre, weight_t_ref, layer, c, width, dtype)
        if keep_ref is not None:
          d_keeps[layer][c] = d_keeps[layer][c] + d_in * s[c]
          d_in = d_in * keep_ref[layer, :, _columns(c, width)]
        d_new[c] = d_new[c] * (1.0 - t[c]) + d_in
    return tuple(d + n for d, n in zip(d_state, d_new)), tuple(tuple(d) for d in d_keeps)

  zeros = jnp.zeros((d_states_ref.shape[1], width), jnp.float32)
  initial = ((zeros,) * chunks, ((zeros,) * chunks,) * (depth if has_keep else 0))
  d_state0, d_keeps = jax.lax.fori_loop(0, length, time_step, initial)
  for c in range(chunks):
    d_state0_ref[:, _columns(c, width)] = d_state0[c]
    for layer in range(depth if has_keep else 0):
      d_keep_ref[0][layer, :, _columns(c, width)] = d_keeps[layer][c]


def backward(d_states: Array, mask: Array, saved: tuple, recurrent: Array, dtype: Any,
             state_keep: Array | None) -> tuple[Array, Array, Array | None]:
  """The reverse scan of `rhn._rhn_scan_bwd`: -> (d_pre [L, T, B, 2H], d_state0 [B, H],
  d_state_keep [L, B, H] or None)."""
  length, batch, hidden = d_states.shape
  depth, width = recurrent.shape[0], chunk_width(hidden)
  has_keep = state_keep is not None
  stacked = [_pad_batch(jnp.stack([layer[i] for layer in saved]), 2) for i in range(3)]
  weight_t = jnp.swapaxes(recurrent, 1, 2).astype(dtype)
  args = ([_pad_batch(d_states, 1), _pad_batch(mask.astype(jnp.float32), 1)] + stacked + [weight_t]
          + ([_pad_batch(state_keep, 1)] if has_keep else []))
  padded = args[0].shape[1]
  in_specs = ([_batch_block(args[0].shape, 1), _batch_block(args[1].shape, 1)]
              + [_batch_block(stacked[0].shape, 2)] * 3 + [_whole(weight_t.shape)]
              + ([_batch_block(args[-1].shape, 1)] if has_keep else []))
  out_shape = [jax.ShapeDtypeStruct((depth, length, padded, 2 * hidden), jnp.float32),
               jax.ShapeDtypeStruct((padded, hidden), jnp.float32)]
  out_shape += [jax.ShapeDtypeStruct((depth, padded, hidden), jnp.float32)] if has_keep else []
  out_specs = [_batch_block(shape.shape, axis) for shape, axis in zip(out_shape, (2, 0, 1))]

  def kernel(*refs):
    _backward_kernel(depth, width, dtype, has_keep, *refs)

  d_pre, d_state0, *d_keep = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(padded // BATCH_BLOCK,), in_specs=in_specs,
      out_specs=out_specs, **_compiler(hidden))(*args)
  return d_pre[:, :, :batch], d_state0[:batch], d_keep[0][:, :batch] if has_keep else None
