"""How a step is timed, by the benchmarks (`vrash-bench`) and by a sweep's plan alike: its first
call (compilation) apart, then warm steps, waited for on the device; and the synthetic batch that
times a step without a dataset."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
import numpy as np

from vrash_jax import notes


def synthetic_batch(batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Random notes in every one of `batch` x `length` slots, with random meta-information."""
  rng = np.random.default_rng(seed)
  out = {f: rng.integers(0, n, (batch, length)).astype(np.int32) for f, n in notes.VOCAB_SIZES.items()}
  out['mask'] = np.ones((batch, length), bool)
  out.update({f: rng.integers(0, n, (batch,)).astype(np.int32) for f, n in notes.META_FIELDS.items()})
  return out


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
  """Mean seconds of `calls` calls of `fn`, dispatched back to back and waited for at the end
  (the steps of a training loop overlap their dispatch with the device's work)."""
  start = time.perf_counter()
  for _ in range(calls):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / calls


def time_steps(step: Callable[[], object], steps: int, repeats: int = 1) -> tuple[float, float]:
  """(seconds of the first call, i.e. compilation; the median over `repeats` timings of the mean
  warm step over `steps` steps)."""
  start = time.perf_counter()
  jax.block_until_ready(step())
  first = time.perf_counter() - start
  return first, statistics.median(seconds_per_call(step, steps) for _ in range(repeats))


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of one call of `fn` (waited for) after one untimed warm-up call."""
  return time_steps(fn, 1, repeats)[1]
