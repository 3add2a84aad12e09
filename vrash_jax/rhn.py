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

Array = jax.Array


def rhn_step(state: Array, input_projection: Array, recurrent: Array, bias: Array,
             state_keep: Array | None = None) -> Array:
  """One time step of the RHN.

  state [B, H]; input_projection [B, 2H] = x_t W (H half, then T half); recurrent [L, H, 2H];
  bias [L, 2H]; state_keep [L, B, H] variational dropout masks (already scaled) or None.
  """
  hidden = state.shape[-1]
  for layer in range(recurrent.shape[0]):
    s = state if state_keep is None else state * state_keep[layer]
    pre = s @ recurrent[layer].astype(s.dtype) + bias[layer]
    if layer == 0:
      pre = pre + input_projection
    h = jnp.tanh(pre[..., :hidden])
    t = jax.nn.sigmoid(pre[..., hidden:])
    state = h * t + state * (1.0 - t)
  return state


def _scan_step(recurrent, bias, state_keep, dtype, state, xs):
  """One masked time step that also returns what the backward pass needs per micro-layer."""
  projected, mask = xs
  hidden, new = state.shape[-1], state
  layer_inputs, hs, gs = [], [], []
  for layer in range(recurrent.shape[0]):
    s = new if state_keep is None else new * state_keep[layer]
    pre = jnp.dot(s.astype(dtype), recurrent[layer].astype(dtype),
                  preferred_element_type=jnp.float32) + bias[layer]
    if layer == 0:
      pre = pre + projected
    h, g = jnp.tanh(pre[:, :hidden]), jax.nn.sigmoid(pre[:, hidden:])
    layer_inputs.append(new)
    hs.append(h)
    gs.append(g)
    new = h * g + new * (1.0 - g)
  state = jnp.where(mask[:, None], new, state)
  return state, (state, jnp.stack(layer_inputs), jnp.stack(hs), jnp.stack(gs))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def rhn_scan(projected: Array, mask: Array, state0: Array, recurrent: Array, bias: Array,
             dtype: Any = jnp.float32, state_keep: Array | None = None) -> Array:
  """The RHN over time: projected [T, B, 2H], mask [T, B], state0 [B, H] -> states [T, B, H].

  Differentiated by a hand-written backward pass: its reverse scan carries only the state
  gradient and emits each step's pre-activation gradient; the weight gradients are then one
  large matmul over all time steps instead of a small one inside every step.
  """
  step = functools.partial(_scan_step, recurrent, bias, state_keep, dtype)
  _, (states, *_) = jax.lax.scan(step, state0, (projected, mask))
  return states


def _rhn_scan_fwd(projected, mask, state0, recurrent, bias, dtype, state_keep):
  step = functools.partial(_scan_step, recurrent, bias, state_keep, dtype)
  _, (states, layer_inputs, hs, gs) = jax.lax.scan(step, state0, (projected, mask))
  return states, (mask, state0, recurrent, state_keep, layer_inputs, hs, gs)


def _rhn_scan_bwd(dtype, residuals, d_states):
  mask, state0, recurrent, state_keep, layer_inputs, hs, gs = residuals
  depth, hidden = recurrent.shape[0], state0.shape[-1]
  recurrent_t = jnp.swapaxes(recurrent, 1, 2).astype(dtype)

  def step(carry, xs):
    d_state, d_keep = carry
    d_out, m, inputs, h, g = xs
    d_state = d_state + d_out
    d_new = jnp.where(m[:, None], d_state, 0.0)
    d_state = jnp.where(m[:, None], 0.0, d_state)  # padded steps pass the state through
    d_pres = [None] * depth
    for layer in reversed(range(depth)):
      d_pre = jnp.concatenate([d_new * g[layer] * (1.0 - h[layer] ** 2),
                               d_new * (h[layer] - inputs[layer]) * g[layer] * (1.0 - g[layer])],
                              axis=-1)
      d_s = jnp.dot(d_pre.astype(dtype), recurrent_t[layer], preferred_element_type=jnp.float32)
      if state_keep is not None:
        d_keep = d_keep.at[layer].add(d_s * inputs[layer])
        d_s = d_s * state_keep[layer]
      d_new = d_new * (1.0 - g[layer]) + d_s
      d_pres[layer] = d_pre
    return (d_state + d_new, d_keep), jnp.stack(d_pres)

  d_keep0 = None if state_keep is None else jnp.zeros_like(state_keep)
  (d_state0, d_keep), d_pre = jax.lax.scan(
      step, (jnp.zeros_like(state0), d_keep0), (d_states, mask, layer_inputs, hs, gs),
      reverse=True)
  # d_pre [T, L, B, 2H]: every weight gradient at once.
  matmul_inputs = layer_inputs if state_keep is None else layer_inputs * state_keep[None]
  d_recurrent = jnp.einsum('tlbh,tlbk->lhk', matmul_inputs.astype(dtype), d_pre.astype(dtype),
                           preferred_element_type=jnp.float32)
  return d_pre[:, 0], None, d_state0, d_recurrent, d_pre.sum((0, 2)), d_keep


rhn_scan.defvjp(_rhn_scan_fwd, _rhn_scan_bwd)


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
  custom_backward: bool = False  # rhn_scan's hand-written VJP instead of scan autodiff

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
    # One matmul for every time step, time-major for the scan.
    projected = jnp.einsum('btd,dk->tbk', inputs.astype(self.dtype), w_in.astype(self.dtype),
                           preferred_element_type=jnp.float32)
    state_keep = _dropout_keep(self, self.state_dropout, (self.depth, batch, self.hidden),
                               deterministic)

    state0 = (jnp.zeros((batch, self.hidden), jnp.float32) if initial_state is None
              else initial_state.astype(jnp.float32))
    time_mask = mask.T.astype(bool)
    if self.custom_backward:
      outputs = rhn_scan(projected, time_mask, state0, recurrent, bias, self.dtype, state_keep)
    else:  # JAX's own scan autodiff (the default: as fast on CPU, see BENCHMARKS.md)
      recurrent_c = recurrent.astype(self.dtype)

      def step(state, xs):
        x_t, m_t = xs
        new = rhn_step(state.astype(self.dtype), x_t.astype(self.dtype), recurrent_c, bias,
                       state_keep).astype(jnp.float32)
        state = jnp.where(m_t[:, None], new, state)
        return state, state
      _, outputs = jax.lax.scan(step, state0, (projected, time_mask))
    final = outputs[-1]
    outputs = outputs.transpose(1, 0, 2)
    output_keep = _dropout_keep(self, self.output_dropout, (batch, 1, self.hidden), deterministic)
    if output_keep is not None:
      outputs = outputs * output_keep
    return outputs, final
