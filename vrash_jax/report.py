"""Sweep results as files a person can open: results.json, results.md, figure5.png, figure6.png."""
from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Any

import numpy as np

from vrash_jax.errors import VrashError

# Figures a workdir may hold, with what they show; results.html shows those present.
FIGURES = {
    'entropy.png': 'Pitch entropy of every track before the entropy filter, by collection (paper Fig. 1).',
    'figure5.png': 'Test cross-entropy per note, mean ± std over seeds, with the importance-weighted '
                   "NLL bound beside it and the paper's values in red (paper Fig. 5).",
    'figure6.png': 'VRASH posterior means of the test melodies, t-SNE, coloured by style (paper Fig. 6).',
    'frontier.png': 'Rate-distortion frontier: test CE (z from the posterior) and importance-weighted '
                    "NLL bound against KL per melody for every VAE and VRASH run, with the LM's NLL.",
    'curves.png': 'Learning curves of the first seed: train CE and the valid NLL bound that picks the '
                  'kept (best) checkpoint.',
}
PAPER_CE = {'lm': 2.34, 'vrash': 2.11}  # per note, Sec. 4; the VAE's value is not given
NAMES = {'lm': 'LM', 'vae': 'VAE', 'vrash': 'VRASH'}


def matplotlib_pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def plot_latents(z: np.ndarray, labels: list[str], path: str, seed: int = 0) -> dict[str, Any]:
  """t-SNE of latents coloured by style label; silhouette score of the labels in the latent space."""
  from sklearn.manifold import TSNE
  from sklearn.metrics import silhouette_score

  counts = collections.Counter(labels)
  out: dict[str, Any] = {'method': 't-SNE of posterior means', 'points': len(labels),
                         'styles': dict(counts.most_common())}
  usable = 2 <= len(counts) < len(labels)
  out['silhouette_by_style'] = float(silhouette_score(z, labels)) if usable else None
  if len(labels) < 5:
    return out
  xy = TSNE(2, perplexity=min(30.0, (len(labels) - 1) / 3), init='pca', random_state=seed).fit_transform(z)
  plt = matplotlib_pyplot()
  fig, ax = plt.subplots(figsize=(8, 6))
  cmap = plt.get_cmap('tab20')
  for i, (label, _) in enumerate(counts.most_common()):
    pick = np.array([l == label for l in labels])
    ax.scatter(xy[pick, 0], xy[pick, 1], s=8, color=cmap(i % 20), label=label)
  ax.set_title(f'VRASH latents of test melodies (t-SNE), silhouette by style '
               f'{out["silhouette_by_style"] if out["silhouette_by_style"] is None else round(out["silhouette_by_style"], 3)}')
  ax.legend(fontsize=7, markerscale=2, ncol=2, loc='best')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return out


def plot_figure5(results: dict[str, Any], path: str) -> None:
  """Bars of CE per note (mean +- std over seeds) like the paper's Fig. 5, with NLL bounds."""
  plt = matplotlib_pyplot()
  models = list(results['models'])
  untrained = np.mean([results['untrained'][m]['ce_total'] for m in models])
  names = ['untrained'] + [NAMES[m] for m in models]
  ce = [untrained] + [results['models'][m]['ce_total']['mean'] for m in models]
  err = [0.0] + [results['models'][m]['ce_total']['std'] for m in models]
  bound = [np.nan] + [results['models'][m].get('nll_iw', results['models'][m]['nll_bound'])['mean']
                      for m in models]
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.bar(x - 0.2, ce, 0.4, yerr=err, capsize=4, color='#4477aa', label='cross-entropy (z from posterior)')
  ax.bar(x + 0.2, bound, 0.4, color='#bbbbbb', label='upper bound on NLL (importance-weighted)')
  for i, m in enumerate(models, 1):
    if m in PAPER_CE:
      ax.plot([i - 0.4, i], [PAPER_CE[m]] * 2, color='#cc3311', linewidth=2,
              label='paper' if m == 'lm' else None)
  for i, v in enumerate(ce):
    ax.text(i - 0.2, v, f'{v:.2f}', ha='center', va='bottom', fontsize=8)
  ax.set_xticks(x, names)
  ax.set_ylabel('nats per note')
  ax.set_title('Test cross-entropy per note (mean ± std over seeds)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _round(value: float | None) -> str:
  return '-' if value is None else f'{value:.3f}'


def _pm(stats: dict[str, float] | None) -> str:
  return '-' if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}"


@dataclasses.dataclass
class Table:
  header: list[str]
  rows: list[list[str]]


@dataclasses.dataclass
class Checklist:
  items: list[tuple[bool, str]]  # (met, what with its numbers)


@dataclasses.dataclass
class Section:
  """A titled part of the results, rendered alike to results.md and results.html."""
  title: str
  blocks: list[str | Table | Checklist]  # paragraphs, tables and checklists in order


def target_check(results: dict[str, Any]) -> Checklist:
  """The issue's target, criterion by criterion, with the numbers."""
  m = results['models']
  if not all(k in m for k in ('lm', 'vae', 'vrash')):
    return Checklist([(False, '(the target needs lm, vae and vrash)')])
  ce = {k: m[k]['ce_total']['mean'] for k in m}
  untrained = min(results['untrained'][k]['ce_total'] for k in m)
  lm_nll = ce['lm']
  vrash_nll = m['vrash'].get('nll_iw', m['vrash']['nll_bound'])['mean']
  gap = 1 - ce['vrash'] / ce['lm']
  return Checklist([
      (untrained > ce['vae'] > ce['lm'] > ce['vrash'],
       f"ordering untrained > VAE > LM > VRASH: {untrained:.3f} > {ce['vae']:.3f} > {ce['lm']:.3f} > {ce['vrash']:.3f}"),
      (gap >= 0.10, f'VRASH CE {100 * gap:.1f}% below LM (target >= 10%; paper 9.8%)'),
      (vrash_nll <= 1.02 * lm_nll, f'VRASH NLL bound {vrash_nll:.3f} vs LM NLL {lm_nll:.3f} '
                                   f'({100 * (vrash_nll / lm_nll - 1):+.1f}%, target within +2%)'),
      (m['vrash']['kl']['mean'] >= 2.0, f"VRASH KL {m['vrash']['kl']['mean']:.2f} nats per sequence (target >= 2)"),
  ])


