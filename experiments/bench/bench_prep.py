"""Preprocessing throughput: the pipeline with 1 and N workers vs. a bare pretty_midi parse.

  vrash-bench prep --midi_dir data/midi [--worker_counts 1,2] [--out bench_prep.json]

Prints a Markdown table and writes the figures as JSON. The "process" column is the
parallel parsing/normalization stage alone; "total" adds the TFDS build and the reports.
For the process stage it also records, to explain the scaling, the CPU seconds of this (the
parent) process, of the whole machine (all processes, from /proc/stat on Linux) and the
time the hypervisor gave our virtual CPUs to other guests ("steal").
"""
from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
import warnings

from absl import flags

from vrash_jax.errors import require

FLAGS = flags.FLAGS
DEFAULTS: dict = {}
flags.DEFINE_string('midi_dir', None, 'Folder of MIDI files (e.g. the output of vrash-corpus).')
flags.DEFINE_list('worker_counts', ['1', '2'], 'Worker counts to measure.')


def bare_parse_seconds(paths: list[str]) -> float:
  import pretty_midi
  start = time.perf_counter()
  for path in paths:
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        pretty_midi.PrettyMIDI(path)
    except Exception:  # the bare baseline skips what it cannot read
      pass
  return time.perf_counter() - start


def cpu_seconds() -> dict[str, float]:
  """This process's CPU time, and the machine's busy and stolen CPU time (NaN off Linux)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  out = {'parent_cpu_s': own.ru_utime + own.ru_stime, 'machine_busy_s': float('nan'),
         'steal_s': float('nan')}
  try:
    with open('/proc/stat') as f:
      ticks = [int(v) for v in f.readline().split()[1:]]
  except (OSError, ValueError):
    return out
  hz = os.sysconf('SC_CLK_TCK')
  # user nice system idle iowait irq softirq steal ...
  out['machine_busy_s'] = (sum(ticks[:3]) + sum(ticks[5:7])) / hz
  out['steal_s'] = ticks[7] / hz if len(ticks) > 7 else float('nan')
  return out


def measure(midi_dir: str, worker_counts: list[int]) -> dict:
  """The bare parse, then the pipeline with each worker count (the process stage, then the build)."""
  from data_prep import prep
  from data_prep.process import PrepOptions

  paths = [p for p, _ in prep.list_midi_files(midi_dir)]
  rows = [{'mode': 'bare pretty_midi parse, 1 process', 'seconds': bare_parse_seconds(paths)}]
  for workers in worker_counts:
    with tempfile.TemporaryDirectory() as out:
      before, start = cpu_seconds(), time.perf_counter()
      prep.process_shard(midi_dir, out, PrepOptions(), workers)
      process_s, after = time.perf_counter() - start, cpu_seconds()
      prep.build_dataset(out)
      rows.append({'mode': f'vrash-prep, {workers} worker(s)', 'workers': workers,
                   'process_seconds': process_s, 'seconds': time.perf_counter() - start,
                   **{f'process_{k}': after[k] - before[k] for k in before}})
  for row in rows:
    row['files_per_s'] = len(paths) / row['seconds']
  return {'files': len(paths), 'rows': rows, 'cpu_count': os.cpu_count(),
          'machine': platform.platform(), 'date': time.strftime('%Y-%m-%d')}


def table(result: dict) -> str:
  bare = result['rows'][0]['seconds']
  lines = [f"{result['files']} files, {result['cpu_count']} cores", '',
           '| mode | process s | total s | files/s | total / bare | process stage: parent CPU s, '
           'machine busy CPU s, steal s |', '|---|---|---|---|---|---|']
  for r in result['rows']:
    process, cpu = '-', '-'
    if 'process_seconds' in r:
      process = f"{r['process_seconds']:.1f}"
      cpu = ', '.join(f"{r[f'process_{k}']:.1f}" for k in ('parent_cpu_s', 'machine_busy_s', 'steal_s'))
    lines.append(f"| {r['mode']} | {process} | {r['seconds']:.1f} | {r['files_per_s']:.0f} | "
                 f"{r['seconds'] / bare:.2f} | {cpu} |")
  return '\n'.join(lines)


def run(config) -> dict:
  del config  # preprocessing needs no model
  require(midi_dir=FLAGS.midi_dir)
  return measure(FLAGS.midi_dir, [int(w) for w in FLAGS.worker_counts])
