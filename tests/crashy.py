"""Module-level functions (picklable) that crash worker processes on purpose."""
import ctypes
import os


def square_or_die(x: int) -> int:
  if x == 13:
    ctypes.string_at(0)  # a real segfault, as a C library bug would cause
  if x == 7:
    os._exit(1)  # an abrupt death, as the OOM killer would cause
  return x * x
