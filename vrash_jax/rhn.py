"""Recurrent Highway Network (Zilly et al. 2016, arXiv:1607.03474), Eqs. 6-8.

At time t the state passes through L micro-layers l = 1..L, starting from s_0 = s_L(t-1):

    h_l = tanh(W_H x_t [l = 1] + R_Hl s_{l-1} + b_Hl)
    t_l = sigmoid(W_T x_t [l = 1] + R_Tl s_{l-1} + b_Tl)
    s_l = h_l * t_l + s_{l-1} * (1 - t_l)          (coupled carry gate c = 1 - t)

The input enters only the first micro-layer, so its projection for every time step is one
matmul outside the recurrence; the H and T weights are fused into one matrix of width 2H.
Dropout is variational: one mask per sequence for the input, each micro-layer's state, and
the output. Padded steps (mask = 0) leave the state unchanged, so the final state is the
state after the last real note.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vrash_jax.errors import VrashError
from vrash_jax.kernels import rhn_layer_pallas, rhn_pallas

Array = jax.Array


def rhn_step(state: Array, input_projection: Array, recurrent: Array, bias: Array,
             state_keep: Array | None = None) -> Array:
  """One time step of the RHN.

  state [B, H]; input_projection [B, 2H] = x_t W (H half, then T half); recurrent [L, H, 2H];
  bias [L, 2H]; state_keep [L, B, H] variational dropout masks (already scaled) or None.
  """
  layers, biases, keeps = _per_layer(recurrent, bias, state_keep, state.dtype)
  return _micro_layers(state, input_projection, layers, biases, keeps, state.dtype)[0]


def _per_layer(recurrent: Array, bias: Array, state_keep: Array | None, dtype: Any
               ) -> tuple[list[Array], list[Array], list[Array] | None]:
  """Splits the stacked weights by micro-layer once, outside any loop over time: indexing a
  stacked weight inside the loop copies it at every step on CPU."""
  depth = recurrent.shape[0]
  layers = [recurrent[l].astype(dtype) for l in range(depth)]
  biases = [bias[l] for l in range(depth)]
  keeps = None if state_keep is None else [state_keep[l] for l in range(depth)]
  return layers, biases, keeps


def _micro_layers(state, projected, layers, biases, keeps, dtype):
  """Eqs. 6-8 through every micro-layer -> (new state, [(layer input, h, t)] per layer)."""
  hidden, saved = state.shape[-1], []
  for layer, (weight, bias) in enumerate(zip(layers, biases)):
    s = state if keeps is None else state * keeps[layer]
    pre = jnp.dot(s.astype(dtype), weight, preferred_element_type=jnp.float32) + bias
    if layer == 0:
      pre = pre + projected
    h, t = jnp.tanh(pre[..., :hidden]), jax.nn.sigmoid(pre[..., hidden:])
    saved.append((state, h, t))
    state = (h * t + state * (1.0 - t)).astype(state.dtype)
  return state, saved


def _masked_step(layers, biases, keeps, dtype, state, xs):
  """One time step over the batch; padded steps (mask False) keep their state."""
  projected, mask = xs
  new, saved = _micro_layers(state, projected, layers, biases, keeps, dtype)
  state = jnp.where(mask[:, None], new, state)
  return state, (state, tuple(saved))


def prefetched_scan(step, init, xs, unroll: int = 1):
  """`jax.lax.scan(step, init, xs)` whose per-step inputs arrive through the carry, sliced one
  step ahead.

  On CPU, XLA fuses the slice of a stacked scan input into the step's elementwise kernels,
  which then compute clamped indices per element instead of vectorizing: a micro-layer with
  its input took 0.27 ms with the slice fused and 0.17 ms with it taken one step ahead, as a
  kernel of its own (BENCHMARKS.md). Used for the forward pass, where it pays; the reverse
  scan of the backward pass gained nothing from it.
  """
  length = jax.tree.leaves(xs)[0].shape[0]

  def take(i):
    return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), xs)

  def body(carry, i):
    inner, x = carry
    x_next = take(jnp.minimum(i + 1, length - 1))
    inner, y = step(inner, x)
    return (inner, x_next), y

  (final, _), ys = jax.lax.scan(body, (init, take(0)), jnp.arange(length), unroll=unroll)
  return final, ys


def _fused_layer_scan(projected, mask, state0, recurrent, bias, dtype, state_keep, unroll):
  """The forward scan with each micro-layer one kernel (`kernels/rhn_layer_pallas.py`) ->
  (states [T, B, H], per layer (input, h, t) [T, B, H]), as the XLA scan gives them."""
  batch, hidden = state0.shape
  depth = recurrent.shape[0]
  pad = functools.partial(rhn_layer_pallas.pad_batch, batch=batch)
  weights = [recurrent[l].astype(dtype) for l in range(depth)]
  state0 = pad(state0, 0)
  # Every bias and the input's projection are added outside the loop, once.
  extras = [jnp.broadcast_to(bias[l], (state0.shape[0], 2 * hidden)) for l in range(depth)]
  keeps = None if state_keep is None else [pad(state_keep[l], 0) for l in range(depth)]

  def step(state, xs):
    first_layer_extra, m = xs
    start, saved = state, []
    for layer in range(depth):
      last = layer == depth - 1
      new, h, t = rhn_layer_pallas.forward(
          state, weights[layer], first_layer_extra if layer == 0 else extras[layer],
          None if keeps is None else keeps[layer], m if last else None, start if last else None)
      saved.append((state, h, t))
      state = new
    return state, (state, tuple(saved))

  xs = (pad(projected + bias[0], 1), pad(mask.astype(jnp.float32), 1))
  _, (states, saved) = prefetched_scan(step, state0, xs, unroll)
  return states[:, :batch], jax.tree.map(lambda x: x[:, :batch], saved)


def _fused_layer_reverse_scan(dtype, unroll, mask, state0, recurrent, keeps, saved, d_states):
  """`_reverse_scan` with each micro-layer's gradient one kernel (`kernels/rhn_layer_pallas.py`)."""
  batch = state0.shape[0]
  pad = functools.partial(rhn_layer_pallas.pad_batch, batch=batch)

  def layer_gradient(d_new, s, h, t, weight_t, keep, d_keep):
    d_pre_h, d_pre_t, d_in, *d_keep_out = rhn_layer_pallas.backward(d_new, s, h, t, weight_t, keep, d_keep)
    return (d_pre_h, d_pre_t), d_in, d_keep_out[0] if d_keep_out else None

  keeps = None if keeps is None else [pad(k, 0) for k in keeps]
  d_pres, d_state0, d_keeps = _reverse_scan(
      layer_gradient, unroll, pad(mask, 1), pad(state0, 0), recurrent, dtype, keeps,
      jax.tree.map(lambda x: pad(x, 1), saved), pad(d_states, 1))
  d_pres = [jnp.concatenate(pair, axis=-1)[:, :batch] for pair in d_pres]
  return d_pres, d_state0[:batch], None if d_keeps is None else d_keeps[:, :batch]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 7, 8))
