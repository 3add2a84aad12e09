"""The RHN against an independent NumPy implementation of Zilly et al.'s equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vrash_jax.rhn import RHN, prefetched_scan, rhn_step

B, T, D, H, L = 3, 6, 5, 7, 3


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


def numpy_rhn(x, mask, w_in, recurrent, bias, state):
  """Eqs. 6-8 of Zilly et al. with separate H and T matrices, one time step at a time."""
  w_h, w_t = w_in[:, :H], w_in[:, H:]
  outputs = []
  for t in range(x.shape[1]):
    s = state
    for l in range(L):
      r_h, r_t = recurrent[l][:, :H], recurrent[l][:, H:]
      h = np.tanh((x[:, t] @ w_h if l == 0 else 0) + s @ r_h + bias[l, :H])
      g = sigmoid((x[:, t] @ w_t if l == 0 else 0) + s @ r_t + bias[l, H:])
      s = h * g + s * (1 - g)  # carry gate c = 1 - t
    state = np.where(mask[:, t, None], s, state)
    outputs.append(state)
  return np.stack(outputs, 1), state


def _setup():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, T, D)).astype(np.float32)
  mask = np.arange(T)[None, :] < np.array([[6], [4], [1]])
  module = RHN(hidden=H, depth=L, transform_bias=-1.5)
  params = module.init(jax.random.key(0), x, mask)['params']
  return module, params, x, mask


def test_transform_gate_bias_starts_negative():
  _, params, _, _ = _setup()
  np.testing.assert_array_equal(params['bias'][:, H:], -1.5)
  np.testing.assert_array_equal(params['bias'][:, :H], 0.0)


def test_one_step_matches_numpy():
  _, params, x, mask = _setup()
  state = np.random.default_rng(1).normal(size=(B, H)).astype(np.float32)
  got = rhn_step(jnp.asarray(state), jnp.asarray(x[:, 0] @ params['w_in']), params['recurrent'], params['bias'])
  weights = (np.asarray(params[k]) for k in ('w_in', 'recurrent', 'bias'))
  want, _ = numpy_rhn(x[:, :1], np.ones((B, 1), bool), *weights, state)
  np.testing.assert_allclose(got, want[:, 0], rtol=1e-5, atol=1e-5)


def test_sequence_with_padding_matches_numpy():
  module, params, x, mask = _setup()
  state = np.random.default_rng(2).normal(size=(B, H)).astype(np.float32)
  outputs, final = module.apply({'params': params}, x, mask, jnp.asarray(state))
  want_outputs, want_final = numpy_rhn(x, mask, *(np.asarray(params[k]) for k in ('w_in', 'recurrent', 'bias')), state)
  np.testing.assert_allclose(outputs, want_outputs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(final, want_final, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(final[2], outputs[2, 0], rtol=1e-6)  # one real note: state after it


def test_dropout_masks_are_per_sequence():
  module = RHN(hidden=H, depth=L, input_dropout=0.5, state_dropout=0.5, output_dropout=0.5)
  _, params, x, mask = _setup()
  outputs, _ = module.apply({'params': params}, x, np.ones((B, T), bool), deterministic=False,
                            rngs={'dropout': jax.random.key(3)})
  dropped = np.asarray(outputs) == 0
  assert dropped.any() and not dropped.all()
  assert (dropped == dropped[:, :1]).all()  # the same units are dropped at every step
  again, _ = module.apply({'params': params}, x, np.ones((B, T), bool))
  assert not (np.asarray(again) == 0).any()


# bf16 keeps 8 bits of mantissa (~0.4% per rounding): in bf16 the hand-written backward agrees
# with autodiff (also in bf16) within this share of each leaf's largest gradient (measured: 0.7%).
BF16_GRAD_TOLERANCE = 0.02


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_custom_backward_matches_scan_autodiff(dtype):
  """rhn_scan's hand-written VJP gives JAX autodiff's gradients, with padding and dropout."""
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(B, T, D)).astype(np.float32))
  mask = np.arange(T)[None, :] < np.array([[6], [4], [1]])
  state0 = jnp.asarray(rng.normal(size=(B, H)).astype(np.float32))
  cotangent = jnp.asarray(rng.normal(size=(B, T, H)).astype(np.float32))
  kwargs = dict(hidden=H, depth=L, input_dropout=0.2, state_dropout=0.3, output_dropout=0.2, dtype=dtype)
  params = RHN(**kwargs).init(jax.random.key(0), x, mask)['params']

  def grads(custom_backward):
    module = RHN(**kwargs, custom_backward=custom_backward)

    def loss(params, x, state0):
      outputs, final = module.apply({'params': params}, x, mask, state0, deterministic=False,
                                    rngs={'dropout': jax.random.key(5)})
      assert outputs.dtype == final.dtype == jnp.float32  # the state stays float32 in bf16 too
      return (outputs * cotangent).sum() + (final ** 2).sum()

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, x, state0)

  (want_loss, want), (got_loss, got) = grads(False), grads(True)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6 if dtype == jnp.float32 else 1e-3)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    g, w = np.asarray(g), np.asarray(w)
    assert g.dtype == np.float32 and np.abs(w).max() > 0
    if dtype == jnp.float32:
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    else:
      assert np.abs(g - w).max() <= BF16_GRAD_TOLERANCE * np.abs(w).max()


def test_custom_backward_gives_the_dropout_masks_their_gradient():
  from vrash_jax.rhn import rhn_scan
  rng = np.random.default_rng(6)
  args = (jnp.asarray(rng.normal(size=(T, B, 2 * H)), jnp.float32), jnp.ones((T, B), bool),
          jnp.asarray(rng.normal(size=(B, H)), jnp.float32),
          jnp.asarray(rng.normal(size=(L, H, 2 * H)) / H**0.5, jnp.float32),
          jnp.zeros((L, 2 * H), jnp.float32))
  keep = jnp.asarray(rng.uniform(0.5, 1.5, size=(L, B, H)), jnp.float32)

  def reference(keep):
    def step(state, xs):
      return (s := jnp.where(xs[1][:, None], rhn_step(state, xs[0], args[3], args[4], keep),
                             state)), s
    return jax.lax.scan(step, args[2], args[:2])[1].sum()

  got = jax.grad(lambda k: rhn_scan(*args, jnp.float32, k).sum())(keep)
  np.testing.assert_allclose(got, jax.grad(reference)(keep), rtol=1e-4, atol=1e-5)


def test_prefetched_scan_equals_lax_scan():
  xs = (jnp.arange(12.0).reshape(4, 3), jnp.array([True, False, True, True]))

  def step(carry, x):
    values, keep = x
    carry = carry * 0.5 + jnp.where(keep, values.sum(), -1.0)
    return carry, (carry, values * carry)

  expected = jax.lax.scan(step, jnp.float32(1.0), xs)
  got = prefetched_scan(step, jnp.float32(1.0), xs)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize('custom_backward', [True, False])
def test_unrolled_scans_give_the_same_outputs_and_gradients(custom_backward):
  """scan_unroll changes how the loop runs (3 time steps an iteration, T = 6 and 7), not its figures."""
  rng = np.random.default_rng(8)
  kwargs = dict(hidden=H, depth=L, state_dropout=0.3, custom_backward=custom_backward)

  def loss(params, x, mask, unroll):
    outputs, final = RHN(**kwargs, scan_unroll=unroll).apply(
        {'params': params}, x, mask, deterministic=False, rngs={'dropout': jax.random.key(1)})
    return (outputs ** 2).sum() + final.sum()

  for steps in (T, T + 1):
    x = jnp.asarray(rng.normal(size=(B, steps, D)).astype(np.float32))
    mask = np.arange(steps)[None, :] < np.array([[steps], [4], [1]])
    params = RHN(**kwargs).init(jax.random.key(0), x, mask)['params']
    (want, want_grads), (got, got_grads) = (jax.value_and_grad(loss)(params, x, mask, u) for u in (1, 3))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6), got_grads, want_grads)


def test_scan_unroll_zero_is_the_platforms_measured_best(pretend_platform):
  from vrash_jax import rhn
  assert rhn.scan_unroll(3) == 3 and rhn.scan_unroll(0) == 1  # this CPU: no unrolling
  pretend_platform('gpu')
  assert rhn.scan_unroll(0) == rhn.PLATFORM_UNROLL['gpu'] == 8 and rhn.scan_unroll(2) == 2
