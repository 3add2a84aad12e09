"""Part files: the processed results of one host's shard of the MIDI files.

`part-SSSSS-of-NNNNN.jsonl.gz` holds one JSON line per source file (see
`process.process_file`). Parts are written atomically, so a part that exists is complete;
the builder refuses to run until all N parts of a sharded preparation are present.
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
from typing import Any, Iterable, Iterator

from vrash_jax.errors import VrashError

_PART = re.compile(r'part-(\d{5})-of-(\d{5})\.jsonl\.gz$')
FORMAT = 2  # of a part file's examples; 2: with the collection and style labels


def part_path(parts_dir: str, shard_index: int, num_shards: int) -> str:
  return os.path.join(parts_dir, f'part-{shard_index:05d}-of-{num_shards:05d}.jsonl.gz')


def write_part(path: str, header: dict[str, Any], results: Iterable[dict[str, Any]]) -> None:
  """Writes a header line then the results, atomically; gzip mtime fixed for byte-identity."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0) as f:
    f.write(json.dumps({'header': header}, sort_keys=True).encode() + b'\n')
    for result in results:
      f.write(json.dumps(result, sort_keys=True).encode() + b'\n')
  os.replace(tmp, path)


def list_parts(parts_dir: str) -> list[str]:
  """All part files of one preparation, in shard order; raises if some are missing."""
  found = {}
  for path in glob.glob(os.path.join(parts_dir, 'part-*-of-*.jsonl.gz')):
    match = _PART.search(path)
    if match:
      found[(int(match.group(2)), int(match.group(1)))] = path
  if not found:
    raise VrashError(f'no processed part files in {parts_dir}: run `vrash-prep --stage process` first')
  totals = {n for n, _ in found}
  if len(totals) > 1:
    raise VrashError(f'{parts_dir} mixes part files of different shard counts {sorted(totals)}; '
                     'delete the stale ones and re-run')
  (total,) = totals
  missing = [i for i in range(total) if (total, i) not in found]
  if missing:
    raise VrashError(f'{len(missing)} of {total} shards are not processed yet (shard_index '
                     f'{", ".join(map(str, missing[:10]))}): run `vrash-prep --stage process` for them')
  return [found[(total, i)] for i in range(total)]


def read_header(path: str) -> dict[str, Any]:
  with gzip.open(path, 'rt', encoding='utf-8') as f:
    return json.loads(f.readline())['header']


def read_results(part_files: list[str]) -> Iterator[dict[str, Any]]:
  for path in part_files:
    with gzip.open(path, 'rt', encoding='utf-8') as f:
      next(f)  # header
      for line in f:
        yield json.loads(line)


def split_counts(part_files: list[str]) -> collections.Counter:
  """Examples per split."""
  counts = collections.Counter()
  for result in read_results(part_files):
    if result['examples']:
      counts[result['split']] += len(result['examples'])
  return counts