def rhn_scan(projected: Array, mask: Array, state0: Array, recurrent: Array, bias: Array,
             dtype: Any = jnp.float32, state_keep: Array | None = None, unroll: int = 1,
             kernel: str = 'xla') -> Array:
  """The RHN over time: projected [T, B, 2H], mask [T, B], state0 [B, H] -> states [T, B, H].

  Differentiated by a hand-written backward pass: its reverse scan carries only the state
  gradient and emits each step's pre-activation gradient; the weight gradients are then one
  large matmul per micro-layer over all time steps instead of a small one inside every step.
  Both scans take `unroll` time steps an iteration (the same figures; fewer loop trips).
  With kernel 'pallas' both scans are instead one fused kernel each (`kernels/rhn_pallas.py`);
  with 'pallas_layer' each micro-layer is one kernel, forward and backward, inside these scans
  (`kernels/rhn_layer_pallas.py`).
  """
  return _rhn_scan_fwd(projected, mask, state0, recurrent, bias, dtype, state_keep, unroll, kernel)[0]


def _rhn_scan_fwd(projected, mask, state0, recurrent, bias, dtype, state_keep, unroll, kernel):
  if kernel == 'pallas':
    states, saved = rhn_pallas.forward(projected, mask, state0, recurrent, bias, dtype, state_keep)
  elif kernel == 'pallas_layer':
    states, saved = _fused_layer_scan(projected, mask, state0, recurrent, bias, dtype, state_keep, unroll)
  else:
    step = functools.partial(_masked_step, *_per_layer(recurrent, bias, state_keep, dtype), dtype)
    _, (states, saved) = prefetched_scan(step, state0, (projected, mask), unroll)
  return states, (mask, state0, recurrent, state_keep, saved)


