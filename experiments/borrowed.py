"""`vrash-borrowed`: a preset and the benchmark suite in one command on a borrowed accelerator,
and the folder that carries what that command needs.

A borrowed machine runs one command for a few minutes, takes 64 MiB (code included) and gives
back a few files. On a machine with the `prep` extra, once:

  vrash-reproduce --preset paper --plan_only                 # the corpus and its dataset
  vrash-borrowed pack --data_dir runs/paper/data --into carry

copies the dataset's TFRecords (its `vrash_midi` folder, stats.json and entropy.png; no MIDI) to
CARRY/data, unpacks wheels of what an accelerator image lacks (`WHEELS`) into CARRY/site (no
pip on the machine: on a borrowed H200 a `pip install` of the wheels left them unimportable,
their folder on PYTHONPATH worked), checks that CARRY and the repository's files fit in 64 MiB,
and prints the command to give the machine (from the repository's root, with CARRY beside the
code):

  PYTHONPATH=.:carry/site python -m experiments.borrowed run --data_dir carry/data --results_dir OUT

`run` trains and evaluates the preset (`vrash-reproduce --data_dir`, in a process of its own),
then runs `vrash-bench suite` in the time left, and writes into OUT: log.txt (every line of
both, as it comes: a command cut short still leaves it), reproduce.log (the study's whole log,
with each group's wall time by part), results.json, results.md, suite.md and suite.json. At
`--deadline_s` less `--suite_s` the study is sent SIGTERM: its runs checkpoint and stop (the
same command resumes them on a machine that kept the workdir), and the suite still runs.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from importlib import metadata
from typing import IO, Any, Sequence

from absl import flags

from experiments import launcher
from experiments.presets import PRESETS, check_prepared
from vrash_jax.errors import VrashError, exit_with

# Imported by training or the report, and missing from the accelerator images we borrow
# (Python 3.12 with jax, flax, optax, orbax, absl, etils, matplotlib, scikit-learn, torch).
WHEELS = ('ml-collections', 'pretty_midi', 'mido', 'six', 'importlib_resources')
DATA_FILES = ('stats.json', 'entropy.png')  # beside the TFRecords: the preset check, the report
LIMIT_BYTES = 64 * 2 ** 20  # what a borrowed machine takes: code, data and wheels
STOP_GRACE_S = 60.0  # after SIGTERM, for the study's checkpoints, before it is killed
STUDY_FILES = ('results.json', 'results.md', 'reproduce.log')
SUITE_FILES = ('suite.md', 'suite.json')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def folder_bytes(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def code_bytes() -> int:
  """The bytes of the repository's tracked files (what travels besides CARRY)."""
  listed = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True)
  if listed.returncode:
    raise VrashError(f'pack runs from a git checkout of the code: git ls-files failed in {ROOT}')
  return sum(os.path.getsize(os.path.join(ROOT, f)) for f in listed.stdout.decode().split('\0')
             if f and os.path.isfile(os.path.join(ROOT, f)))


def unpack_wheels(site: str, names: Sequence[str] = WHEELS) -> None:
  """The packages, at the versions installed here, unpacked into SITE (a folder to put on
  PYTHONPATH): their wheels from `pip wheel` (PyPI or pip's cache), unzipped."""
  pins = [f'{name}=={metadata.version(name)}' for name in names]
  with tempfile.TemporaryDirectory() as wheels:
    done = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', wheels, *pins],
                          capture_output=True, text=True)
    if done.returncode:
      raise VrashError(f'could not build wheels of {", ".join(pins)}: {done.stderr.strip()[-500:]}')
    shutil.rmtree(site, ignore_errors=True)
    for wheel in sorted(os.listdir(wheels)):
      with zipfile.ZipFile(os.path.join(wheels, wheel)) as archive:
        archive.extractall(site)


def pack(data_dir: str, into: str, preset: str, wheels: Sequence[str] = WHEELS) -> dict[str, int]:
  """CARRY/data (the TFRecords of a dataset prepared for `preset`) and CARRY/site (the
  packages); the bytes of each and of the code, refused above LIMIT_BYTES in all."""
  check_prepared(data_dir, preset)
  target = os.path.join(into, 'data')
  shutil.rmtree(target, ignore_errors=True)
  shutil.copytree(os.path.join(data_dir, 'vrash_midi'), os.path.join(target, 'vrash_midi'))
  for name in DATA_FILES:
    if os.path.isfile(os.path.join(data_dir, name)):
      shutil.copy(os.path.join(data_dir, name), target)
  if wheels:
    unpack_wheels(os.path.join(into, 'site'), wheels)
  sizes = {'data': folder_bytes(target), 'packages': folder_bytes(os.path.join(into, 'site')),
           'code': code_bytes()}
  if sum(sizes.values()) > LIMIT_BYTES:
    raise VrashError(f'{sum(sizes.values()) / 2**20:.1f} MiB to carry ({_mib(sizes)}): a borrowed machine '
                     f'takes {LIMIT_BYTES // 2**20} MiB')
  return sizes


def _mib(sizes: dict[str, int]) -> str:
  return ', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in sizes.items())


