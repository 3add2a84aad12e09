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
    recurrent = recurrent.astype(self.dtype)

    def step(state, xs):
      x_t, m_t = xs
      new = rhn_step(state.astype(self.dtype), x_t.astype(self.dtype), recurrent, bias,
                     state_keep).astype(jnp.float32)
      state = jnp.where(m_t[:, None], new, state)
      return state, state

    state0 = (jnp.zeros((batch, self.hidden), jnp.float32) if initial_state is None
              else initial_state.astype(jnp.float32))
    final, outputs = jax.lax.scan(step, state0, (projected, mask.T.astype(bool)))
    outputs = outputs.transpose(1, 0, 2)
    output_keep = _dropout_keep(self, self.output_dropout, (batch, 1, self.hidden), deterministic)
    if output_keep is not None:
      outputs = outputs * output_keep
    return outputs, final
