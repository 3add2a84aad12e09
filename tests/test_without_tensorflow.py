"""The model, train step, sampler, export and Melodist run where TensorFlow is not installed
(accelerator images often lack it): TensorFlow is only for preparing and reading TFRecords."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import importlib.abc, importlib.machinery, sys

    class WithoutTensorFlow(importlib.abc.MetaPathFinder):
      """The standard path finder, except that TensorFlow is not found: as if not installed."""
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
          return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

    sys.meta_path = [WithoutTensorFlow() if f is importlib.machinery.PathFinder else f
                     for f in sys.meta_path]
    try:
      import tensorflow
      raise AssertionError('tensorflow is still importable')
    except ModuleNotFoundError:
      pass
    import os, tempfile
    import jax, numpy as np
    from experiments.bench.bench_train import synthetic_batch
    from experiments.configs import smoke
    from vrash_jax import Melodist, export, train, train_state

    config = smoke.get_config('vrash')
    state = train_state.create_state(config, jax.random.key(0))
    step = jax.jit(train.make_train_step(config))
    batch = synthetic_batch(config.batch_size, config.max_len)
    for i in range(3):
      state, metrics = step(state, batch, jax.random.key(i))
    assert np.isfinite(float(metrics['loss']))
    out = tempfile.mkdtemp()
    path = export.export_params(state.params, config, os.path.join(out, 'export'), 3)
    melodist = Melodist.load(path)
    tracks = melodist.sample(2, temperature=0.9, seed=0, length=8)
    Melodist.to_midi(tracks[0], os.path.join(out, 'a.mid'))
    z = melodist.encode(tracks)
    assert z.shape == (2, config.latent_dim)
    assert len(melodist.decode(melodist.interpolate(z[0], z[1], steps=3), length=8)) == 3
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets'))
    assert not loaded, loaded
    print('ok without tensorflow')
''')


def test_model_training_sampling_and_export_run_without_tensorflow():
  result = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith('ok without tensorflow')
