"""`vrash-prep`: MIDI files -> the `vrash_midi` TFRecord dataset + stats.json + entropy.png.

Two stages, so that N hosts can share a large corpus:
  process  each host (`--shard_index i --num_shards N`) parses its disjoint share of the
           files in worker processes and writes DATA_DIR/_parts/part-i-of-N.jsonl.gz;
  build    one host merges all N parts into one TFDS dataset and writes the reports.
`--stage all` (the default) does both on one host.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import shutil
import tempfile
import time
from typing import Any

from absl import app, flags, logging

from data_prep import parallel, parts, report
from data_prep.process import PrepOptions, failed, process_file
from vrash_jax import storage
from vrash_jax.errors import PROGRESS, VrashError, exit_on_user_error, require

MIDI_SUFFIXES = ('.mid', '.midi')
PARTS_DIR = '_parts'
STAGES = ('all', 'process', 'build')


def list_midi_files(midi_dir: str) -> list[tuple[str, str]]:
  """(absolute path, relative path) of every .mid/.midi file under `midi_dir`, sorted."""
  if not os.path.isdir(midi_dir):
    raise VrashError(f'--midi_dir {midi_dir!r} is not a directory')
  found = []
  for root, dirs, files in os.walk(midi_dir):
    dirs.sort()
    for name in files:
      if name.lower().endswith(MIDI_SUFFIXES):
        path = os.path.join(root, name)
        found.append((path, os.path.relpath(path, midi_dir)))
  if not found:
    raise VrashError(f'no .mid or .midi files under --midi_dir {midi_dir!r}')
  return sorted(found, key=lambda item: item[1])


def shard_of(rel: str, num_shards: int) -> int:
  """Stable host shard of a file, by a hash of its relative path."""
  return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], 'big') % num_shards


def ensure_writable(data_dir: str) -> None:
  try:
    os.makedirs(data_dir, exist_ok=True)
    probe = os.path.join(data_dir, f'.write-test-{os.getpid()}')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as e:
    raise VrashError(f'cannot write to --data_dir {data_dir!r}: {e.strerror or e}') from None


def _report_progress(done: int, total: int, rate: float) -> None:
  PROGRESS.info('  processed %d/%d files (%.1f files/s)', done, total, rate)


def process_shard(midi_dir: str, data_dir: str, options: PrepOptions, workers: int,
                  shard_index: int = 0, num_shards: int = 1) -> str:
  """Stage 1: parses this host's share of the files; returns the part file written."""
  start = time.monotonic()
  files = [f for f in list_midi_files(midi_dir) if shard_of(f[1], num_shards) == shard_index]
  logging.info('shard %d/%d: %d files, %d workers', shard_index, num_shards, len(files), workers)
  results = parallel.robust_map(
      functools.partial(process_file, options=options), files, workers,
      on_crash=lambda item: failed(item[1], 'worker_crashed', 'the parsing process died'),
      progress=parallel.Progress(len(files), _report_progress))
  for result in [r for r in results if r['status'] != 'ok'][:10]:
    logging.warning('rejected %s: %s %s', result['source'], result['status'], result['detail'])
  header = {'format': parts.FORMAT, 'options': dataclasses.asdict(options), 'shard_index': shard_index,
            'num_shards': num_shards, 'files': len(files), 'workers': workers,
            'wall_time_s': time.monotonic() - start}
  path = parts.part_path(os.path.join(data_dir, PARTS_DIR), shard_index, num_shards)
  parts.write_part(path, header, results)
  return path


