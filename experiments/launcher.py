"""How every launcher starts: absl parses the flags, and whatever a user got wrong in them (a
config file that does not load, an unknown or ill-typed `--config.FIELD`) is one `error:` line
and exit code 2 instead of a traceback from inside absl or ml_collections; libraries' INFO
chatter stays off the console."""
from __future__ import annotations

import logging as std_logging
import os
import re
import sys
import traceback
from typing import Any, Callable

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from vrash_jax import config_rules
from vrash_jax.errors import PROGRESS, VrashError, exit_with

FLAGS = flags.FLAGS
_OVERRIDE = re.compile(r'^--?(?:no)?config\.([^=]+)')
_BAD_OVERRIDE = re.compile(r'flag --config\.(\w+)=(.*?): ')
_CONFIG_FILE = re.compile(r'^--?config(?:=(.*))?$')


def run(main: Callable[[list[str]], None], overridable: ml_collections.ConfigDict | None = None
        ) -> None:
  """app.run(main) with `parse_flags`; `overridable` defines `--config.FIELD=VALUE` flags
  over that config (ml_collections applies them as it defines the flag, so it happens here)."""
  if overridable is not None:
    try:
      check_override_names(sys.argv)
    except VrashError as e:
      exit_with(e)
    config_flags.DEFINE_config_dict('config', overridable, 'Config overrides (--config.FIELD=VALUE).')
  app.run(main, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
  """FLAGS(argv), with user errors turned into `error:` lines and exit code 2."""
  try:
    return _parse(argv)
  except VrashError as e:
    exit_with(e)


def _parse(argv: list[str]) -> list[str]:
  if 'config' in FLAGS:
    check_override_names(argv)
  try:
    return FLAGS(argv)
  except flags.Error as e:
    raise VrashError(flag_error_line(str(e))) from None
  except Exception as e:  # anything else is raised while the --config file loads
    if not config_file_arg(argv):
      raise
    raise VrashError(config_file_error(config_file_arg(argv), e)) from None


def check_override_names(argv: list[str]) -> None:
  """Refuses `--config.FIELD=VALUE` (or `--noconfig.FIELD`) arguments naming no field."""
  unknown = [m.group(1) for m in map(_OVERRIDE.match, argv) if m and m.group(1) not in config_rules.RULES]
  if unknown:
    raise VrashError('\n'.join(config_rules.unknown_field_message(name) for name in unknown))


def flag_error_line(message: str) -> str:
  """absl's flag error as one line; a `--config.FIELD` value in the rules' own words."""
  match = _BAD_OVERRIDE.search(message)
  if match and match.group(1) in config_rules.RULES:
    name, value = match.groups()
    rule = config_rules.RULES[name]
    return f'config.{name}={value}: {rule.problem(value) or "cannot be parsed"}; allowed: {rule.allowed}'
  return message.strip().splitlines()[0]


def config_file_arg(argv: list[str]) -> str:
  """The value of --config (`file.py` or `file.py:arg`), or '' when it is not given."""
  for i, arg in enumerate(argv):
    match = _CONFIG_FILE.match(arg)
    if match:
      return match.group(1) if match.group(1) is not None else (argv[i + 1] if i + 1 < len(argv) else '')
  return ''


def config_file_error(config_arg: str, error: Exception) -> str:
  """One line naming the config file and the line of `error` in it."""
  path = config_arg.split(':', 1)[0]
  what = (str(error).strip().splitlines() or [''])[0]
  if isinstance(error, SyntaxError):
    where = f'{error.filename}, line {error.lineno}' if error.filename else 'a syntax error'
    return f'--config {config_arg}: cannot be read ({where}: {error.msg})'
  if isinstance(error, AttributeError) and 'get_config' in what:
    return f'--config {config_arg}: defines no get_config() (a config file must)'
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if path and os.path.abspath(frame.filename) == os.path.abspath(path)]
  where = f', line {lines[-1]}' if lines else ''
  return f'--config {config_arg}{where}: {type(error).__name__}: {what}'


def define_once(define: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> None:
  """`define(name, ...)` unless a flag of that name exists: launchers that share a flag (such as
  --data_dir) may be imported into one process (the tests import them all)."""
  if name not in FLAGS:
    define(name, *args, **kwargs)


def define_group_size() -> None:
  """--group_size, shared by `vrash-sweep` and `vrash-reproduce`."""
  define_once(flags.DEFINE_integer, 'group_size', 0, 'Runs trained together (one jitted step over their stacked '
              'states); 0: a run per CPU device, or on an accelerator the cap whose groups take the least time '
              'together, from group steps measured first.', lower_bound=0)


def define_host_flags() -> None:
  """--distributed and the flags that join a multi-host job (a launcher that trains defines them;
  once per process, which may import several launchers)."""
  if 'distributed' in FLAGS:
    return
  flags.DEFINE_bool('distributed', False, 'Join a multi-host job: run the same command on every host '
                    '(auto-detected on TPU pods; elsewhere give the three flags below).')
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-host, not TPU).')
  flags.DEFINE_integer('num_processes', None, 'How many processes take part (multi-host).')
  flags.DEFINE_integer('process_id', None, 'This process\'s index (multi-host).')


def join_hosts() -> None:
  """Joins the multi-host job the flags of `define_host_flags` name, if they name one."""
  if FLAGS.distributed or FLAGS.coordinator_address:
    from vrash_jax import sharding
    sharding.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)


def quiet_library_logs() -> None:
  """Keeps orbax's and TFDS's INFO chatter, and JAX's notes on the backends it probed (such as
  'Unable to initialize backend tpu' on every machine without one), off the console (warnings
  still show)."""
  def keep(record: std_logging.LogRecord) -> bool:
    noisy = (any(p in record.pathname for p in ('/orbax/', '/tensorflow_datasets/'))
             or record.name == 'jax._src.xla_bridge')
    return record.levelno >= std_logging.WARNING or not noisy

  logging.get_absl_handler().addFilter(keep)


def study_console(log_path: str, verbose: bool = False) -> None:
  """What a study's launcher shows: its progress lines (`errors.PROGRESS`: stages, the plan,
  each group and the time left) and warnings, each after its time of day; every line, progress
  and library INFO alike, also goes to `log_path` (a local file) in absl's format. With
  `verbose` the console shows every line, in absl's format."""
  os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
  handler = std_logging.FileHandler(log_path, encoding='utf-8')
  handler.setFormatter(logging.PythonFormatter())
  handler.setLevel(std_logging.INFO)
  std_logging.getLogger().addHandler(handler)
  if verbose:
    return

  def for_a_person(record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or record.name == PROGRESS.name

  console = logging.get_absl_handler()
  console.addFilter(for_a_person)
  console.setFormatter(_ConsoleFormatter())


class _ConsoleFormatter(std_logging.Formatter):
  """'12:03:04 [2/5] training ...', and 'WARNING: ' before a warning's message."""

  def __init__(self):
    super().__init__('%(asctime)s %(message)s', '%H:%M:%S')
    self._warning = std_logging.Formatter('%(asctime)s %(levelname)s: %(message)s', '%H:%M:%S')

  def format(self, record: std_logging.LogRecord) -> str:
    return self._warning.format(record) if record.levelno >= std_logging.WARNING else super().format(record)