def comparison_table(results: dict[str, Any]) -> Table:
  models = list(results['models'])
  k = results.get('iw_samples', 0)
  untrained = ' / '.join(f"{results['untrained'][m]['ce_total']:.3f}" for m in models)
  rows = [[f"untrained ({' / '.join(NAMES[m] for m in models)})", untrained] + [''] * 7]
  for m in models:
    s = results['models'][m]
    rows.append([NAMES[m], _pm(s['ce_total']), _pm(s['ce_pitch']), _pm(s['ce_octave']), _pm(s['ce_delay']),
                 _pm(s.get('kl')), _pm(s['nll_bound']), _pm(s.get('nll_iw')), str(PAPER_CE.get(m, '-'))])
  return Table(['model', 'CE', 'pitch', 'octave', 'delay', 'KL', 'NLL ≤ (ELBO)', f'NLL ≤ (IW, K={k})',
                'paper CE'], rows)


def results_sections(results: dict[str, Any]) -> list[Section]:
  """Every table and verdict of a sweep, from results.json alone; the first is the title."""
  seeds = ', '.join(f"{NAMES[m]} {s['seeds']}" for m, s in results['models'].items())
  sections = [Section('Cross-entropy comparison (Tikhonov & Yamshchikov 2017, Fig. 5)', [
      f"Test split: {results['test_notes']} notes. Seeds per model: {seeds}. "
      'Figures are nats per note (KL: nats per melody), mean ± std over seeds.',
      comparison_table(results),
      'CE uses z drawn from the posterior, which has seen the melody (what the paper plots); the two '
      'bounds charge for that information, so they compare VAE/VRASH with the LM as density models.']),
      Section('Target', [target_check(results)])]
  from vrash_jax import claims_report  # builds on this module's tables
  sections += claims_report.sections(results)
  sources = [('test data', results['data'])] + [(NAMES[m], results['samples'][m]) for m in results['samples']]
  sections.append(Section('Samples: objective metrics', [Table(
      ['source'] + list(results['data']),
      [[name] + [f'{v:.3f}' for v in row.values()] for name, row in sources])]))
  if 'latent' in results:
    lat = results['latent']
    sections.append(Section('Latent space (VRASH, seed 0)', [
        f"Silhouette score of the test melodies' posterior means by style: "
        f"{_round(lat['silhouette_by_style'])} ({lat['points']} melodies, {len(lat['styles'])} styles). "
        'See figure6.png.']))
  if results.get('notes'):
    sections.append(Section('Choices', [results['notes']]))
  sections.append(Section('Runs', [Table(
      ['model', 'seed', 'steps', 'train s', 'CE', 'KL', 'NLL ≤ (IW)'],
      [[NAMES[r['model']], str(r['seed']), str(r['steps']), f"{r['train_wall_s']:.0f}", f"{r['ce_total']:.3f}",
        f"{r['kl']:.2f}", f"{r.get('nll_iw', float('nan')):.3f}"] for r in results['runs']])]))
  return sections


def _markdown_block(block: str | Table | Checklist) -> list[str]:
  if isinstance(block, Table):
    return ([f"| {' | '.join(block.header)} |", '|' + '---|' * len(block.header)] +
            [f"| {' | '.join(row)} |" for row in block.rows])
  if isinstance(block, Checklist):
    return [f"- [{'x' if ok else ' '}] {text}" for ok, text in block.items]
  return [block]


def results_markdown(results: dict[str, Any]) -> str:
  lines = []
  for i, section in enumerate(results_sections(results)):
    lines += [f"{'#' if i == 0 else '##'} {section.title}", '']
    for block in section.blocks:
      lines += _markdown_block(block) + ['']
  return '\n'.join(lines).rstrip('\n') + '\n'


def write_all(results: dict[str, Any], workdir: str, soundfont: str | None = None) -> str:
  """results.json, results.md, figure5.png and results.html (with its piano rolls and WAVs);
  returns the page's path."""
  from vrash_jax import html_report  # imported here: it renders this module's sections

  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(results_markdown(results))
  plot_figure5(results, os.path.join(workdir, 'figure5.png'))
  from vrash_jax import claims_report
  claims_report.plot_frontier(results, os.path.join(workdir, 'frontier.png'))
  claims_report.plot_curves(results, os.path.join(workdir, 'curves.png'))
  return html_report.write_html(results, workdir, soundfont)


def rebuild(workdir: str, soundfont: str | None = None) -> str:
  """Renders every report file of `workdir` again from its results.json; returns the page."""
  from vrash_jax import audio

  path = os.path.join(workdir, 'results.json')
  if not os.path.isfile(path):
    raise VrashError(f'{path} does not exist: run `vrash-sweep` or `vrash-reproduce` there first')
  if soundfont:
    audio.check_soundfont(soundfont)
  with open(path) as f:
    return write_all(json.load(f), workdir, soundfont)
