"""An ordered parallel map over worker processes that survives workers dying.

If a worker is killed (a segfault or the OOM killer inside a parsing library), the pool
breaks and every unfinished item fails with it. We then re-run, each alone in a fresh
process, only the items that had started; the one that kills its process again is given
`on_crash(item)` as its result, and every other item is computed normally.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing as mp
import time
from typing import Any, Callable, Sequence

from vrash_jax.errors import VrashError

_started = None  # per-item "has started" flags, shared with the workers


def _init_worker(started) -> None:
  global _started
  _started = started


def _call(fn: Callable[[Any], Any], indices: list[int], items: list[Any]) -> list[Any]:
  out = []
  for index, item in zip(indices, items):
    _started[index] = 1
    out.append(fn(item))
  return out


class PoolUnavailable(VrashError):
  """Worker processes cannot run at all (not one file's fault)."""


def _probe(_: Any) -> bool:
  return True


def _context():
  ctx = mp.get_context('forkserver')
  ctx.set_forkserver_preload(['data_prep.process'])
  return ctx


class Progress:
  """Calls `report(done, total, rate)` at most every `every_s` seconds, and at the end."""

  def __init__(self, total: int, report: Callable[[int, int, float], None], every_s: float = 5.0):
    self.total, self.report, self.every_s = total, report, every_s
    self.done, self.start = 0, time.monotonic()
    self.last = self.start

  def step(self) -> None:
    self.done += 1
    now = time.monotonic()
    if now - self.last >= self.every_s or self.done == self.total:
      self.last = now
      self.report(self.done, self.total, self.done / max(now - self.start, 1e-9))


def _run_pool(fn, items, indices, workers, ctx, started, results, progress) -> bool:
  """Runs `indices` on a fresh pool; returns False if the pool broke."""
  # Several items per task keep the parent's per-task overhead off the critical path.
  size = max(1, min(32, len(indices) // (8 * workers)))
  chunks = [indices[k:k + size] for k in range(0, len(indices), size)]
  intact = True
  with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                              initargs=(started,)) as pool:
    futures = {pool.submit(_call, fn, c, [items[i] for i in c]): c for c in chunks}
    for future in cf.as_completed(futures):
      try:
        values = future.result()
      except cf.process.BrokenProcessPool:
        intact = False
        continue
      for i, value in zip(futures[future], values):
        results[i] = (value,)
        if progress:
          progress.step()
  return intact


@functools.lru_cache(maxsize=None)
def _pool_works(ctx) -> bool:
  probe = ctx.RawArray('b', 1)
  out: list[Any] = [None]
  return _run_pool(_probe, [None], [0], 1, ctx, probe, out, None) and out[0] == (True,)


def _check_pool_works(ctx) -> None:
  if not _pool_works(ctx):
    raise PoolUnavailable(
        'worker processes cannot start: they re-import the main program, so a script must '
        "guard its entry point with `if __name__ == '__main__':` and be a file, not standard input")


def robust_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
               on_crash: Callable[[Any], Any], progress: Progress | None = None) -> list[Any]:
  """[fn(item) for item in items] computed by `workers` processes, in input order.

  `fn` must be picklable (a module-level function or a partial of one) and should catch
  its own exceptions; an item whose worker process dies gets `on_crash(item)`.
  """
  if not items:
    return []
  ctx = _context()
  started = ctx.RawArray('b', len(items))
  results: list[Any] = [None] * len(items)  # (value,) once computed
  pending = list(range(len(items)))
  while pending:
    intact = _run_pool(fn, items, pending, workers, ctx, started, results, progress)
    pending = [i for i in pending if results[i] is None]
    if intact:
      break
    suspects = [i for i in pending if started[i]] or pending[:1]  # the crash is among these
    for i in suspects:
      if not _run_pool(fn, items, [i], 1, ctx, started, results, progress):
        _check_pool_works(ctx)
        results[i] = (on_crash(items[i]),)
        if progress:
          progress.step()
    pending = [i for i in pending if results[i] is None]
  return [r[0] for r in results]
