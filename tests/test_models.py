"""Every model: shapes, masking, what each decoder may see, and gradient flow (the Transformer's own
properties: test_transformer.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import config_rules, losses, models, notes

B, T = 4, 10


def make_batch(seed=0, lengths=(10, 7, 3, 1)):
  rng = np.random.default_rng(seed)
  batch = {f: rng.integers(0, n, (B, T)).astype(np.int32) for f, n in notes.VOCAB_SIZES.items()}
  batch['mask'] = np.arange(T)[None, :] < np.array(lengths)[:, None]
  batch.update({f: rng.integers(0, n, (B,)).astype(np.int32) for f, n in notes.META_FIELDS.items()})
  return batch


def build(name):
  config = smoke.get_config(name)
  model = models.MelodyModel(config)
  params = model.init(jax.random.key(0), make_batch())['params']
  return model, params


@pytest.mark.parametrize('name', models.MODELS)
def test_three_heads_and_posterior_shapes(name):
  model, params = build(name)
  logits, posterior = model.apply({'params': params}, make_batch())
  assert {f: v.shape for f, v in logits.items()} == {f: (B, T, n) for f, n in notes.VOCAB_SIZES.items()}
  if name in config_rules.LANGUAGE_MODELS:
    assert posterior is None and 'encoder' not in params
  else:
    assert [p.shape for p in posterior] == [(B, 4), (B, 4)]


@pytest.mark.parametrize('name', models.MODELS)
def test_padding_changes_nothing(name):
  model, params = build(name)
  batch, other = make_batch(0), make_batch(1)
  noisy = dict(batch)
  for f in notes.TOKEN_FIELDS:
    noisy[f] = np.where(batch['mask'], batch[f], other[f])
  a, pa = model.apply({'params': params}, batch)
  b, pb = model.apply({'params': params}, noisy)
  for f in notes.TOKEN_FIELDS:
    np.testing.assert_allclose(np.asarray(a[f])[batch['mask']], np.asarray(b[f])[batch['mask']], atol=1e-6)
  loss_a = losses.loss_and_sums(a, pa, batch, 1.0, 0.0)[0]
  loss_b = losses.loss_and_sums(b, pb, noisy, 1.0, 0.0)[0]
  assert float(loss_a) == pytest.approx(float(loss_b), abs=1e-6)


@pytest.mark.parametrize('name', models.MODELS)
def test_each_model_is_built_as_the_table_of_model_kinds_says(name):
  spec = config_rules.MODEL_SPECS[name]
  _, params = build(name)
  assert ('encoder' in params) == spec.latent and ('attention_in' in params) == spec.attention
  if spec.language_model:  # compared with the language model of the same decoder
    language = config_rules.MODEL_SPECS[spec.language_model]
    assert spec.latent and spec.history and not language.latent and language.attention == spec.attention


def _decode(model, params, batch, z):
  return model.apply({'params': params}, batch, z, method=models.MelodyModel.decode)[0]['pitch_class']


@pytest.mark.parametrize('name, sees_history', [('lm', True), ('vae', False), ('vrash', True), ('tlm', True),
                                                ('tvrash', True)])
def test_decoders_see_only_earlier_notes_and_only_with_history(name, sees_history):
  model, params = build(name)
  batch = make_batch()
  changed = dict(batch, pitch_class=batch['pitch_class'].copy())
  changed['pitch_class'][:, 4] = (changed['pitch_class'][:, 4] + 1) % 12
  z = None if name in config_rules.LANGUAGE_MODELS else jnp.ones((B, 4))
  a, b = np.asarray(_decode(model, params, batch, z)), np.asarray(_decode(model, params, changed, z))
  np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)  # position 4 predicts note 4
  assert (not np.allclose(a[0, 5:], b[0, 5:])) == sees_history


def test_reparameterization_gradient_is_analytic():
  rng = jax.random.key(0)
  mean, log_var = jnp.array([0.5, -1.0]), jnp.array([0.2, -0.4])
  eps = jax.random.normal(rng, mean.shape)
  g_mean, g_log_var = jax.grad(lambda m, v: models.reparameterize(rng, m, v).sum(), (0, 1))(mean, log_var)
  np.testing.assert_allclose(g_mean, [1, 1])
  np.testing.assert_allclose(g_log_var, 0.5 * jnp.exp(0.5 * log_var) * eps, rtol=1e-6)


@pytest.mark.parametrize('name', ['vae', 'vrash', 'tvrash'])
def test_reconstruction_gradient_reaches_the_encoder(name):
  model, params = build(name)
  batch = make_batch()

  def reconstruction(p):
    logits, _ = model.apply({'params': p}, batch, deterministic=False,
                            rngs={'dropout': jax.random.key(1), 'latent': jax.random.key(2)})
    return sum(losses.cross_entropy_sums(logits, batch).values())

  grads = jax.grad(reconstruction)(params)
  assert float(jnp.abs(grads['encoder']['w_in']).sum()) > 0
  assert float(jnp.abs(grads['posterior']['kernel']).sum()) > 0
