"""A group's step compiled ahead at every width, in a thread pool: the widths its batches take,
and programs that step exactly as the jitted step's first calls do."""
import jax
import numpy as np

from experiments.configs import smoke
from vrash_jax import compile_ahead, input_pipeline, sharding, train
from vrash_jax.study import run_plan
from vrash_jax.train_state import create_state, purpose_rng


def varied(data_dir, max_len):
  """The tiny training split with melodies cut to lengths 1..max_len (its chunks are all full)."""
  arrays = dict(input_pipeline.load_split(data_dir, 'train', max_len))
  lengths = np.random.default_rng(0).integers(1, max_len + 1, len(arrays['length'])).astype(np.int32)
  arrays['length'], arrays['mask'] = lengths, arrays['mask'] & (np.arange(max_len)[None] < lengths[:, None])
  return arrays


def test_the_widths_are_every_width_the_groups_batches_take(tiny_dataset):
  config = smoke.get_config('lm')
  config.bucket_step = 4
  arrays = varied(tiny_dataset, config.max_len)
  batches = [input_pipeline.TrainBatches(arrays, config.batch_size, s, bucket_step=4) for s in range(3)]
  steps = 3 * batches[0].batches_per_epoch
  taken = {max(b(s)['mask'].shape[1] for b in batches) for s in range(steps)}
  assert compile_ahead.group_widths(batches, 0, steps) == sorted(taken)
  assert len(taken) > 1  # several widths, so that the pool has work to share


def test_programs_compiled_in_threads_step_as_the_jitted_step(tiny_dataset):
  config = smoke.get_config('lm')  # the smallest model: compiling it at every width is this test's cost
  config.bucket_step = 4
  configs = run_plan.seeded(config, 2)
  mesh = sharding.group_mesh(2)
  arrays = varied(tiny_dataset, config.max_len)
  batches = [input_pipeline.TrainBatches(arrays, config.batch_size, c.seed, bucket_step=4) for c in configs]
  widths = compile_ahead.group_widths(batches, 0, 2 * batches[0].batches_per_epoch)

  init = jax.jit(lambda rng: create_state(config, rng), out_shardings=sharding.replicated(mesh))
  first = train.stack([init(purpose_rng(c.seed, 'init')) for c in configs], mesh)

  def state():  # a copy of the first state each time (the step donates it)
    return jax.tree.map(lambda x: x.copy(), first)

  rngs, hyper, active = train.group_inputs(configs, mesh)
  step_fn = train.jit_group_step(config, mesh)

  def args_at(width):
    sample = batches[0](0, rows=slice(0, 0), width=width)
    return state(), compile_ahead.abstract_group_batch(sample, 2, config.batch_size, mesh), rngs, hyper, active

  compiled = compile_ahead.compile_widths(step_fn, args_at, widths, max_workers=2)
  assert sorted(compiled) == widths
  for width in widths[:2]:
    batch = sharding.shard_group_batch([lambda rows, b=b, w=width: b(0, rows=rows, width=w) for b in batches], mesh,
                                       config.batch_size)
    ahead, _ = compiled[width](state(), batch, rngs, hyper, active)
    jitted, _ = step_fn(state(), batch, rngs, hyper, active)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ahead.params), jax.device_get(jitted.params))
