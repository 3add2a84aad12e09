"""Losses against independent references: a general Gaussian KL, Monte Carlo, log-softmax."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vrash_jax import losses


def normal_kl(mu1, sigma1, mu2, sigma2):
  """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)) for univariate Gaussians."""
  return np.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2 * sigma2**2) - 0.5


def test_kl_matches_the_analytic_formula_and_monte_carlo():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(4, 3)).astype(np.float32)
  log_var = rng.normal(size=(4, 3)).astype(np.float32)
  got = np.asarray(losses.gaussian_kl(jnp.asarray(mean), jnp.asarray(log_var)))
  np.testing.assert_allclose(got, normal_kl(mean, np.exp(0.5 * log_var), 0.0, 1.0), rtol=1e-5)
  sigma = np.exp(0.5 * log_var[0, 0])
  z = mean[0, 0] + sigma * rng.normal(size=400_000)
  log_q = -0.5 * ((z - mean[0, 0]) / sigma) ** 2 - np.log(sigma)
  log_p = -0.5 * z**2
  assert got[0, 0] == pytest.approx(np.mean(log_q - log_p), abs=0.01)


def test_free_bits_leave_small_dimensions_unpenalized():
  def kl_of(mean):
    return losses.free_bits_kl(losses.gaussian_kl(mean, jnp.zeros_like(mean)), 0.5)

  mean = jnp.array([[0.1, 2.0], [0.1, 2.0]])  # per-dim KL 0.005 and 2.0
  assert float(kl_of(mean)) == pytest.approx(2 * (0.5 + 2.0))
  grad = jax.grad(kl_of)(mean)
  assert (grad[:, 0] == 0).all() and (grad[:, 1] != 0).all()


def test_kl_weight_anneals_linearly():
  assert [float(losses.kl_weight(jnp.array(s), 10)) for s in (0, 5, 10, 20)] == [0, 0.5, 1, 1]
  assert float(losses.kl_weight(jnp.array(0), 0)) == 1


def test_kl_weight_is_zero_while_pretraining_then_anneals():
  weights = [float(losses.kl_weight(jnp.array(s), 10, pretrain_steps=30)) for s in (0, 29, 30, 35, 40, 99)]
  assert weights == [0, 0, 0, 0.5, 1, 1]


def test_cyclical_kl_weight_rises_over_the_first_half_of_each_cycle():
  # 100 steps after 20 of pretraining, 4 cycles of 25 steps: rise over 12.5 steps, then 1.
  def weight(s):
    return float(losses.kl_weight(jnp.array(s), 0, pretrain_steps=20, cycles=4, train_steps=120))

  assert weight(10) == 0
  assert [weight(20 + s) for s in (0, 5, 12.5, 20, 25, 30, 50, 99)] == pytest.approx(
      [0, 0.4, 1, 1, 0, 0.4, 0, 1])


def test_free_bits_arithmetic_by_hand():
  kl = jnp.array([[0.1, 0.9, 0.0], [0.3, 1.3, 0.0], [0.0, 0.0, 0.0]])  # the third row is padding
  # Batch means over the two real rows: 0.2, 1.1, 0; floors of 0.25: 0.25, 1.1, 0.25 -> 1.6 x 2.
  assert float(losses.free_bits_kl(kl, 0.25, sequences=2)) == pytest.approx(3.2)
  assert float(losses.free_bits_kl(kl, 0.0)) == pytest.approx(2.6)


def test_cross_entropy_counts_only_real_notes():
  rng = np.random.default_rng(1)
  logits = {f: rng.normal(size=(2, 3, n)).astype(np.float32)
            for f, n in (('pitch_class', 12), ('octave', 11), ('delay', 104))}
  batch = {'pitch_class': rng.integers(0, 12, (2, 3)), 'octave': rng.integers(0, 11, (2, 3)),
           'delay': rng.integers(0, 104, (2, 3)), 'mask': np.array([[1, 1, 0], [1, 0, 0]], bool)}
  got = losses.cross_entropy_sums(logits, batch)
  for f, logit in logits.items():
    log_p = logit - np.log(np.exp(logit).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, batch[f][..., None], -1)[..., 0]
    assert float(got[f]) == pytest.approx(-(picked * batch['mask']).sum(), rel=1e-5)


def test_per_note_figures():
  sums = {'ce_total': 30.0, 'ce_pitch': 10.0, 'ce_octave': 5.0, 'ce_delay': 15.0, 'kl': 8.0,
          'notes': 10, 'sequences': 2}
  out = losses.per_note(sums)
  assert out['ce_total'] == 3.0 and out['kl'] == 4.0 and out['nll_bound'] == pytest.approx(3.8)


def test_free_bits_ignore_the_empty_rows_that_complete_a_batch():
  # Two real melodies with per-dimension KL [0.2, 3.0] and [0.4, 1.0]; free bits 0.5.
  # Hand computation: batch means [0.3, 2.0] -> max with 0.5 -> [0.5, 2.0] -> sum 2.5 -> x 2 rows.
  real = jnp.array([[0.2, 3.0], [0.4, 1.0]])
  with_empty = jnp.concatenate([real, jnp.zeros((2, 2))])
  assert float(losses.free_bits_kl(real, 0.5)) == pytest.approx(5.0)
  assert float(losses.free_bits_kl(with_empty, 0.5, jnp.float32(2))) == pytest.approx(5.0)
  batch = {'mask': jnp.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool)}
  logits = {f: jnp.zeros((4, 2, 3)) for f in losses.HEADS}
  batch.update({f: jnp.zeros((4, 2), jnp.int32) for f in losses.HEADS})
  posterior = (jnp.zeros((4, 2)), jnp.zeros((4, 2)))
  loss, sums = losses.loss_and_sums(logits, posterior, batch, jnp.float32(1.0), 0.5)
  # KL is 0 everywhere, so each real row pays the floor 2 x 0.5 nats; 3 notes of 3 x log 3.
  assert float(sums['sequences']) == 2
  assert float(loss) == pytest.approx((3 * 3 * np.log(3) + 2 * 1.0) / 3, rel=1e-6)
