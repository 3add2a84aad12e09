"""What the compiled train step's RHN loops launch, per dtype: read from the optimized HLO.

  vrash-bench hlo [--model vrash] [--config.FIELD=VALUE ...] [--hlo_dir D]

(The shape as in `vrash-bench train`: the base config's, 64 notes, unless overridden.)

On a GPU the step is a chain of small kernels (BENCHMARKS.md, "GPU"), and bfloat16 was slower
than float32 at every shape. For float32 and bfloat16 this compiles the train step on this
machine's backend and, for each RHN loop over time (encoder and decoder, forward and backward
scan), counts in its body the instructions that launch work (every one but parameters,
tuples and their elements, constants and bitcasts: fusions, copies, library calls) and the
converts, inside fusions included, per loop trip and per micro-layer (a trip runs `scan_unroll`
time steps of `depth` micro-layers). `--hlo_dir` keeps each dtype's compiled HLO to read.
With `--config.rhn_kernel=pallas` the scans are kernels, not loops: no rows.
"""
from __future__ import annotations

import collections
import os
import re
from typing import Any

from absl import flags

from experiments.bench import bench_train
from experiments.bench.harness import PAPER_SHAPE
from vrash_jax.rhn import scan_unroll

FLAGS = flags.FLAGS
DEFAULTS = PAPER_SHAPE
DTYPES = ('float32', 'bfloat16')
NOT_LAUNCHED = {'parameter', 'get-tuple-element', 'tuple', 'constant', 'bitcast', 'after-all', 'opt-barrier',
                'partition-id', 'replica-id'}
RHN_LOOP = re.compile(r'(encoder|decoder)/while$')  # the scan over time of an RHN layer (its op name)
flags.DEFINE_string('hlo_dir', None, "Where each dtype's compiled HLO text goes (default: not kept).")


def computations(hlo: str) -> dict[str, list[str]]:
  """{computation name: its instruction lines} of an HLO module's text."""
  out, name, lines = {}, None, []
  for line in hlo.splitlines():
    if name is None:
      header = re.match(r'^(?:ENTRY )?%?([\w.\-]+) .*\{$', line)
      if header:
        name, lines = header.group(1), []
    elif line == '}':
      out[name], name = lines, None
    elif ' = ' in line:
      lines.append(line)
  return out


def opcode(instruction: str) -> str:
  """The opcode of one instruction line (`%x = f32[2]{0} fusion(...)`, tuple shapes too)."""
  rest = instruction.split(' = ', 1)[1]
  if rest.startswith('('):  # a tuple shape: skip to its closing parenthesis
    depth = 0
    for i, char in enumerate(rest):
      depth += (char == '(') - (char == ')')
      if depth == 0:
        rest = rest[i + 1:].lstrip()
        break
  else:
    rest = rest.split(' ', 1)[1]
  return rest.split('(', 1)[0]


def called(instruction: str) -> list[str]:
  return re.findall(r'(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)', instruction)


def _converts(comps: dict[str, list[str]], name: str, seen: set[str]) -> int:
  """Converts in a computation and every computation it calls (fusions, reductions)."""
  if name in seen or name not in comps:
    return 0
  seen.add(name)
  return sum((opcode(i) == 'convert') + sum(_converts(comps, c, seen) for c in called(i))
             for i in comps[name])


def loop_label(instruction: str) -> str | None:
  """'encoder forward', 'decoder backward', ... for an RHN loop over time; 'other loops' for
  another while loop; None for an instruction that is not a loop."""
  if opcode(instruction) != 'while':
    return None
  op_name = re.search(r'op_name="([^"]+)"', instruction)
  rhn = RHN_LOOP.search(op_name.group(1)) if op_name else None
  if not rhn:
    return 'other loops'
  return f"{rhn.group(1)} {'backward' if 'transpose(' in op_name.group(1) else 'forward'}"