def _command(args: Sequence[str], log: IO[str], timeout_s: float) -> dict[str, Any]:
  """Runs `args` with its output copied line by line to `log` and the console; SIGTERM after
  `timeout_s` (then SIGKILL after STOP_GRACE_S). Its status and seconds."""
  start = time.monotonic()
  env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'PYTHONPATH': os.pathsep.join(
      p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)}
  process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)

  def copy() -> None:
    for line in process.stdout:
      log.write(line)
      sys.stdout.write(line)

  reader = threading.Thread(target=copy, daemon=True)
  reader.start()
  status = 'finished'
  try:
    process.wait(timeout=max(timeout_s, 0.0))
  except subprocess.TimeoutExpired:
    status = f'stopped at the deadline ({timeout_s:.0f} s)'
    log.write(f'[vrash-borrowed] deadline: SIGTERM after {timeout_s:.0f} s\n')
    process.send_signal(signal.SIGTERM)
    try:
      process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
  reader.join()
  if status == 'finished' and process.returncode:
    status = f'failed (exit code {process.returncode})'
  return {'status': status, 'seconds': time.monotonic() - start}


def _collect(folder: str, names: Sequence[str], out: str) -> list[str]:
  found = [n for n in names if os.path.isfile(os.path.join(folder, n))]
  for name in found:
    shutil.copy(os.path.join(folder, name), os.path.join(out, name))
  return found


def run_borrowed(preset: str, data_dir: str, out: str, workdir: str, deadline_s: float, suite_s: float,
                 suite_flags: Sequence[str] = ()) -> dict[str, Any]:
  """The preset on `data_dir` (`vrash-reproduce`), then `vrash-bench suite` with `suite_flags`,
  within `deadline_s`; their files in OUT (see the module's doc). What each came to."""
  if suite_s >= deadline_s:
    raise VrashError(f'--suite_s {suite_s:g} leaves nothing of --deadline_s {deadline_s:g} to the study')
  check_prepared(data_dir, preset)
  data_dir, out, workdir = (os.path.abspath(p) for p in (data_dir, out, workdir))  # the commands run in ROOT
  started = time.monotonic()
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'log.txt'), 'a', buffering=1) as log:
    log.write(f'[vrash-borrowed] {time.strftime("%Y-%m-%d %H:%M:%S")}: --preset {preset}, {deadline_s:.0f} s\n')
    study = _command([sys.executable, '-m', 'experiments.reproduce', f'--preset={preset}', f'--data_dir={data_dir}',
                      f'--workdir={workdir}'], log, deadline_s - suite_s)
    study['files'] = _collect(workdir, STUDY_FILES, out)
    left = deadline_s - (time.monotonic() - started)
    suite_dir = os.path.join(workdir, 'suite')
    suite = _command([sys.executable, '-m', 'experiments.bench.cli', 'suite', f'--budget_s={max(left - 10, 1):.0f}',
                      f'--out_dir={suite_dir}', *suite_flags], log, left)
    suite['files'] = _collect(suite_dir, SUITE_FILES, out)
    outcome = {'study': study, 'suite': suite, 'seconds': time.monotonic() - started}
    log.write(f'[vrash-borrowed] study {study["status"]} in {study["seconds"]:.0f} s; suite {suite["status"]} '
              f'in {suite["seconds"]:.0f} s; {outcome["seconds"]:.0f} s in all\n')
  return outcome


FLAGS = flags.FLAGS
launcher.define_once(flags.DEFINE_enum, 'preset', 'paper', list(PRESETS), 'The preset its dataset was prepared for.')
launcher.define_once(flags.DEFINE_string, 'data_dir', None, 'A dataset prepared for the preset.')
launcher.define_once(flags.DEFINE_string, 'workdir', None, 'run: the study\'s workdir (default runs/PRESET).')
flags.DEFINE_string('into', 'carry', 'pack: the folder to fill (keep it out of git: .git/info/exclude).')
flags.DEFINE_list('wheels', list(WHEELS), 'pack: packages to carry, unpacked (the versions installed here).')
flags.DEFINE_string('results_dir', None, 'run: the folder the files come back in.')
flags.DEFINE_float('deadline_s', 570.0, 'run: seconds for the study and the suite together.', lower_bound=1)
flags.DEFINE_float('suite_s', 150.0, 'run: seconds kept for the suite.', lower_bound=0)
flags.DEFINE_string('suite_flags', '', 'run: flags for `vrash-bench suite`, as on its command line '
                    '(e.g. "--shapes=small --peers=compile").')


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in ('pack', 'run'):
    exit_with(VrashError('usage: vrash-borrowed pack --data_dir D [--into carry] | run --data_dir D --results_dir OUT'))
  try:
    _main(argv[1])
  except VrashError as e:
    exit_with(e)


def _main(command: str) -> None:
  if not FLAGS.data_dir:
    raise VrashError('--data_dir is required: a dataset prepared for the preset')
  if command == 'pack':
    sizes = pack(FLAGS.data_dir, FLAGS.into, FLAGS.preset, FLAGS.wheels)
    print(f'{FLAGS.into}: {_mib(sizes)} of {LIMIT_BYTES // 2**20} MiB. On the borrowed machine, from the '
          f'repository with {FLAGS.into} in it:\n  PYTHONPATH=.:{FLAGS.into}/site python -m experiments.borrowed run '
          f'--preset {FLAGS.preset} --data_dir {FLAGS.into}/data --results_dir OUT')
    return
  if not FLAGS.results_dir:
    raise VrashError('run: --results_dir is required (the folder the files come back in)')
  workdir = FLAGS.workdir or os.path.join('runs', FLAGS.preset)
  outcome = run_borrowed(FLAGS.preset, FLAGS.data_dir, FLAGS.results_dir, workdir, FLAGS.deadline_s, FLAGS.suite_s,
                         shlex.split(FLAGS.suite_flags))
  print(f"study: {outcome['study']['status']}; suite: {outcome['suite']['status']}; files in {FLAGS.results_dir}: "
        + ', '.join(outcome['study']['files'] + outcome['suite']['files']))


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()
