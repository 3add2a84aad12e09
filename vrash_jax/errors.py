"""The one exception type for errors a user can cause, how launchers report it, and the
logger of the lines meant for the person at the console."""
from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, NoReturn, TypeVar

T = TypeVar('T')

# Progress a person follows: a study's stages, its plan, the group that starts and the time
# left. A study's launcher shows these lines and warnings, and sends every other line to its log
# file (`experiments.launcher.study_console`); elsewhere they are ordinary INFO lines.
PROGRESS = logging.getLogger('vrash.progress')
PROGRESS.setLevel(logging.INFO)


class VrashError(Exception):
  """A problem with the user's input, flags or files; the message says what to do."""


def exit_with(error: VrashError) -> NoReturn:
  """Prints `error: ...` on stderr for each line of the message (one per problem), exits 2."""
  for line in str(error).splitlines() or ['']:
    print(f'error: {line}', file=sys.stderr)
  sys.stderr.flush()
  sys.exit(2)


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
  """Wraps an absl `main(argv)`: stray arguments and any VrashError become `error:` lines on
  stderr and exit code 2."""

  @functools.wraps(main)
  def wrapped(argv, *args, **kwargs):
    try:
      if len(argv) > 1:
        raise VrashError(f'unexpected arguments: {" ".join(argv[1:])}')
      return main(argv, *args, **kwargs)
    except VrashError as e:
      exit_with(e)

  return wrapped


def require(**values) -> None:
  """Raises a VrashError naming every required flag left empty (`require(data_dir=...)`)."""
  missing = [f'--{name}' for name, value in values.items() if value in (None, '')]
  if missing:
    raise VrashError(f'{" and ".join(missing)} {"is" if len(missing) == 1 else "are"} required')