def _rhn_scan_bwd(dtype, unroll, kernel, residuals, d_states):
  mask, state0, recurrent, state_keep, saved = residuals
  depth = recurrent.shape[0]
  keeps = None if state_keep is None else [state_keep[l] for l in range(depth)]
  if kernel == 'pallas':
    d_pres, d_state0, d_keeps = rhn_pallas.backward(d_states, mask, saved, recurrent, dtype, state_keep)
  elif kernel == 'pallas_layer':
    d_pres, d_state0, d_keeps = _fused_layer_reverse_scan(dtype, unroll, mask, state0, recurrent, keeps,
                                                          saved, d_states)
  else:
    d_pres, d_state0, d_keeps = _reverse_scan(functools.partial(_layer_gradient, dtype), unroll, mask,
                                              state0, recurrent, dtype, keeps, saved, d_states)
  # Every weight gradient at once per micro-layer: [H, T*B] x [T*B, 2H].
  d_recurrent = []
  for layer in range(depth):
    s = saved[layer][0]
    matmul_input = s if keeps is None else s * keeps[layer]
    d_pre = d_pres[layer]
    d_recurrent.append(jnp.dot(matmul_input.reshape(-1, s.shape[-1]).T.astype(dtype),
                               d_pre.reshape(-1, d_pre.shape[-1]).astype(dtype),
                               preferred_element_type=jnp.float32))
  d_bias = jnp.stack([d.sum((0, 1)) for d in d_pres])
  return d_pres[0], None, d_state0, jnp.stack(d_recurrent), d_bias, d_keeps


def _layer_gradient(dtype, d_new, s, h, t, weight_t, keep, d_keep):
  """Through one micro-layer backwards -> (its pre-activation gradient, its input state's, d_keep)."""
  d_pre = jnp.concatenate([d_new * t * (1.0 - h * h), d_new * (h - s) * t * (1.0 - t)], axis=-1)
  d_in = jnp.dot(d_pre.astype(dtype), weight_t, preferred_element_type=jnp.float32)
  if keep is not None:
    d_keep = d_keep + d_in * s
    d_in = d_in * keep
  return d_pre, d_new * (1.0 - t) + d_in, d_keep


def _reverse_scan(layer_gradient, unroll, mask, state0, recurrent, dtype, keeps, saved, d_states):
  """The backward pass's scan over time -> (d_pre per layer [T, B, 2H] (as `layer_gradient` gives
  it), d_state0, d_keeps)."""
  depth = recurrent.shape[0]
  weights_t = [recurrent[l].T.astype(dtype) for l in range(depth)]

  def step(carry, xs):
    d_state, d_keeps = carry
    d_out, m, per_layer = xs
    d_state = d_state + d_out
    d_new = jnp.where(m[:, None], d_state, 0.0)
    d_state = jnp.where(m[:, None], 0.0, d_state)  # padded steps pass the state through
    d_pres, d_keeps = [None] * depth, list(d_keeps)
    for layer in reversed(range(depth)):
      keep, d_keep = (None, None) if keeps is None else (keeps[layer], d_keeps[layer])
      d_pres[layer], d_new, d_keep = layer_gradient(d_new, *per_layer[layer], weights_t[layer], keep, d_keep)
      if keeps is not None:
        d_keeps[layer] = d_keep
    return (d_state + d_new, tuple(d_keeps)), tuple(d_pres)

  d_keeps0 = () if keeps is None else tuple(jnp.zeros_like(k) for k in keeps)
  (d_state0, d_keeps), d_pres = jax.lax.scan(
      step, (jnp.zeros_like(state0), d_keeps0), (d_states, mask, saved), reverse=True, unroll=unroll)
  return d_pres, d_state0, None if keeps is None else jnp.stack(d_keeps)


rhn_scan.defvjp(_rhn_scan_fwd, _rhn_scan_bwd)


# Measured on one H200 (2026-12-04, `vrash-bench suite`, VRASH 64 x 64 notes, hidden 256, depth 3):
# unroll 1, 4, 8, 16 took 6.06, 4.24, 3.94, 4.08 ms a float32 step (bfloat16: 11.25, 9.65, 9.28,
# 9.35). On a CPU unroll 4 was 1.75x slower than 1 (BENCHMARKS.md).
PLATFORM_UNROLL = {'gpu': 8}


