"""The Transformer decoder (`tlm`, `tvrash`): causality, padding on either side, the latent
variant reduced to the language model, and cached decoding against the whole melody at once."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import models, notes, transformer

B, T = 3, 12


def make_batch(seed=0, length=T):
  rng = np.random.default_rng(seed)
  batch = {f: rng.integers(0, n, (B, length)).astype(np.int32) for f, n in notes.VOCAB_SIZES.items()}
  batch['mask'] = np.ones((B, length), bool)
  batch.update({f: rng.integers(0, n, (B,)).astype(np.int32) for f, n in notes.META_FIELDS.items()})
  return batch


def build(name, dtype='float32'):
  config = smoke.get_config(name)
  config.dtype = dtype
  model = models.MelodyModel(config)
  return model, model.init(jax.random.key(0), make_batch())['params']


def history(batch):
  return {f: np.asarray(models.shift_right(jnp.asarray(batch[f]), notes.VOCAB_SIZES[f])) for f in notes.TOKEN_FIELDS}


def decode(model, params, batch, z=None):
  logits, _ = model.apply({'params': params}, batch, z, method=models.MelodyModel.decode)
  return {f: np.asarray(v) for f, v in logits.items()}


@pytest.mark.parametrize('name', ['tlm', 'tvrash'])
def test_an_output_never_depends_on_later_inputs(name):
  model, params = build(name)
  z = None if name == 'tlm' else jnp.ones((B, 4))
  batch = dict(make_batch(), history=history(make_batch()))
  base = decode(model, params, batch, z)
  for t in (0, 5, T - 2):
    changed = {f: v.copy() for f, v in batch['history'].items()}
    other = make_batch(seed=t + 1)
    for f in notes.TOKEN_FIELDS:
      changed[f][:, t + 1:] = other[f][:, t + 1:]
    out = decode(model, params, dict(batch, history=changed), z)
    for f in notes.TOKEN_FIELDS:
      np.testing.assert_allclose(out[f][:, :t + 1], base[f][:, :t + 1], atol=1e-6)
      assert not np.allclose(out[f][:, t + 1:], base[f][:, t + 1:])


@pytest.mark.parametrize('before, after', [(0, 5), (4, 0), (3, 6)])
def test_masked_padding_on_either_side_changes_no_output(before, after):
  """Rotary positions are relative, so a melody shifted right by masked padding reads the same."""
  model, params = build('tvrash')
  batch = make_batch()
  z = jnp.asarray(np.random.default_rng(5).normal(size=(B, 4)), jnp.float32)
  alone = decode(model, params, dict(batch, history=history(batch)), z)
  junk = make_batch(seed=9, length=before + T + after)
  padded = {f: junk[f].copy() for f in notes.TOKEN_FIELDS}
  padded_history = {f: junk[f].copy() for f in notes.TOKEN_FIELDS}
  for f in notes.TOKEN_FIELDS:
    padded[f][:, before:before + T] = batch[f]
    padded_history[f][:, before:before + T] = history(batch)[f]
  mask = np.zeros((B, before + T + after), bool)
  mask[:, before:before + T] = True
  meta = {f: batch[f] for f in notes.META_FIELDS}
  out = decode(model, params, dict(padded, **meta, mask=mask, history=padded_history), z)
  for f in notes.TOKEN_FIELDS:
    np.testing.assert_allclose(out[f][:, before:before + T], alone[f], atol=2e-5)


def test_the_latent_variant_with_its_projection_zeroed_is_the_language_model():
  lm, lm_params = build('tlm')
  latent, latent_params = build('tvrash')
  params = {**latent_params, **lm_params}  # the LM's embeddings, decoder and heads
  params['latent_to_input'] = jax.tree_util.tree_map(jnp.zeros_like, latent_params['latent_to_input'])
  batch = make_batch()
  expected = decode(lm, lm_params, batch)
  got = decode(latent, params, batch, jnp.zeros((B, 4)))
  full, _ = latent.apply({'params': params}, batch)  # the encoder's z reaches nothing
  for f in notes.TOKEN_FIELDS:
    np.testing.assert_allclose(got[f], expected[f], atol=1e-6)
    np.testing.assert_allclose(np.asarray(full[f]), expected[f], atol=1e-6)
  assert set(lm_params) < set(latent_params)


@pytest.mark.parametrize('name, dtype', [('tlm', 'float32'), ('tvrash', 'float32'), ('tvrash', 'bfloat16')])
def test_cached_decoding_note_by_note_equals_the_whole_melody(name, dtype):
  model, params = build(name, dtype)
  batch = make_batch()
  z = None if name == 'tlm' else jnp.asarray(np.random.default_rng(2).normal(size=(B, 4)), jnp.float32)
  whole = decode(model, params, batch, z)
  cache = model.apply({'params': params}, z, B, T, method=models.MelodyModel.initial_decoder_state)
  meta = {f: batch[f] for f in notes.META_FIELDS}
  steps = []
  for t in range(T):
    previous = {f: history(batch)[f][:, t:t + 1] for f in notes.TOKEN_FIELDS}
    step = dict(meta, mask=np.ones((B, 1), bool), history=previous)
    logits, cache = model.apply({'params': params}, step, z, True, cache, method=models.MelodyModel.decode)
    steps.append(np.asarray(logits['pitch_class'])[:, 0])
  assert int(cache['index']) == T
  tolerance = 1e-5 if dtype == 'float32' else 5e-2
  np.testing.assert_allclose(np.stack(steps, 1), whole['pitch_class'], atol=tolerance)


def test_rotary_scores_depend_only_on_the_distance():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 8)), jnp.float32) for _ in range(2))

  def score(m, n):
    return float((transformer.rotate(q, jnp.array([m])) * transformer.rotate(k, jnp.array([n]))).sum())

  assert score(7, 3) == pytest.approx(score(4, 0), abs=1e-5)
  assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
  assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)
  np.testing.assert_allclose(transformer.rotate(q, jnp.array([0])), q)  # position 0 is no turn
