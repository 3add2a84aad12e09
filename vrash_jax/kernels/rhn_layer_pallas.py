"""One RHN micro-layer as one fused Pallas kernel, forward and backward, called inside XLA's scans
over time (config `rhn_kernel='pallas_layer'`).

On one H200 (2026-12-04, BENCHMARKS.md "One H200, again") XLA ran a micro-layer as a matmul and
about 1.5 fusions beside it, about 2 us each whatever their work: the paper-size step was about
2,150 such kernels. Here the matmul, the gates, the carry and (in the last micro-layer) the
padding mask are one kernel, and the backward pass's pre-activation gradient, its matmul and the
carry's gradient are another. The scans, the unrolling and the weight gradients (one large matmul
per micro-layer after the scan) stay XLA's.

Each program computes a `rows` x `columns` tile of the new state. It reads the full rows of the
state (the matmul's K, a chunk at a time, so that what it holds stays small) and the two column
tiles of the weight that feed its tile (the H and T gates), so no program waits for another.
Blocks are powers of two of at least 16, as Triton needs; the scans pad the batch once, outside
their loops (`pad_batch`). The equations are `rhn._micro_layers`' and `rhn._reverse_scan`'s, and
the tests check both in Pallas's interpreter, which is how these kernels run on a CPU.

Measured on one H200 (2026-12-04, BENCHMARKS.md "A kernel a micro-layer"): the same step as XLA's,
2.9x slower at the paper's size. A forward kernel took 9.4 us and a backward one 16.6 us, about
1.2 and 2.1 us for each of K's 8 chunks: most likely the chunks' dependent loads and small
matmuls, not launches, bound them.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from vrash_jax.errors import VrashError
from vrash_jax.kernels.rhn_pallas import MIN_TILE, backend

Array = jax.Array

MAX_ROWS = 32  # melodies a program: the matmul's M (64 melodies -> 2 row blocks)
COLUMNS = 32  # state columns a program (and as many of each gate): hidden 256 -> 8 programs a row block
DEPTH_CHUNK = 32  # the matmul's K taken this many state columns at a time: what a program holds at once


def _power_of_two_at_least(n: int, floor: int) -> int:
  return max(floor, 1 << (n - 1).bit_length())


def row_block(batch: int) -> int:
  """Melodies a program: a power of two >= 16 (Triton's smallest matmul side), up to MAX_ROWS."""
  return min(MAX_ROWS, _power_of_two_at_least(batch, MIN_TILE))


def pad_batch(x: Array, axis: int, batch: int) -> Array:
  """`x` with its melodies (along `axis`) padded with zeros to a multiple of the row block: the
  scans pad once, outside their loops, and the padded melodies are masked (they keep state 0)."""
  pad = -batch % row_block(batch)
  return x if pad == 0 else jnp.pad(x, [(0, pad if a == axis else 0) for a in range(x.ndim)])


def _column_block(hidden: int) -> int:
  """State columns a program: the largest power of two that divides `hidden`, up to COLUMNS."""
  return math.gcd(hidden, COLUMNS)


def _chunks(hidden: int) -> list[pl.Slice]:
  """The matmul's K (the state's columns) in slices of DEPTH_CHUNK (or what divides `hidden`)."""
  width = math.gcd(hidden, DEPTH_CHUNK)
  return [pl.ds(k * width, width) for k in range(hidden // width)]


def _check(hidden: int) -> dict[str, Any]:
  params = backend('pallas_layer')
  if 'interpret' not in params and (hidden & (hidden - 1) or hidden < MIN_TILE):
    raise VrashError(f"config.rhn_kernel='pallas_layer': config.hidden={hidden} must be a power of two "
                     f'of at least {MIN_TILE} on GPUs (Triton\'s blocks); or use config.rhn_kernel=\'xla\'')
  return params


def _specs(batch: int, hidden: int):
  """The grid, (row blocks, column blocks), and its BlockSpecs: the program's full rows of a
  [B, H] array, its tile of it (also the H gate's tile of a [B, 2H] array), and the T gate's tile
  of a [B, 2H] array; and the block's rows and columns."""
  rows, columns = row_block(batch), _column_block(hidden)
  gates = hidden // columns
  full_rows = pl.BlockSpec((rows, hidden), lambda i, j: (i, 0))
  tile = pl.BlockSpec((rows, columns), lambda i, j: (i, j))
  t_gate_tile = pl.BlockSpec((rows, columns), lambda i, j: (i, j + gates))
  return (batch // rows, gates), full_rows, tile, t_gate_tile, rows, columns


def _forward_kernel(dtype, has_keep, has_mask, state_ref, state_tile_ref, h_columns_ref, t_columns_ref,
                    extra_h_ref, extra_t_ref, *refs):
  refs = list(refs)
  keep_ref = refs.pop(0) if has_keep else None
  mask_ref, start_ref = (refs.pop(0), refs.pop(0)) if has_mask else (None, None)
  new_ref, h_ref, t_ref = refs
  pre_h, pre_t = extra_h_ref[...], extra_t_ref[...]
  for k in _chunks(state_ref.shape[-1]):
    s = state_ref[:, k]
    if has_keep:
      s = s * keep_ref[:, k]
    s = s.astype(dtype)
    pre_h += jnp.dot(s, h_columns_ref[k, :], preferred_element_type=jnp.float32)
    pre_t += jnp.dot(s, t_columns_ref[k, :], preferred_element_type=jnp.float32)
  h, t = jnp.tanh(pre_h), jax.nn.sigmoid(pre_t)
  carried = state_tile_ref[...]
  new = h * t + carried * (1.0 - t)
  if has_mask:  # the time step's last micro-layer: padded steps keep the step's first state
    new = jnp.where(mask_ref[...][:, None] > 0.0, new, start_ref[...])
  new_ref[...], h_ref[...], t_ref[...] = new, h, t


def forward(state: Array, weight: Array, extra: Array, keep: Array | None = None,
            mask: Array | None = None, start: Array | None = None) -> tuple[Array, Array, Array]:
  """One micro-layer: state [B, H] (B padded by `pad_batch`), weight [H, 2H] in the compute dtype,
  extra [B, 2H] (bias, plus the input's projection in the first micro-layer), keep [B, H] (scaled
  dropout mask) or None; with mask [B] (float, 1 = a real note) and start [B, H] (the time step's
  first state), padded steps keep `start`. -> (new state, h, t), each [B, H]."""
  batch, hidden = state.shape
  params = _check(hidden)
  grid, full_rows, tile, t_gate_tile, rows, columns = _specs(batch, hidden)
  h_columns = pl.BlockSpec((hidden, columns), lambda i, j: (0, j))  # of W [H, 2H]: the H gate's
  t_columns = pl.BlockSpec((hidden, columns), lambda i, j: (0, j + hidden // columns))  # the T gate's
  args = [state, state, weight, weight, extra, extra]
  specs = [full_rows, tile, h_columns, t_columns, tile, t_gate_tile]
  if keep is not None:  # on the matmul's input only: the carry takes the state undropped
    args, specs = args + [keep], specs + [full_rows]
  if mask is not None:
    args += [mask, start]
    specs += [pl.BlockSpec((rows,), lambda i, j: (i,)), tile]
  out = jax.ShapeDtypeStruct((batch, hidden), jnp.float32)

  def kernel(*refs):
    _forward_kernel(weight.dtype, keep is not None, mask is not None, *refs)

  return pl.pallas_call(kernel, out_shape=[out] * 3, grid=grid, in_specs=specs, out_specs=[tile] * 3,
                        name='rhn_layer_forward', **params)(*args)


def _backward_kernel(dtype, has_keep, d_new_ref, d_new_tile_ref, s_ref, s_tile_ref, h_ref, h_tile_ref,
                     t_ref, t_tile_ref, h_rows_ref, t_rows_ref, *refs):
  refs = list(refs)
  keep_tile_ref, d_keep_ref = (refs.pop(0), refs.pop(0)) if has_keep else (None, None)
  d_pre_h_ref, d_pre_t_ref, d_in_ref, *d_keep_out_ref = refs

  def d_pre(d_new, s, h, t):
    return d_new * t * (1.0 - h * h), d_new * (h - s) * t * (1.0 - t)

  # The full rows' pre-activation gradient feeds the matmul, a chunk of K at a time; this tile's is
  # written out. Both are computed from the refs, since Triton cannot slice a value.
  d_in = jnp.zeros(d_new_tile_ref.shape, jnp.float32)
  for k in _chunks(d_new_ref.shape[-1]):
    part_h, part_t = d_pre(d_new_ref[:, k], s_ref[:, k], h_ref[:, k], t_ref[:, k])
    d_in += (jnp.dot(part_h.astype(dtype), h_rows_ref[k, :], preferred_element_type=jnp.float32)
             + jnp.dot(part_t.astype(dtype), t_rows_ref[k, :], preferred_element_type=jnp.float32))
  d_new_tile, t_tile = d_new_tile_ref[...], t_tile_ref[...]
  d_pre_h_ref[...], d_pre_t_ref[...] = d_pre(d_new_tile, s_tile_ref[...], h_tile_ref[...], t_tile)
  if has_keep:
    d_keep_out_ref[0][...] = d_keep_ref[...] + d_in * s_tile_ref[...]
    d_in = d_in * keep_tile_ref[...]
  d_in_ref[...] = d_new_tile * (1.0 - t_tile) + d_in


def backward(d_new: Array, s: Array, h: Array, t: Array, weight_t: Array, keep: Array | None = None,
             d_keep: Array | None = None) -> tuple[Array, ...]:
  """The gradient through one micro-layer: d_new [B, H] (the gradient of its output state), its
  input s and gates h, t [B, H], weight_t [2H, H] (the transposed weight, compute dtype), keep and
  the running d_keep [B, H] or None. -> (d_pre_h, d_pre_t, d_state_in) [B, H] each, and with a
  keep the updated d_keep."""
  batch, hidden = s.shape
  params = _check(hidden)
  grid, full_rows, tile, _, _, columns = _specs(batch, hidden)
  h_rows = pl.BlockSpec((hidden, columns), lambda i, j: (0, j))  # rows [0, H) of W^T: the H gate's
  t_rows = pl.BlockSpec((hidden, columns), lambda i, j: (1, j))  # rows [H, 2H): the T gate's
  args = [d_new, d_new, s, s, h, h, t, t, weight_t, weight_t]
  specs = [full_rows, tile] * 4 + [h_rows, t_rows]
  outs = 3
  if keep is not None:
    args, specs, outs = args + [keep, d_keep], specs + [tile, tile], 4
  out = jax.ShapeDtypeStruct((batch, hidden), jnp.float32)

  def kernel(*refs):
    _backward_kernel(weight_t.dtype, keep is not None, *refs)

  aliases = {len(args) - 1: 3} if keep is not None else {}
  return tuple(pl.pallas_call(kernel, out_shape=[out] * outs, grid=grid, in_specs=specs,
                              out_specs=[tile] * outs, input_output_aliases=aliases, name='rhn_layer_backward',
                              **params)(*args))
