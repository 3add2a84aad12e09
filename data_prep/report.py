"""What a preparation kept and why the rest was dropped: stats.json, rejections.jsonl,
the entropy histogram (paper Fig. 1) and a short console summary."""
from __future__ import annotations

import collections
import json
import os
from typing import Any, Iterable

import numpy as np

from data_prep import labels
from data_prep.process import SPLITS
from vrash_jax import notes


def collect(results: Iterable[dict[str, Any]], rejections_path: str
            ) -> tuple[dict[str, Any], dict[str, list[float]]]:
  """Counts over all file results; writes every rejection as a JSON line; returns the
  tracks' entropies by collection."""
  files_failed = collections.Counter()
  rejected = collections.Counter()
  examples, note_counts, split_files = (collections.Counter() for _ in range(3))
  files_total = tracks_total = tracks_kept = files_without_tracks = 0
  delays_used: set[int] = set()
  entropies: dict[str, list[float]] = collections.defaultdict(list)
  by_label = {key: collections.defaultdict(collections.Counter) for key in ('collection', 'style')}
  with open(rejections_path, 'w', encoding='utf-8') as log:
    for result in results:
      files_total += 1
      if result['status'] != 'ok':
        files_failed[result['status']] += 1
        log.write(json.dumps({'source': result['source'], 'track': None,
                              'reason': result['status'], 'detail': result['detail']}) + '\n')
        continue
      for index, reason, detail in result['rejected']:
        rejected[reason] += 1
        log.write(json.dumps({'source': result['source'], 'track': index,
                              'reason': reason, 'detail': detail}) + '\n')
      kept = {e['track'] for e in result['examples']}
      tracks_total += result['tracks_total']
      tracks_kept += len(kept)
      files_without_tracks += not kept
      labels_here = dict(zip(('collection', 'style'), labels.labels_of(result['source'])))
      for key, label in labels_here.items():
        counts = by_label[key][label]
        counts['files'] += 1
        counts['tracks'] += result['tracks_total']
        counts['tracks_kept'] += len(kept)
        counts['examples'] += len(result['examples'])
      entropies[labels_here['collection']].extend(result['entropies'])
      split = result['split']
      split_files[split] += 1
      examples[split] += len(result['examples'])
      for e in result['examples']:
        note_counts[split] += len(e['delay'])
        delays_used.update(e['delay'])
  stats = {
      'files_total': files_total,
      'files_ok': files_total - sum(files_failed.values()),
      'files_failed': dict(sorted(files_failed.items())),
      'files_without_kept_tracks': files_without_tracks,
      'tracks_total': tracks_total,
      'tracks_kept': tracks_kept,
      'rejected': dict(sorted(rejected.items())),
      'files_per_split': {s: split_files[s] for s in SPLITS},
      'examples': {s: examples[s] for s in SPLITS},
      'notes': {s: note_counts[s] for s in SPLITS},
      'per_collection': {k: dict(v) for k, v in sorted(by_label['collection'].items())},
      'per_style': {k: dict(v) for k, v in sorted(by_label['style'].items())},
      'delay_tokens_used': sorted(delays_used),
      'vocabularies': notes.vocabularies(),
  }
  return stats, entropies


def plot_entropy(entropies: dict[str, list[float]], threshold: float, path: str) -> None:
  """Histogram of per-track pitch entropy before the entropy filter (paper Fig. 1), stacked
  by collection."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  names = sorted(entropies, key=lambda k: -len(entropies[k]))
  total = sum(len(v) for v in entropies.values())
  fig, ax = plt.subplots(figsize=(7, 4))
  if total:
    ax.hist([entropies[n] for n in names], bins=50, stacked=True,
            label=[f'{n} ({len(entropies[n])})' for n in names])
  ax.axvline(threshold, color='#cc3311', linestyle='--', label=f'filter threshold {threshold:g} bits')
  ax.set_xlabel('pitch entropy of a track (bits)')
  ax.set_ylabel('tracks')
  ax.set_title(f'Track entropy before filtering ({total} tracks)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def entropy_summary(entropies: list[float], threshold: float) -> dict[str, Any]:
  values = np.asarray(entropies, np.float64)
  return {
      'tracks': int(values.size), 'threshold_bits': threshold,
      'below_threshold': int((values < threshold).sum()),
      'mean_bits': float(values.mean()) if values.size else None,
      'median_bits': float(np.median(values)) if values.size else None,
      'histogram_png': 'entropy.png',
  }


def write_json(path: str, data: dict[str, Any]) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(data, f, indent=2, sort_keys=False)
    f.write('\n')
  os.replace(tmp, path)


def _counts(counter: dict[str, int]) -> str:
  return ', '.join(f'{k} {v}' for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or 'none'


def summary(stats: dict[str, Any]) -> str:
  failed = sum(stats['files_failed'].values())
  ex = stats['examples']
  return '\n'.join([
      f"files: {stats['files_total']} ({stats['files_ok']} read, {failed} failed: "
      f"{_counts(stats['files_failed'])}) in {stats['wall_time_s']:.1f} s "
      f"({stats['files_per_s']:.1f} files/s)",
      f"tracks: {stats['tracks_total']} total, {stats['tracks_kept']} kept; rejected: "
      f"{_counts(stats['rejected'])}",
      "tracks kept per collection: "
      + ', '.join(f"{k} {v['tracks_kept']}/{v['tracks']}" for k, v in stats['per_collection'].items()),
      f"examples: train {ex['train']}, valid {ex['valid']}, test {ex['test']} -> {stats['dataset']['dir']}",
  ])
