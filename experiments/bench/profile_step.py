"""Where a train step spends its time: a `jax.profiler` trace, summed per kernel and per part.

  vrash-bench profile [--model vrash] [--config.FIELD=VALUE ...] [--dtypes float32,bfloat16]
                      [--steps 10] [--top 12] [--trace_dir D]

(The shape as in `vrash-bench train`: the base config's, 64 notes, unless overridden.)

For each dtype this times `--steps` warm steps of the benchmark's synthetic batch, traces as many
again, reads the trace with `jax.profiler.ProfileData` (no TensorFlow needed) and attributes every
kernel to the compiled HLO instruction that launched it. It reports, per step and one device:
- the wall time, the kernels launched and their summed time. On an accelerator the two differ by
  the card's idle time between kernels: a step whose kernels fill a small share of its wall time
  is bound by launch latency, not by arithmetic;
- by part of the step (each RHN loop over time, other loops, the rest) and kind of kernel (matmul
  fusions, other fusions, copies, library calls): calls, time, and microseconds a call, so that
  float32 and bfloat16 stand side by side kernel kind by kernel kind;
- the `--top` kernels by time.
On an accelerator the kernels are the first device's streams; on a CPU, the XLA runtime's thunks
on device 0, which run on several threads at once, so their sum can exceed the wall time.
The traces stay in `--trace_dir` (one folder a dtype) for TensorBoard or Perfetto.
"""
from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
import time
from typing import Any

import jax
from absl import flags

from experiments.bench import bench_train, hlo_loops
from experiments.bench.harness import PAPER_SHAPE

FLAGS = flags.FLAGS
DEFAULTS = PAPER_SHAPE
flags.DEFINE_integer('top', 12, 'Kernels to list a dtype.')
flags.DEFINE_string('trace_dir', None, "Where each dtype's trace goes (default: a new temporary folder).")
SPANNING = {'while', 'conditional', 'call'}  # a CPU runtime's events for these span the kernels they run


def trace_kernels(data: Any) -> list[tuple[tuple[str, ...], float]]:
  """(the names a kernel goes by, seconds) of every kernel one device ran, from a
  `jax.profiler.ProfileData`: an accelerator's first device plane (its streams' kernels and
  copies, or its 'XLA Ops' line where it has no streams), else the host's events of device 0. The
  names, surest first: the HLO instruction its stats name, one its annotation names, its own."""
  devices = sorted((p for p in data.planes if p.name.startswith('/device:')), key=lambda p: p.name)
  if devices:
    lines = list(devices[0].lines)
    streams = [line for line in lines if line.name.startswith('Stream')]
    lines = streams or [line for line in lines if line.name == 'XLA Ops'] or lines
    return [(_names(e.name, dict(e.stats)), e.duration_ns * 1e-9) for line in lines for e in line.events]
  out = []
  for plane in data.planes:
    for line in plane.lines:
      for e in line.events:
        stats = dict(e.stats)
        if 'hlo_op' in stats and stats.get('device_ordinal', 0) == 0:
          out.append(((str(stats['hlo_op']),), e.duration_ns * 1e-9))
  return out


def _names(kernel: str, stats: dict[str, Any]) -> tuple[str, ...]:
  """The instruction an `hlo_op` stat names, one a kernel annotation names ("name:#hlo_op=
  fusion.3,hlo_module=...#"), and the kernel's own name. Inside a command buffer (a CUDA graph)
  `hlo_op` names the buffer, which is no instruction: then the kernel's own name tells."""
  named = [str(stats['hlo_op'])] if 'hlo_op' in stats else []
  for value in stats.values():
    found = re.search(r'hlo_op=([^,#]+)', value) if isinstance(value, str) else None
    if found:
      named.append(found.group(1))
  return tuple(dict.fromkeys([*named, kernel]))


def _sanitized(name: str) -> str:
  """An instruction's name as a kernel's (`loop_add_fusion.1` -> `loop_add_fusion_1`)."""
  return re.sub(r'[^A-Za-z0-9_]', '_', name)