def build_dataset(data_dir: str, started: float | None = None) -> dict[str, Any]:
  """Stage 2: merges every part into the TFDS dataset; writes and returns the stats."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # else TensorFlow's C++ log says it is on, twice
  import tensorflow_datasets as tfds

  from data_prep import builder

  tfds.disable_progress_bar()
  build_start = time.monotonic()
  parts_dir = os.path.join(data_dir, PARTS_DIR)
  part_files = parts.list_parts(parts_dir)
  headers = [parts.read_header(p) for p in part_files]
  if any(h.get('format') != parts.FORMAT for h in headers):
    raise VrashError(f'the parts in {parts_dir} were written by an older vrash-prep (without style '
                     'labels): run the process stage again')
  if any(h['options'] != headers[0]['options'] for h in headers):
    raise VrashError(f'the parts in {parts_dir} were processed with different options; re-run them alike')
  dataset = builder.VrashMidi(data_dir=data_dir, file_format='tfrecord')
  # Rebuild from the current parts; the reports of an older build go first, so that an
  # interrupted rebuild leaves neither a dataset nor reports that TFDS or a reader would trust.
  for stale in ('stats.json', 'rejections.jsonl', 'entropy.png'):
    if os.path.exists(os.path.join(data_dir, stale)):
      os.remove(os.path.join(data_dir, stale))
  if os.path.isdir(dataset.data_dir):
    shutil.rmtree(dataset.data_dir)
  with contextlib.redirect_stdout(io.StringIO()) as said:  # TFDS prints "Downloading and preparing ..."
    dataset.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=parts_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP))
  logging.info('%s', said.getvalue().strip())
  stats, entropies = report.collect(parts.read_results(part_files),
                                    os.path.join(data_dir, 'rejections.jsonl'))
  options = headers[0]['options']
  report.plot_entropy(entropies, options['min_entropy'], os.path.join(data_dir, 'entropy.png'))
  process_s = max(h['wall_time_s'] for h in headers)
  wall = (time.monotonic() - started) if started is not None else process_s + time.monotonic() - build_start
  stats.update({
      'entropy': report.entropy_summary([e for v in entropies.values() for e in v], options['min_entropy']),
      'options': options,
      'dataset': {'name': dataset.name, 'version': str(dataset.version), 'dir': dataset.data_dir},
      'num_shards': len(part_files), 'workers': headers[0]['workers'],
      'process_wall_time_s': process_s, 'build_wall_time_s': time.monotonic() - build_start,
      'wall_time_s': wall, 'files_per_s': stats['files_total'] / max(wall, 1e-9),
  })
  report.write_json(os.path.join(data_dir, 'stats.json'), stats)
  return stats


def prepare(midi_dir: str, data_dir: str, options: PrepOptions = PrepOptions(),
            workers: int | None = None, stage: str = 'all', shard_index: int = 0,
            num_shards: int = 1) -> dict[str, Any] | None:
  """The whole pipeline as a function; returns the stats when the build stage ran."""
  started = time.monotonic()
  options.validate()
  if stage not in STAGES:
    raise VrashError(f'--stage must be one of {", ".join(STAGES)}, not {stage!r}')
  if not 0 <= shard_index < num_shards:
    raise VrashError(f'--shard_index must be in [0, {num_shards}), got {shard_index}')
  if stage == 'all' and num_shards != 1:
    raise VrashError('with --num_shards > 1 run `--stage process` on every shard, then `--stage build` once')
  workers = workers or os.cpu_count() or 1
  if workers < 1:
    raise VrashError(f'--workers must be at least 1, got {workers}')
  if stage != 'build':
    storage.require_local(midi_dir, '--midi_dir', 'the MIDI files are read from a local folder (copy them '
                          'there first: gsutil -m cp -r)')
  if storage.is_remote(data_dir):
    return _prepare_and_upload(midi_dir, data_dir, options, workers, stage)
  ensure_writable(data_dir)
  if stage in ('all', 'process'):
    process_shard(midi_dir, data_dir, options, workers, shard_index, num_shards)
  if stage in ('all', 'build'):
    return build_dataset(data_dir, started if stage == 'all' else None)
  return None


def _prepare_and_upload(midi_dir: str, data_dir: str, options: PrepOptions, workers: int,
                        stage: str) -> dict[str, Any]:
  """A gs:// --data_dir: the dataset is prepared in a local temporary folder, then uploaded (the
  trainers read it from the bucket). Shards over several hosts need a shared disk."""
  if stage != 'all':
    raise VrashError(f'--stage {stage} shares its work through a folder every host sees on disk; with '
                     f'a gs:// --data_dir run `--stage all` on one host')
  with tempfile.TemporaryDirectory(prefix='vrash-prep-') as local:
    stats = prepare(midi_dir, local, options, workers)
    stats['dataset']['dir'] = stats['dataset']['dir'].replace(local, data_dir.rstrip('/'))
    report.write_json(os.path.join(local, 'stats.json'), stats)
    logging.info('uploading the dataset to %s', data_dir)
    storage.copy_tree(local, data_dir)
  return stats


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The launcher's flags (defined on demand, so importing this module defines none)."""
  flags.DEFINE_string('midi_dir', None, 'Folder searched recursively for .mid/.midi files.')
  flags.DEFINE_string('data_dir', None, 'Where the dataset, stats.json and entropy.png go (local or gs://).')
  flags.DEFINE_integer('workers', None, 'Worker processes (default: all cores).', lower_bound=1)
  flags.DEFINE_enum('stage', 'all', STAGES, 'process, build, or all (both on this host).')
  flags.DEFINE_integer('shard_index', 0, 'This host\'s share of the files (stage process).', lower_bound=0)
  flags.DEFINE_integer('num_shards', 1, 'How many hosts share the files.', lower_bound=1)
  for field in dataclasses.fields(PrepOptions):
    define = flags.DEFINE_float if field.type == 'float' else flags.DEFINE_integer
    define(field.name, field.default, field.metadata['help'])


@exit_on_user_error
def main(argv: list[str]) -> None:
  require(data_dir=FLAGS.data_dir, **({} if FLAGS.stage == 'build' else {'midi_dir': FLAGS.midi_dir}))
  options = PrepOptions(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(PrepOptions)})
  stats = prepare(FLAGS.midi_dir, FLAGS.data_dir, options, FLAGS.workers, FLAGS.stage,
                  FLAGS.shard_index, FLAGS.num_shards)
  if stats is not None:
    print(report.summary(stats), flush=True)


def run() -> None:
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
