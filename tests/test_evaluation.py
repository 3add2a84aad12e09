"""The importance-weighted bound against an exact likelihood."""
import jax
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import evaluation, input_pipeline, models, train_state


def log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize('name', ['vae', 'vrash'])
def test_iw_bound_is_the_exact_likelihood_when_the_decoder_ignores_z(tiny_dataset, name):
  """With q(z|x) = p(z) and a decoder blind to z, every importance weight is p(x): the bound
  (any K) must equal the exact log-likelihood, here summed with numpy from the logits."""
  config = smoke.get_config(name)
  state = train_state.create_state(config, jax.random.key(0))
  params = jax.tree.map(np.array, state.params)
  for part in ('posterior', 'latent_to_state'):  # q = N(0, I) = p(z); initial state tanh(0)
    params[part] = jax.tree.map(np.zeros_like, params[part])
  z_rows = slice(2 * config.meta_embed, 2 * config.meta_embed + config.latent_dim)
  params['decoder']['w_in'][z_rows] = 0.0  # z is the decoder input after the meta embeddings
  state = state.replace(params=params)
  arrays = input_pipeline.load_split(tiny_dataset, 'valid', config.max_len)
  figures = evaluation.evaluate_state(state, config, arrays, iw_samples=7)

  batch = input_pipeline.gather(arrays, np.arange(len(arrays['length'])))
  random_z = jax.random.normal(jax.random.key(3), (len(arrays['length']), config.latent_dim))
  logits, _ = models.MelodyModel(config).apply({'params': params}, batch, random_z, True,
                                               method=models.MelodyModel.decode)
  mask = np.asarray(batch['mask'], bool)
  log_p = sum(np.take_along_axis(log_softmax(np.asarray(logits[f], np.float64)),
                                 np.asarray(batch[f])[..., None], -1)[..., 0][mask].sum()
              for f in models.HEADS)
  exact = -log_p / mask.sum()
  assert figures['kl'] == pytest.approx(0.0, abs=1e-6)
  assert figures['nll_iw'] == pytest.approx(exact, rel=1e-5)
  assert figures['ce_total'] == pytest.approx(exact, rel=1e-5)
  assert figures['nll_bound'] == pytest.approx(exact, rel=1e-5)


def test_a_language_models_figures_are_the_same_at_every_k(tiny_dataset):
  """Its bound is its CE whatever K: one compiled step serves every K."""
  config = smoke.get_config('lm')
  state = train_state.create_state(config, jax.random.key(0))
  arrays = input_pipeline.load_split(tiny_dataset, 'valid', config.max_len)
  at = {k: evaluation.evaluate_state(state, config, arrays, iw_samples=k) for k in (1, 8, 64)}
  assert at[1] == at[8] == at[64] and at[1]['nll_iw'] == at[1]['ce_total']
  assert 'nll_iw' not in evaluation.evaluate_state(state, config, arrays)


def test_the_valid_figures_a_run_logged_are_its_best_checkpoints(tiny_dataset, tmp_path):
  """The frontier takes a run's valid figures from its log instead of evaluating again."""
  from vrash_jax import train
  from vrash_jax.study import measurements

  config = smoke.get_config('vrash')
  train.train_and_evaluate(config, tiny_dataset, str(tmp_path))
  _, state = evaluation.restore_for_inference(str(tmp_path))
  step = int(jax.device_get(state.step))
  arrays = input_pipeline.load_split(tiny_dataset, 'valid', config.max_len)
  logged = measurements.logged_valid(str(tmp_path), step)
  again = evaluation.evaluate_state(state, config, arrays, config.valid_iw_samples)
  assert logged.keys() == again.keys()
  for key in again:
    assert logged[key] == pytest.approx(again[key], rel=1e-6), key
  assert measurements.logged_valid(str(tmp_path), step + 1) is None


@pytest.mark.parametrize('name,runs', [('vrash', 4), ('lm', 3)])
def test_a_groups_runs_evaluated_in_one_step_get_their_own_figures(tiny_dataset, name, runs):
  """A group's stacked state evaluated at once gives each run what it gets alone (its seed's
  latent noise, the same batches), on a mesh whose runs axis splits 8 devices."""
  from vrash_jax import sharding, train

  configs = [smoke.get_config(name) for _ in range(runs)]
  for seed, c in enumerate(configs):
    c.seed = seed
  states = [train_state.create_state(c, train_state.purpose_rng(c.seed, 'init')) for c in configs]
  arrays = input_pipeline.load_split(tiny_dataset, 'valid', configs[0].max_len)
  mesh = sharding.group_mesh(runs)
  together = evaluation.evaluate_group(train.stack(states, mesh), configs, mesh, arrays, iw_samples=5)
  for c, state, figures in zip(configs, states, together):
    alone = evaluation.evaluate_state(state, c, arrays, iw_samples=5)
    assert figures.keys() == alone.keys()
    for key in alone:
      assert figures[key] == pytest.approx(alone[key], rel=1e-5), key
  assert together[0]['ce_total'] != together[1]['ce_total']  # the runs are told apart


def test_on_accelerators_a_split_is_evaluated_at_one_width_with_the_same_figures(tiny_dataset, monkeypatch):
  """Padding every evaluation batch to max_len compiles one program where bucketing compiles one
  a width, and a language model's figures (no latent noise to draw) stay what they were."""
  config = smoke.get_config('lm')
  state = train_state.create_state(config, jax.random.key(0))
  arrays = dict(input_pipeline.load_split(tiny_dataset, 'train', config.max_len))
  arrays['length'] = np.where(np.arange(len(arrays['length'])) % 2, arrays['length'], 5)  # short and long
  arrays['mask'] = arrays['mask'] & (np.arange(config.max_len)[None, :] < arrays['length'][:, None])
  figures, programs = {}, {}
  for padded in (False, True):
    monkeypatch.setattr(evaluation, 'pads_evaluation_to_max_len', lambda padded=padded: padded)
    evaluation.clear_compiled()
    figures[padded] = evaluation.evaluate_state(state, config, arrays, iw_samples=1)
    programs[padded] = evaluation._compiled_eval_step(1)._cache_size()
  assert programs == {False: len(set(input_pipeline.padded_widths(arrays['length'], config.max_len,
                                                                     config.bucket_step).tolist())), True: 1}
  assert programs[False] > 1
  assert figures[True] == pytest.approx(figures[False], rel=1e-5)
