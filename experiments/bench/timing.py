"""The benchmarks' clock: warm, then the median of timed repeats."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of `fn()` (waited for on the device) after one untimed warm-up call."""
  jax.block_until_ready(fn())  # compiles whatever fn compiles
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)
