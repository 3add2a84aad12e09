"""The one exception type for errors a user can cause, and how launchers report it."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

T = TypeVar('T')


class VrashError(Exception):
  """A problem with the user's input, flags or files; the message says what to do."""


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
  """Wraps an absl `main`: a VrashError becomes one line on stderr and exit code 2."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except VrashError as e:
      print(f'error: {e}', file=sys.stderr, flush=True)
      sys.exit(2)

  return wrapped