def launchers(comps: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
  """{instruction name: (part of the step, kind of kernel)} for every instruction of a compiled
  module's computations (`hlo_loops.computations`). Parts: each RHN loop's label ('decoder
  forward', ...), 'other loops', 'outside loops'. Kinds: 'matmul' (a fusion or library call that
  multiplies matrices), 'fusion', 'pallas' (a Pallas kernel), or the opcode."""
  bodies, parent = hlo_loops.loop_bodies(comps), {}
  for name, lines in comps.items():
    for instruction in lines:
      for callee in hlo_loops.called(instruction):
        parent.setdefault(callee, name)

  def part(comp: str) -> str:  # the innermost RHN loop around a computation, else any loop around it
    label = bodies.get(comp)
    if label and label != 'other loops':
      return label
    above = part(parent[comp]) if comp in parent else 'outside loops'
    return 'other loops' if label and above == 'outside loops' else above

  out = {}
  for name, lines in comps.items():
    where = part(name)
    for instruction in lines:
      out[_instruction_name(instruction)] = (where, _kind(comps, instruction))
  return out


def _instruction_name(instruction: str) -> str:
  """`%name = ...` -> name."""
  return re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = ', instruction).group(1)


def _kind(comps: dict[str, list[str]], instruction: str) -> str:
  op = hlo_loops.opcode(instruction)
  if op == 'custom-call':
    target = re.search(r'custom_call_target="([^"]+)"', instruction)
    if target and 'triton' in target.group(1):  # a Pallas kernel (config.rhn_kernel)
      return 'pallas'
    return 'matmul' if target and re.search(r'gemm|matmul', target.group(1), re.I) else op
  if op in ('dot', 'convolution'):
    return 'matmul'
  if op != 'fusion':
    return op
  return 'matmul' if _multiplies(comps, instruction, set()) else 'fusion'


def _multiplies(comps: dict[str, list[str]], instruction: str, seen: set[str]) -> bool:
  """Whether a computation the instruction calls (or one they call) holds a dot or convolution."""
  for name in hlo_loops.called(instruction):
    if name in seen or name not in comps:
      continue
    seen.add(name)
    if any(hlo_loops.opcode(i) in ('dot', 'convolution') or _multiplies(comps, i, seen) for i in comps[name]):
      return True
  return False


def kernel_parts(comps: dict[str, list[str]], known: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
  """{an instruction's name as a kernel's: (the instruction, the parts of every fusion XLA may
  compile to that same kernel)}. XLA compiles fusions of one shape and body once, naming the
  kernel after the first: a VRASH's encoder and decoder loops launch the same kernels, which their
  names alone cannot tell apart ('decoder forward + encoder forward')."""
  same = collections.defaultdict(list)
  for lines in comps.values():
    for instruction in lines:
      name = _instruction_name(instruction)
      fused = hlo_loops.opcode(instruction) == 'fusion'
      same[_fingerprint(comps, instruction) if fused else name].append(name)
  out = {}
  for names in same.values():
    parts = ' + '.join(sorted({known[n][0] for n in names}))
    out.update({_sanitized(n): (n, parts) for n in names})
  for kernel, names in pallas_calls(comps).items():
    out[kernel] = (names[0], ' + '.join(sorted({known[n][0] for n in names})))
  return out


def pallas_calls(comps: dict[str, list[str]]) -> dict[str, list[str]]:
  """{a Pallas kernel's name: the Triton calls that launch it}. Inside a command buffer the trace
  names such a kernel by its buffer and its own name, which no instruction has (on one H200,
  2026-12-04, all 768 went unattributed before this)."""
  out = collections.defaultdict(list)
  for lines in comps.values():
    for instruction in lines:
      named = re.search(r'\bname\\?"?\s*[=:]\s*\\?"(\w+)', instruction)
      if named and _kind(comps, instruction) == 'pallas':
        out[named.group(1)].append(_instruction_name(instruction))
  return dict(out)


def _fingerprint(comps: dict[str, list[str]], fusion: str) -> str:
  """A fusion's shape and fused computation, its names and metadata left out."""
  body = [fusion.split(' fusion(')[0].split(' = ', 1)[1]]
  for callee in hlo_loops.called(fusion):
    body += comps.get(callee, [])
  return '\n'.join(re.sub(r'%[\w.\-]+|metadata=\{[^}]*\}', '', line).strip() for line in body)


def summarize(kernels: list[tuple[tuple[str, ...], float]], hlo: str, steps: int, wall_s: float,
              top: int) -> dict[str, Any]:
  """Per step: the kernels' count and time, by part and kind, and the `top` kernels. A kernel
  goes to the first of its names that is an instruction of HLO (by a kernel's name: `kernel_parts`)."""
  comps = hlo_loops.computations(hlo)
  known = launchers(comps)
  by_kernel_name = kernel_parts(comps, known)
  seconds, calls, part_of = collections.Counter(), collections.Counter(), {}  # over the traced steps
  part_seconds, part_calls = collections.Counter(), collections.Counter()
  for names, duration in kernels:
    name, where, kind = _resolve(names, known, by_kernel_name)
    if kind in SPANNING:
      continue
    part_of[name] = where
    seconds[name] += duration
    calls[name] += 1
    part_seconds[where, kind] += duration
    part_calls[where, kind] += 1
  rows = [{'part': where, 'kind': kind, 'calls': part_calls[where, kind] / steps,
           'ms': part_seconds[where, kind] / steps * 1e3,
           'us_per_call': part_seconds[where, kind] / part_calls[where, kind] * 1e6}
          for where, kind in sorted(part_seconds, key=lambda k: (k[0] == 'outside loops', k))]
  kernel_s = sum(seconds.values()) / steps
  return {'wall_ms': wall_s / steps * 1e3, 'kernels': sum(calls.values()) / steps, 'kernel_ms': kernel_s * 1e3,
          'busy': kernel_s / (wall_s / steps), 'parts': rows,
          'top': [{'kernel': k, 'part': part_of[k], 'ms': s / steps * 1e3,
                   'calls': calls[k] / steps} for k, s in seconds.most_common(top)]}


def _resolve(names: tuple[str, ...], known: dict[str, tuple[str, str]],
             by_kernel_name: dict[str, tuple[str, str]]) -> tuple[str, str, str]:
  """(instruction, part, kind) of a kernel that goes by NAMES; (its first name, 'outside loops',
  'unattributed') where none is an instruction."""
  for name in names:
    if name in known:
      return (name, *known[name])
    if (found := by_kernel_name.get(_sanitized(name))):
      return found[0], found[1], known[found[0]][1]
    # XLA may number a Pallas kernel it emits more than once (`rhn_layer_forward_1`)
    found = by_kernel_name.get(re.sub(r'_\d+$', '', name))
    if found and known[found[0]][1] == 'pallas':
      return found[0], found[1], 'pallas'
  return names[0], 'outside loops', 'unattributed'


def trace_steps(compiled, state, data, rng, steps: int,
                trace_dir: str) -> tuple[list[tuple[tuple[str, ...], float]], float]:
  """(kernels of `steps` traced steps, wall seconds of as many untraced ones), after two warm steps."""
  for _ in range(2):
    state, metrics = compiled(state, data, rng)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, data, rng)
  jax.block_until_ready(metrics)
  wall_s = time.perf_counter() - start
  with jax.profiler.trace(trace_dir):
    for _ in range(steps):
      state, metrics = compiled(state, data, rng)
    jax.block_until_ready(metrics)
  path = max(glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True), key=os.path.getmtime)
  return trace_kernels(jax.profiler.ProfileData.from_file(path)), wall_s


