"""The training side where TensorFlow is not installed, as on GPU and TPU images: `vrash-train`
(and its resume), `vrash-eval`, `vrash-export`, `vrash-sample` and `Melodist` on a prepared
dataset. TensorFlow is made absent the way an uninstall makes it absent: the launchers run with
`python -S` over a folder of links to every site-packages entry except TensorFlow's, so
`importlib.util.find_spec('tensorflow')` is None there (TFDS and everything else stay)."""
import glob
import json
import os
import site
import subprocess
import sys

import pytest

import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def is_tensorflow(entry):
  """What `pip uninstall tensorflow-cpu` (or tensorflow) removes from site-packages."""
  return entry == 'tensorflow' or (entry.startswith(('tensorflow-', 'tensorflow_cpu-'))
                                   and entry.endswith('.dist-info'))


@pytest.fixture(scope='module')
def without_tensorflow(tmp_path_factory):
  """A command prefix that runs Python with every installed package but TensorFlow."""
  links = tmp_path_factory.mktemp('site-packages')
  for packages in site.getsitepackages():
    for entry in os.listdir(packages):
      if not is_tensorflow(entry) and not (links / entry).exists():
        (links / entry).symlink_to(os.path.join(packages, entry))
  env = {**os.environ, 'PYTHONPATH': os.pathsep.join([ROOT, str(links)])}
  # one CPU device, as on a user's machine
  env['XLA_FLAGS'] = xla_flags.with_devices(os.environ.get('XLA_FLAGS', ''), None)

  def run(*args, timeout=240):
    result = subprocess.run([sys.executable, '-S', *args], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  return run


def test_tensorflow_is_absent_and_nothing_else_is(without_tensorflow):
  found = without_tensorflow('-c', 'import importlib.util as u; print([u.find_spec(m) is None for m in '
                                   '("tensorflow", "tensorflow_datasets", "jax", "orbax.checkpoint")])')
  assert found.strip() == '[True, False, False, False]'


def test_train_resume_eval_export_and_sample_without_tensorflow(without_tensorflow, tiny_dataset, tmp_path):
  workdir, export, samples = tmp_path / 'run', tmp_path / 'export', tmp_path / 'samples'
  train = ['-m', 'experiments.train', '--config=experiments/configs/smoke.py:vrash',
           f'--data_dir={tiny_dataset}', f'--workdir={workdir}', '--config.eval_every=2']
  without_tensorflow(*train, '--config.train_steps=4')
  without_tensorflow(*train, '--config.train_steps=6')  # resumes from step 4
  records = [json.loads(line) for line in open(workdir / 'metrics.jsonl')]
  assert [r['step'] for r in records if r['split'] == 'train'] == [2, 4, 6]
  assert not (workdir / 'tensorboard').exists()  # TensorBoard files need TensorFlow
  figures = json.loads(without_tensorflow('-m', 'experiments.eval', f'--workdir={workdir}',
                                          f'--data_dir={tiny_dataset}', '--split=test', '--iw_samples=2'))
  assert figures['split'] == 'test' and figures['nll_iw'] > 0
  without_tensorflow('-m', 'experiments.export', f'--workdir={workdir}', f'--out={export}')
  without_tensorflow('-m', 'experiments.sample', f'--model={export}', f'--out_dir={samples}', '--num=2',
                     '--length=8')
  assert sorted(os.listdir(samples)) == ['sample_00.mid', 'sample_01.mid']
  tune = sorted(glob.glob(os.path.join(os.path.dirname(tiny_dataset), 'midi', '**', '*.mid'), recursive=True))[0]
  script = ('import sys\nfrom vrash_jax import Melodist\n'
            f'm = Melodist.from_workdir({str(workdir)!r})\n'
            f'z = m.encode({tune!r})\n'
            'print(z.shape, len(m.decode(m.interpolate(z, z, steps=3), length=8)),\n'
            '      [k for k in sys.modules if k.split(".")[0] in ("tensorflow", "tensorflow_datasets")])\n')
  assert without_tensorflow('-c', script).strip() == '(4,) 3 []'
