"""Every padded width a group of runs will train at, compiled before its first step, at once.

A group's step is one program per batch width (length bucketing: `input_pipeline.padded_widths`),
13-14 widths at the paper's length. Compiled as each width first came up, they cost one after
another: on one H100 a fresh group of 8 VRASH runs spent 145 s compiling 13 widths
(BENCHMARKS.md, "GPU"). Here the widths the group's batches will take are known before the
first step (batches are a pure function of seed and step), each is lowered (tracing: Python,
one at a time) and then compiled by XLA in a thread pool, which releases the GIL while it
compiles: an accelerator host's cores compile the widths side by side. On a CPU, whose XLA
compiler already keeps the cores busy, they compile one after another (two threads on a 2-core
CPU: 0.94x and 1.06x in two runs; BENCHMARKS.md, "The paper preset on one GPU"). The persistent
compilation cache serves these compiles as it serves a first call.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Callable, Sequence

import jax

from vrash_jax import input_pipeline, sharding


def group_widths(batches: Sequence[input_pipeline.TrainBatches], start: int, stop: int) -> list[int]:
  """The widths of a group's batches at steps [start, stop): at each step the widest of its
  runs' batches (the group pads to it)."""
  widths = set()
  for step in range(start, stop):
    widths.add(max(b.width(b.indices(step)) for b in batches))
  return sorted(widths)


def workers() -> int:
  """Compiles at once: on accelerators one per host core this process may use; on a CPU one."""
  if jax.devices()[0].platform == 'cpu':
    return 1
  return max(1, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)


def compile_widths(step_fn: Any, args_at: Callable[[int], tuple], widths: Sequence[int],
                   max_workers: int | None = None) -> dict[int, Any]:
  """{width: step_fn compiled for `args_at(width)`} (arrays or `jax.ShapeDtypeStruct`s), the
  widths lowered one after another and compiled in a pool of `max_workers` threads (default:
  `workers()`), on this thread's devices (`sharding.on_devices`)."""
  devices = sharding.lane_devices()

  def lower(width: int) -> Any:
    return step_fn.lower(*args_at(width))

  def compile_(lowered: Any) -> Any:
    with sharding.on_devices(devices):
      return lowered.compile()

  size = min(len(widths), max_workers or workers())
  if size <= 1:
    return {w: compile_(lower(w)) for w in widths}
  with concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix='compile') as pool:
    futures = {w: pool.submit(compile_, lower(w)) for w in widths}  # compiling while the next one traces
    return {w: f.result() for w, f in futures.items()}


def abstract_group_batch(sample: dict[str, Any], runs: int, rows: int, mesh: jax.sharding.Mesh
                         ) -> dict[str, jax.ShapeDtypeStruct]:
  """The shapes of a group batch [runs, rows, ...] (`sharding.shard_group_batch`) whose fields
  look like `sample`'s (one run's rows, any number), placed on `mesh`."""
  placed = sharding.group_batch(mesh)
  return {k: jax.ShapeDtypeStruct((runs, rows) + v.shape[1:], v.dtype, sharding=placed) for k, v in sample.items()}