def profile(config, steps: int, trace_dir: str, top: int) -> dict[str, Any]:
  """One config's step on the benchmark's synthetic batch, summarized."""
  compiled, state, data, rng, _ = bench_train.compiled_train_step(config)
  kernels, wall_s = trace_steps(compiled, state, data, rng, steps, trace_dir)
  return summarize(kernels, compiled.as_text(), steps, wall_s, top)


def run(config) -> dict[str, Any]:
  trace_dir = FLAGS.trace_dir or tempfile.mkdtemp(prefix='vrash-trace-')
  out = {'model': config.model, 'shape': [config.batch_size, config.max_len, config.hidden, config.depth],
         'platform': jax.devices()[0].platform, 'steps': FLAGS.steps, 'trace_dir': trace_dir}
  for dtype in FLAGS.dtypes:
    out[dtype] = profile(hlo_loops.with_dtype(config, dtype), FLAGS.steps, os.path.join(trace_dir, dtype),
                         FLAGS.top)
  out['dtypes'] = list(FLAGS.dtypes)
  return out


def table(result: dict[str, Any]) -> str:
  dtypes = result['dtypes']
  lines = [f"{result['model']} at batch, notes, hidden, depth = {', '.join(map(str, result['shape']))} on "
           f"{result['platform']}; per step, one device; traces in {result['trace_dir']}", '',
           '| dtype | wall ms | kernels | kernel ms | kernel time / wall |', '|---|---|---|---|---|']
  for d in dtypes:
    r = result[d]
    lines.append(f"| {d} | {r['wall_ms']:.2f} | {r['kernels']:.0f} | {r['kernel_ms']:.2f} | {r['busy']:.0%} |")
  lines += ['', '| part | kind | ' + ' | '.join(f'{d} calls | {d} ms | {d} us a call' for d in dtypes) + ' |',
            '|---|---|' + '---|---|---|' * len(dtypes)]
  keys = list(dict.fromkeys((p['part'], p['kind']) for d in dtypes for p in result[d]['parts']))
  for where, kind in keys:
    cells = []
    for d in dtypes:
      row = next((p for p in result[d]['parts'] if (p['part'], p['kind']) == (where, kind)), None)
      cells.append(f"{row['calls']:.0f} | {row['ms']:.3f} | {row['us_per_call']:.1f}" if row else '- | - | -')
    lines.append(f'| {where} | {kind} | ' + ' | '.join(cells) + ' |')
  for d in dtypes:
    lines += ['', f'{d}: the slowest kernels', '', '| kernel | part | calls | ms |', '|---|---|---|---|']
    lines += [f"| {k['kernel']} | {k['part']} | {k['calls']:.0f} | {k['ms']:.3f} |" for k in result[d]['top']]
  return '\n'.join(lines)