def scan_unroll(configured: int) -> int:
  """Time steps per scan iteration: `configured`, or for 0 the platform's best measured."""
  return configured or PLATFORM_UNROLL.get(jax.devices()[0].platform, 1)


def _gate_bias_init(transform_bias: float):
  def init(key, shape, dtype=jnp.float32):
    del key
    depth, width = shape
    return jnp.concatenate([jnp.zeros((depth, width // 2), dtype),
                            jnp.full((depth, width // 2), transform_bias, dtype)], axis=-1)
  return init


def _dropout_keep(module: nn.Module, rate: float, shape: tuple[int, ...], deterministic: bool
                  ) -> Array | None:
  """A scaled keep-mask (1/(1-rate) or 0) drawn from the 'dropout' stream, or None."""
  if deterministic or rate <= 0.0:
    return None
  keep = jax.random.bernoulli(module.make_rng('dropout'), 1.0 - rate, shape)
  return keep.astype(jnp.float32) / (1.0 - rate)


class RHN(nn.Module):
  """An RHN layer over [B, T, D] inputs; returns (outputs [B, T, H], final state [B, H])."""
  hidden: int
  depth: int
  transform_bias: float = -2.0
  input_dropout: float = 0.0
  state_dropout: float = 0.0
  output_dropout: float = 0.0
  dtype: Any = jnp.float32  # matmul compute dtype (bfloat16 on accelerators)
  custom_backward: bool = True  # rhn_scan's hand-written VJP (False: scan autodiff)
  scan_unroll: int = 1  # time steps per scan iteration, forward and backward
  kernel: str = 'xla'  # rhn_scan's scans: 'xla', 'pallas' or 'pallas_layer' (fused kernels; custom_backward only)

  @nn.compact
  def __call__(self, inputs: Array, mask: Array, initial_state: Array | None = None,
               deterministic: bool = True) -> tuple[Array, Array]:
    batch, _, features = inputs.shape
    w_in = self.param('w_in', nn.initializers.lecun_normal(), (features, 2 * self.hidden))
    recurrent = self.param('recurrent', nn.initializers.variance_scaling(
        1.0, 'fan_in', 'normal', in_axis=-2, out_axis=-1, batch_axis=(0,)),
        (self.depth, self.hidden, 2 * self.hidden))
    bias = self.param('bias', _gate_bias_init(self.transform_bias), (self.depth, 2 * self.hidden))

    input_keep = _dropout_keep(self, self.input_dropout, (batch, 1, features), deterministic)
    if input_keep is not None:
      inputs = inputs * input_keep
    # One matmul for every time step. The (narrow) inputs go time-major first, so the wide
    # projection is born in the scan's layout instead of being transposed.
    projected = jnp.einsum('tbd,dk->tbk', inputs.transpose(1, 0, 2).astype(self.dtype),
                           w_in.astype(self.dtype), preferred_element_type=jnp.float32)
    state_keep = _dropout_keep(self, self.state_dropout, (self.depth, batch, self.hidden),
                               deterministic)

    state0 = (jnp.zeros((batch, self.hidden), jnp.float32) if initial_state is None
              else initial_state.astype(jnp.float32))
    time_mask = mask.T.astype(bool)
    if self.custom_backward:
      outputs = rhn_scan(projected, time_mask, state0, recurrent, bias, self.dtype, state_keep,
                         self.scan_unroll, self.kernel)
    else:  # JAX's own scan autodiff
      if self.kernel != 'xla':
        raise VrashError(f"RHN kernel {self.kernel!r} needs custom_backward=True (its kernels are the "
                         'hand-written backward\'s)')
      layers, biases, keeps = _per_layer(recurrent, bias, state_keep, self.dtype)

      def step(state, xs):
        state, (output, _) = _masked_step(layers, biases, keeps, self.dtype, state, xs)
        return state, output
      _, outputs = jax.lax.scan(step, state0, (projected, time_mask), unroll=self.scan_unroll)
    final = outputs[-1]
    outputs = outputs.transpose(1, 0, 2)
    output_keep = _dropout_keep(self, self.output_dropout, (batch, 1, self.hidden), deterministic)
    if output_keep is not None:
      outputs = outputs * output_keep
    return outputs, final