def loop_body(instruction: str) -> str:
  """The body computation a while instruction runs."""
  return re.search(r'body=%?([\w.\-]+)', instruction).group(1)


def loop_bodies(comps: dict[str, list[str]]) -> dict[str, str]:
  """{body computation: its loop's label} of every while loop in a module. Loops of one shape
  (a VRASH's encoder and decoder) can share one body: its label joins theirs ('decoder forward +
  encoder forward'), as their kernels cannot be told apart."""
  labels = collections.defaultdict(set)
  for lines in comps.values():
    for instruction in lines:
      if label := loop_label(instruction):
        labels[loop_body(instruction)].add(label)
  return {body: ' + '.join(sorted(names)) for body, names in labels.items()}


def rhn_loops(hlo: str, per_trip_layers: int) -> list[dict[str, Any]]:
  """Per RHN loop of a compiled module: its name, trips, launches and converts per trip and per
  micro-layer (`per_trip_layers` = scan_unroll x depth), and its launches by opcode."""
  comps, rows = computations(hlo), []
  for lines in comps.values():
    for instruction in lines:
      label = loop_label(instruction)
      if label in (None, 'other loops'):
        continue
      body = loop_body(instruction)
      trips = re.search(r'known_trip_count":\{"n":"(\d+)"', instruction)
      kinds = collections.Counter(opcode(i) for i in comps[body])
      launched = {k: v for k, v in sorted(kinds.items()) if k not in NOT_LAUNCHED}
      launches, converts = sum(launched.values()), _converts(comps, body, set())
      rows.append({'loop': label, 'trips': int(trips.group(1)) if trips else None,
                   'launches': launches, 'launches_per_layer': launches / per_trip_layers,
                   'converts': converts, 'converts_per_layer': converts / per_trip_layers, 'by_opcode': launched})
  return sorted(rows, key=lambda r: r['loop'])


def with_dtype(config, dtype: str):
  """A copy of `config` at `dtype` (the one given stays as it was)."""
  config = config.copy_and_resolve_references()
  config.dtype = dtype
  return config


def run(config) -> dict[str, Any]:
  unroll, out = scan_unroll(config.scan_unroll), {'model': config.model, 'shape': [
      config.batch_size, config.max_len, config.hidden, config.depth]}
  for dtype in DTYPES:
    hlo = bench_train.compiled_train_step(with_dtype(config, dtype))[0].as_text()
    if FLAGS.hlo_dir:
      os.makedirs(FLAGS.hlo_dir, exist_ok=True)
      with open(os.path.join(FLAGS.hlo_dir, f'train_step_{dtype}.hlo.txt'), 'w') as f:
        f.write(hlo)
    out[dtype] = rhn_loops(hlo, unroll * config.depth)
  out.update(scan_unroll=unroll, rhn_kernel=config.rhn_kernel)
  return out


def table(result: dict[str, Any]) -> str:
  lines = [f"{result['model']} at batch, notes, hidden, depth = {', '.join(map(str, result['shape']))}; "
           f"{result['scan_unroll']} time step(s) a loop trip; launches and converts in each RHN loop's body",
           '', '| dtype | loop | trips | launches a trip | a micro-layer | converts a trip | a micro-layer '
           '| launched |',
           '|---|---|---|---|---|---|---|---|']
  for dtype in DTYPES:
    for r in result[dtype]:
      kinds = ', '.join(f'{k} {v}' for k, v in r['by_opcode'].items())
      lines.append(f"| {dtype} | {r['loop']} | {r['trips']} | {r['launches']} | {r['launches_per_layer']:.1f} "
                   f"| {r['converts']} | {r['converts_per_layer']:.1f} | {kinds} |")
  if not any(result[d] for d in DTYPES):
    lines.append(f"(no RHN loops: config.rhn_kernel={result['rhn_kernel']!r} runs the scans as kernels)")
  return '\n'.join(lines)
