"""config.dtype = 'bfloat16': bf16 compute, float32 parameters, optimizer state and figures."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import smoke
from vrash_jax import Melodist, evaluation, export, input_pipeline, train, train_state

# Evaluation figures in bf16 lie within this many nats per note of float32's with the same
# parameters (the RHN's bf16 gradients are checked in test_rhn).
EVAL_TOLERANCE_NATS = 0.02


def bf16(model='vrash', **changes):
  config = smoke.get_config(model)
  config.dtype = 'bfloat16'
  config.update(changes)
  return config


def test_bf16_training_lowers_the_loss_and_keeps_float32_state(tiny_dataset):
  config = bf16(input_dropout=0.0, state_dropout=0.0, output_dropout=0.0, kl_anneal_steps=0,
                learning_rate=0.01, warmup_steps=1, train_steps=10**6)
  batch = input_pipeline.gather(input_pipeline.load_split(tiny_dataset, 'train', config.max_len),
                                np.arange(8))
  state = train_state.create_state(config, jax.random.key(0))
  step = jax.jit(train.make_train_step(config))
  losses = []
  for _ in range(40):
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics['loss']))
  assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses[::10]
  for leaf in jax.tree.leaves((state.params, state.opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
  logits, _ = state.apply_fn({'params': state.params}, batch)
  assert all(v.dtype == jnp.float32 for v in logits.values())


@pytest.mark.parametrize('model', ['lm', 'vrash'])
def test_bf16_evaluation_is_close_to_float32_with_the_same_parameters(tiny_dataset, model):
  f32 = smoke.get_config(model)
  arrays = input_pipeline.load_split(tiny_dataset, 'valid', f32.max_len)
  state = train_state.create_state(f32, jax.random.key(3))
  want = evaluation.evaluate_state(state, f32, arrays, iw_samples=4)
  half = train_state.create_state(bf16(model), jax.random.key(0)).replace(params=state.params)
  got = evaluation.evaluate_state(half, bf16(model), arrays, iw_samples=4)
  for key in ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'nll_bound', 'nll_iw'):
    assert isinstance(got[key], float) and abs(got[key] - want[key]) <= EVAL_TOLERANCE_NATS, key
  assert want['ce_total'] != got['ce_total']  # bf16 really computed something different


def test_a_bf16_export_loads_and_samples_in_bf16(tiny_dataset, tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(bf16(), tiny_dataset, workdir)
  path = export.export_workdir(workdir, str(tmp_path / 'export'))
  loaded = Melodist.load(path)
  assert loaded.config.dtype == 'bfloat16'
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(loaded.params))
  tracks = loaded.sample(3, temperature=0.9, seed=0, length=10)
  assert [len(t) for t in tracks] == [10] * 3
  as_f32 = Melodist.load(path, dtype='float32')
  assert as_f32.config.dtype == 'float32' and loaded.config.dtype == 'bfloat16'
  assert [len(t) for t in as_f32.sample(3, temperature=0.9, seed=0, length=10)] == [10] * 3


def _primitives(jaxpr):
  """(primitive name, output dtypes) of every equation of JAXPR and the jaxprs inside it."""
  for eqn in jaxpr.eqns:
    yield eqn.primitive.name, [v.aval.dtype for v in eqn.outvars]
    for param in eqn.params.values():
      for inner in param if isinstance(param, (list, tuple)) else [param]:
        inner = getattr(inner, 'jaxpr', inner)  # a ClosedJaxpr's
        if hasattr(inner, 'eqns'):
          yield from _primitives(inner)


@pytest.mark.parametrize('model', ['lm', 'vrash', 'tlm'])
def test_bf16_embedding_gradients_accumulate_in_float32(tiny_dataset, model):
  # A lookup's gradient adds every token's row into a table of a few rows; in bfloat16 that
  # scatter-add made a bf16 step on an H200 2.3x slower than float32's.
  config = bf16(model)
  batch = input_pipeline.gather(input_pipeline.load_split(tiny_dataset, 'train', config.max_len), np.arange(4))
  state = train_state.create_state(config, jax.random.key(0))
  jaxpr = jax.make_jaxpr(train.make_train_step(config))(state, batch, jax.random.key(1)).jaxpr
  scatters = [dtypes for name, dtypes in _primitives(jaxpr) if name.startswith('scatter')]
  assert scatters and all(d == jnp.float32 for dtypes in scatters for d in dtypes), scatters
