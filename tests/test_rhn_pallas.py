"""The fused Pallas kernels of the RHN (run here by Pallas's interpreter) against the library's
equations (`rhn_step`) and its hand-written backward, and their lowering to Triton: 'pallas' (a
kernel a scan, `kernels/rhn_pallas.py`) and 'pallas_layer' (a kernel a micro-layer inside XLA's
scans, `kernels/rhn_layer_pallas.py`)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vrash_jax.errors import VrashError
from vrash_jax.rhn import RHN, rhn_scan, rhn_step

T, D, L = 7, 5, 3
KERNELS = ('pallas', 'pallas_layer')


def _inputs(batch, hidden, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, T + 1, size=batch)
  lengths[0] = T
  return dict(
      projected=jnp.asarray(rng.normal(size=(T, batch, 2 * hidden)), jnp.float32),
      mask=jnp.asarray(np.arange(T)[:, None] < lengths[None]),
      state0=jnp.asarray(rng.normal(size=(batch, hidden)), jnp.float32),
      recurrent=jnp.asarray(rng.normal(size=(L, hidden, 2 * hidden)) / hidden ** 0.5, jnp.float32),
      bias=jnp.asarray(rng.normal(size=(L, 2 * hidden)), jnp.float32),
      keep=jnp.asarray(rng.binomial(1, 0.7, size=(L, batch, hidden)) / 0.7, jnp.float32))


def _scan(x, kernel, dtype=jnp.float32, dropout=True, unroll=1, **overrides):
  x = {**x, **overrides}
  return rhn_scan(x['projected'], x['mask'], x['state0'], x['recurrent'], x['bias'], dtype,
                  x['keep'] if dropout else None, unroll, kernel)


@pytest.mark.parametrize('kernel', KERNELS)
# Melodies padded to 16, 32 and 80 in blocks of 16 ('pallas'); to 16, 32 and 96 in blocks of up to 32 ('pallas_layer').
@pytest.mark.parametrize('batch, hidden, keep', [(5, 24, False), (20, 16, True), (70, 48, True)])
def test_the_fused_forward_steps_as_rhn_step_does(kernel, batch, hidden, keep):
  x = _inputs(batch, hidden)
  state, want = x['state0'], []
  for t in range(T):
    new = rhn_step(state, x['projected'][t], x['recurrent'], x['bias'], x['keep'] if keep else None)
    state = jnp.where(x['mask'][t][:, None], new, state)
    want.append(state)
  got = jax.jit(lambda x: _scan(x, kernel, dropout=keep))(x)
  np.testing.assert_allclose(got, jnp.stack(want), rtol=1e-5, atol=1e-6)


def _gradients(x, kernel, dtype, keep, unroll=1):
  cotangent = jnp.asarray(np.random.default_rng(9).normal(size=(T,) + x['state0'].shape), jnp.float32)
  names = ('projected', 'state0', 'recurrent', 'bias') + (('keep',) if keep else ())

  def loss(*values):
    return (_scan(x, kernel, dtype, dropout=keep, unroll=unroll, **dict(zip(names, values))) * cotangent).sum()

  return jax.jit(jax.grad(loss, argnums=tuple(range(len(names)))))(*(x[n] for n in names))


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('keep', [False, True])
def test_the_fused_backward_gives_the_hand_written_backwards_gradients(kernel, dtype, keep):
  """Every gradient of rhn_scan (inputs, first state, weights, biases, dropout masks), with
  melodies of different lengths, through the kernels and through XLA's scans (unrolled twice for
  'pallas_layer', whose kernels sit in them)."""
  x = _inputs(20, 16, seed=1)
  unroll = 2 if kernel == 'pallas_layer' else 1
  want, got = (_gradients(x, k, dtype, keep, unroll) for k in ('xla', kernel))
  for g, w in zip(got, want):
    assert np.abs(w).max() > 0
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


@pytest.mark.parametrize('kernel', KERNELS)
def test_a_vmapped_group_of_runs_gets_each_runs_own_gradients(kernel):
  """Groups train vmapped: Pallas batches the kernels over runs (a grid axis of their own)."""
  x = _inputs(5, 16, seed=2)
  weights = jnp.stack([x['recurrent'] * s for s in (0.5, 1.0, 1.5)])
  projected = jnp.stack([x['projected'] * s for s in (1.0, -1.0, 2.0)])

  def group(kernel):
    def one(p, w):
      return (_scan(x, kernel, projected=p, recurrent=w) ** 2).sum()
    return jax.jit(jax.vmap(jax.value_and_grad(one, argnums=(0, 1))))(projected, weights)

  for g, w in zip(jax.tree.leaves(group(kernel)), jax.tree.leaves(group('xla'))):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


@pytest.mark.parametrize('kernel', KERNELS)
def test_the_rhn_layer_with_the_kernels_trains_as_with_xlas_scans(kernel):
  rng = np.random.default_rng(3)
  inputs = jnp.asarray(rng.normal(size=(4, T, D)), jnp.float32)
  mask = np.arange(T)[None, :] < np.array([[T], [5], [2], [1]])
  kwargs = dict(hidden=16, depth=L, input_dropout=0.2, state_dropout=0.3, output_dropout=0.2)
  params = RHN(**kwargs).init(jax.random.key(0), inputs, mask)['params']

  def run(kernel):
    def loss(params):
      outputs, final = RHN(**kwargs, kernel=kernel).apply(
          {'params': params}, inputs, mask, deterministic=False, rngs={'dropout': jax.random.key(4)})
      return (outputs ** 2).sum() + final.sum()
    return jax.value_and_grad(loss)(params)

  (want, want_grads), (got, got_grads) = run('xla'), run(kernel)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5), got_grads, want_grads)


@pytest.mark.parametrize('kernel, calls', [('pallas', 2), ('pallas_layer', 2 * L)])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_the_kernels_lower_to_triton_at_the_papers_size(pretend_platform, kernel, calls, dtype):
  """A group of two runs' gradient step, hidden 256, depth 3, 64 melodies, lowered for a GPU
  from this CPU: each kernel must become one Triton call (value slices, tile shapes that are
  not powers of two or a Mosaic GPU default would fail here): a forward and a backward kernel a
  scan, or a micro-layer."""
  pretend_platform('gpu')
  batch, hidden = 64, 256
  arrays = {'projected': (T, batch, 2 * hidden), 'state0': (batch, hidden),
            'recurrent': (L, hidden, 2 * hidden), 'bias': (L, 2 * hidden), 'keep': (L, batch, hidden)}
  mask = jnp.ones((T, batch), bool)

  def loss(projected, state0, recurrent, bias, keep):
    return rhn_scan(projected, mask, state0, recurrent, bias, dtype, keep, 1, kernel).sum()

  step = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2, 3, 4))))
  shapes = [jax.ShapeDtypeStruct((2,) + s, jnp.float32) for s in arrays.values()]
  text = step.trace(*shapes).lower(lowering_platforms=('cuda',)).as_text()
  assert text.count('custom_call @__gpu$xla.gpu.triton') == calls
  if kernel == 'pallas_layer':  # named, for a profile's reader
    assert text.count('rhn_layer_forward') >= L and text.count('rhn_layer_backward') >= L
  assert 'mosaic' not in text


def test_the_kernels_say_what_a_gpu_cannot_run(pretend_platform):
  x = _inputs(4, 24)
  pretend_platform('gpu')
  with pytest.raises(VrashError, match=r'config.hidden=24 does not split into tiles of at least 16'):
    jax.eval_shape(lambda x: _scan(x, 'pallas'), x)
  with pytest.raises(VrashError, match=r'config.hidden=24 must be a power of two of at least 16 on GPUs'):
    jax.eval_shape(lambda x: _scan(x, 'pallas_layer'), x)
  pretend_platform('tpu')
  for kernel in KERNELS:
    with pytest.raises(VrashError, match=f"rhn_kernel='{kernel}' is written for GPUs .* not tpu; use "
                                         "config.rhn_kernel='xla'"):
      jax.eval_shape(functools.partial(_scan, kernel=kernel), x)


def test_the_kernels_are_not_silently_dropped_for_scan_autodiff():
  inputs, mask = jnp.zeros((2, T, D)), np.ones((2, T), bool)
  with pytest.raises(VrashError, match="RHN kernel 'pallas' needs custom_backward=True"):
    RHN(hidden=16, depth=L, custom_backward=False, kernel='pallas').init(jax.random.key(0), inputs, mask)
