"""The train state: parameters, Adam with its learning-rate schedule, and the named RNG streams.

Training (`train`) and evaluation both build on it, so neither needs the other to make or
restore a state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training.train_state import TrainState

from vrash_jax import input_pipeline, models


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine decay to 10% of it at `train_steps`."""
  return optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, max(config.warmup_steps, 1),
      max(config.train_steps, config.warmup_steps + 1), end_value=0.1 * config.learning_rate)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                     optax.adam(learning_rate_schedule(config)))


def dummy_batch(config: ml_collections.ConfigDict, batch_size: int = 1) -> dict[str, jax.Array]:
  """A batch of the right shapes and dtypes (for initialization and shape inference)."""
  tokens = jnp.zeros((batch_size, config.max_len), jnp.int32)
  batch = {f: tokens for f in input_pipeline.SEQUENCE_FIELDS}
  batch['mask'] = jnp.ones((batch_size, config.max_len), bool)
  batch.update({f: jnp.zeros((batch_size,), jnp.int32) for f in input_pipeline.META_FIELDS})
  return batch


def create_state(config: ml_collections.ConfigDict, rng: jax.Array) -> TrainState:
  """Float32 parameters and Adam state, whatever `config.dtype` computes in."""
  model = models.MelodyModel(config)
  params = model.init({'params': rng}, dummy_batch(config))['params']
  state = TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config))
  # A strongly typed step, as a restored checkpoint's: a weakly typed one compiles another train
  # step, which a resumed run could then not find in the persistent compilation cache.
  return state.replace(step=jnp.zeros((), jnp.int32))


RNG_PURPOSES = ('init', 'train', 'eval', 'reset')


def purpose_rng(seed: int, purpose: str) -> jax.Array:
  """The key of one stream of randomness; steps are folded into it later."""
  return jax.random.fold_in(jax.random.key(seed), RNG_PURPOSES.index(purpose))


def reset_decoder(state: TrainState, config: ml_collections.ConfigDict, rng: jax.Array
                  ) -> TrainState:
  """The state with freshly initialized decoder parameters and zero Adam moments for them;
  the encoder, embeddings and step count are kept (the end of encoder pretraining)."""
  fresh = create_state(config, rng).params

  def reset(tree, new):
    return {k: new[k] if k in models.DECODER_PARAMS else v for k, v in tree.items()}

  zeros = jax.tree.map(jnp.zeros_like, fresh)

  def reset_moments(s):
    if isinstance(s, optax.ScaleByAdamState):
      return s._replace(mu=reset(s.mu, zeros), nu=reset(s.nu, zeros))
    return s

  opt_state = jax.tree.map(reset_moments, state.opt_state,
                           is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
  return state.replace(params=reset(state.params, fresh), opt_state=opt_state)
