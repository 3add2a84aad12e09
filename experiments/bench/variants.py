"""Ways of compiling our train step that `vrash-bench suite` times against XLA's defaults, each in
a process of its own (XLA reads its flags once, when it starts).

On a GPU the step is a chain of about 1,150 small kernels a step at the paper's size (BENCHMARKS.md,
"GPU"): launch latency, not arithmetic. Each variant attacks that differently:

* `no_triton_gemm`: cuBLAS instead of Triton for the small recurrent matmuls;
* `command_buffers`: the scan loops' bodies recorded once as CUDA graphs and replayed;
* `unroll1`, `unroll4`: one or four time steps an iteration of the RHN's forward and backward
  scans (config `scan_unroll`). Fewer loop trips won on one H200 (2026-12-04): unrolling 8, now
  the default on GPUs (`rhn.scan_unroll`), took a float32 step from 6.06 to 3.94 ms;
* `pallas`: each of the RHN's two scans as one fused kernel (config `rhn_kernel`,
  `vrash_jax/kernels/rhn_pallas.py`): two launches instead of a chain per time step. It lost on
  one H200 (2026-12-04): 21.34 against 3.92 ms a float32 step.
* `pallas_layer`: each micro-layer one fused kernel, forward and backward, inside XLA's scans
  (`vrash_jax/kernels/rhn_layer_pallas.py`): the matmul, the gates and the carry in one launch
  where XLA spent a matmul and about 1.5 fusions of about 2 us each. It lost on one H200
  (2026-12-04): 11.49 against 4.00 ms a float32 VRASH step, each kernel 9-17 us.

Which wins is measured, not assumed: the suite prints the fastest for each row. GPU flags and
the kernels (interpreted elsewhere) only mean something on a GPU; elsewhere those variants are
skipped, and said so.
"""
from __future__ import annotations

import os
from typing import Any

DEFAULT = 'default'
# name -> (XLA_FLAGS added, config overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    DEFAULT: ('', {}),
    'no_triton_gemm': ('--xla_gpu_enable_triton_gemm=false', {}),
    'command_buffers': ('--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL --xla_gpu_graph_min_graph_size=1', {}),
    'unroll1': ('', {'scan_unroll': 1}),
    'unroll4': ('', {'scan_unroll': 4}),
    'pallas': ('', {'rhn_kernel': 'pallas'}),
    'pallas_layer': ('', {'rhn_kernel': 'pallas_layer'}),
}
# On a CPU the kernels only run interpreted (for tests): timing them there says nothing.
GPU_ONLY = ('no_triton_gemm', 'command_buffers', 'pallas', 'pallas_layer')


def chosen(asked: list[str] | None, platform: str) -> list[str]:
  """The variants to time: those asked for (the default first), else every one on a GPU and the
  default alone elsewhere."""
  names = asked or (list(VARIANTS) if platform == 'gpu' else [DEFAULT])
  return [DEFAULT] + [n for n in names if n != DEFAULT]


def environment(name: str) -> dict[str, str]:
  """This process's environment with the variant's XLA flags added."""
  extra = VARIANTS[name][0]
  flags = ' '.join(f for f in (os.environ.get('XLA_FLAGS', ''), extra) if f)
  return {**os.environ, 'XLA_FLAGS': flags} if flags else dict(os.environ)


# How far a variant's first step (its loss and gradient norm, relative) may stray from the
# default's and still count as the same step: on one H200 the fused RHN kernel's gradients
# differed from XLA's by up to 2.7e-4 (float32) and 2.2e-3 (bfloat16) relative, rounding alone.
AGREEMENT = {'float32': 1e-3, 'bfloat16': 2e-2}


def deviation(row: dict[str, Any], default: dict[str, Any]) -> float:
  """The larger relative difference of `row`'s first-step loss and gradient norm from `default`'s."""
  return max(abs(row[k] - default[k]) / max(abs(default[k]), 1e-12) for k in ('first_loss', 'first_grad_norm'))


def fastest(rows: list[dict[str, Any]]) -> list[str]:
  """For each model x shape x dtype timed in more than one variant: the fastest of those whose
  first step agrees with the default's (`AGREEMENT`), against the default; a variant that
  computes another step is named, not counted."""
  timed: dict[tuple, dict[str, dict[str, Any]]] = {}
  for r in rows:
    if r['implementation'] == 'vrash_jax' and 'step_s' in r:
      timed.setdefault((r['model'], tuple(r['shape']), r['dtype']), {})[r.get('variant', DEFAULT)] = r
  lines = []
  for (model, shape, dtype), by_variant in timed.items():
    default = by_variant.get(DEFAULT)
    if len(by_variant) < 2 or default is None:
      continue
    apart = {v: deviation(r, default) for v, r in by_variant.items()}
    agreeing = [v for v in by_variant if apart[v] <= AGREEMENT[dtype]]
    best = min(agreeing, key=lambda v: by_variant[v]['step_s'])
    line = (f"{model} {', '.join(map(str, shape))} {dtype}: {best} ({1e3 * by_variant[best]['step_s']:.2f} ms, "
            f"{default['step_s'] / by_variant[best]['step_s']:.2f}x the default")
    others = [v for v in by_variant if v != DEFAULT]
    line += '; first step off the default\'s by ' + ', '.join(f'{apart[v]:.1e} ({v})' for v in others) + ')'
    if strays := [v for v in by_variant if v not in agreeing]:
      line += f" (not counted, off by more than {AGREEMENT[dtype]:g}: {', '.join(strays)})"
    lines.append(line)
  return lines
