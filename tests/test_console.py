"""A study's console (`launcher.study_console`): progress lines and warnings for a person, each
after its time of day; every line, the library's INFO included, in the log file."""
import re
import subprocess
import sys

SCRIPT = '''
import sys
from absl import app, logging
from experiments import launcher
from vrash_jax import checkpoint
from vrash_jax.errors import PROGRESS

def main(argv):
  launcher.study_console(sys.argv[1], verbose=sys.argv[2] == 'verbose')
  logging.info('library chatter')
  PROGRESS.info('[1/2] data (0.0 min so far)')
  checkpoint.Checkpoints(sys.argv[3], read_only=True)  # orbax's notices of a read-only manager
  logging.warning('something is wrong')
app.run(main)
'''


def run(tmp_path, mode):
  (tmp_path / 'run' / 'checkpoints').mkdir(parents=True, exist_ok=True)
  log = tmp_path / f'{mode}.log'
  done = subprocess.run([sys.executable, '-c', SCRIPT, str(log), mode, str(tmp_path / 'run')],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  return done.stderr.splitlines(), log.read_text().splitlines()


def test_the_console_shows_progress_and_warnings_and_the_log_file_every_line(tmp_path):
  console, logged = run(tmp_path, 'quiet')
  assert len(console) == 2
  assert re.fullmatch(r'\d\d:\d\d:\d\d \[1/2\] data \(0\.0 min so far\)', console[0])
  assert re.fullmatch(r'\d\d:\d\d:\d\d WARNING: something is wrong', console[1])
  assert [line.split('] ', 1)[1] for line in logged if '<string>:' in line] == [
      'library chatter', '[1/2] data (0.0 min so far)', 'something is wrong']
  assert not any('Given directory is read only' in line or 'read_only=True, setting' in line
                 for line in console + logged)


def test_verbose_shows_every_line(tmp_path):
  console, _ = run(tmp_path, 'verbose')
  assert [line.split('] ', 1)[1] for line in console if '<string>:' in line] == [
      'library chatter', '[1/2] data (0.0 min so far)', 'something is wrong']


QUIET = '''
import logging as std_logging
from absl import app, logging
from experiments import launcher
import jax

def main(argv):
  launcher.quiet_library_logs()
  jax.devices()  # probes the backends
  probe = std_logging.getLogger('jax._src.xla_bridge')
  probe.info('backend probe note')
  probe.warning('backend probe warning')
  logging.info('our own line')
app.run(main)
'''


def test_a_launcher_keeps_jax_backend_notes_off_the_console_but_not_its_warnings():
  done = subprocess.run([sys.executable, '-c', QUIET], capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'backend probe warning' in done.stderr and 'our own line' in done.stderr
  assert 'backend probe note' not in done.stderr and 'Unable to initialize backend' not in done.stderr
