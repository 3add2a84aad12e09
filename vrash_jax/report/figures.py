"""The report's figures, drawn from results.json alone: figure5.png (the paper's Fig. 5),
figure6.png (Fig. 6, the latent map), frontier.png and curves.png."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from vrash_jax.config_rules import LATENT_MODELS
from vrash_jax.report.blocks import NAMES, PAPER_CE

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


def matplotlib_pyplot():
  """pyplot on the Agg backend: figures are files, never windows."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def plot_figure5(results: dict[str, Any], path: str) -> None:
  """Bars of CE per note (mean +- std over seeds) like the paper's Fig. 5, with NLL bounds."""
  plt = matplotlib_pyplot()
  models = list(results['models'])
  untrained = np.mean([results['untrained'][m]['ce_total'] for m in models])
  names = ['untrained'] + [NAMES[m].replace(' ', '\n') for m in models]  # 'Transformer\nVRASH' fits its bar
  ce = [untrained] + [results['models'][m]['ce_total']['mean'] for m in models]
  err = [0.0] + [results['models'][m]['ce_total']['std'] for m in models]
  bound = [np.nan] + [results['models'][m].get('nll_iw', results['models'][m]['nll_bound'])['mean']
                      for m in models]
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(names)), 4.2))
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


def plot_figure6(latent: dict[str, Any], path: str) -> bool:
  """figure6.png: the t-SNE map of VRASH's posterior means coloured by style; False (nothing
  drawn) when the sweep made no map."""
  if 'tsne' not in latent:
    return False
  xy, labels = np.asarray(latent['tsne']['xy']), latent['tsne']['style']
  silhouette = latent['silhouette_by_style']
  plt = matplotlib_pyplot()
  fig, ax = plt.subplots(figsize=(8, 6))
  cmap = plt.get_cmap('tab20')
  for i, label in enumerate(latent['styles']):
    pick = np.array([style == label for style in labels])
    ax.scatter(xy[pick, 0], xy[pick, 1], s=8, color=cmap(i % 20), label=label)
  ax.set_title('VRASH latents of test melodies (t-SNE), silhouette by style '
               f'{"-" if silhouette is None else round(silhouette, 3)}')
  ax.legend(fontsize=7, markerscale=2, ncol=2, loc='best')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def plot_frontier(results: dict[str, Any], path: str) -> bool:
  """frontier.png: a row per latent model, CE and IW bound against KL, with the language
  models' NLL; False (nothing drawn) without VAE/VRASH points or an LM."""
  frontier = results.get('claims', {}).get('frontier', {})
  models = [m for m in LATENT_MODELS if any(p['model'] == m for p in frontier.get('points', []))]
  if not models or not frontier.get('lm'):
    return False
  plt = matplotlib_pyplot()
  fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.8 * len(models)), squeeze=False, sharey='row')
  lm = frontier['lm']['test']['ce_total']
  for row, model in zip(axes, models):
    pts = sorted((p for p in frontier['points'] if p['model'] == model), key=lambda p: p['test']['kl'])
    for ax, key, title in zip(row, ('ce_total', 'nll_iw'), ('CE, z from the posterior', 'NLL bound (IW)')):
      kl, y = [p['test']['kl'] for p in pts], [p['test'][key] for p in pts]
      ax.plot(kl, y, 'o', color={'vrash': '#4477aa', 'tvrash': '#d0851b'}.get(model, '#999933'), label=NAMES[model])
      for p, a, b in zip(pts, kl, y):
        ax.annotate(p['name'], (a, b), fontsize=7, xytext=(3, 3), textcoords='offset points')
      ax.axhline(lm, color='#cc3311', label='LM NLL')
      for other in frontier.get('language_models', []):
        if other['model'] != 'lm':
          ax.axhline(other['test']['ce_total'], color='#7b4fb0', ls='--', label=f"{NAMES[other['model']]} NLL")
      ax.set_xlabel('KL (nats per melody)')
      ax.set_title(f'{NAMES[model]}: {title}')
    row[0].set_ylabel('nats per note (test)')
    row[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def plot_curves(results: dict[str, Any], path: str) -> bool:
  """curves.png: a panel per model; False without any recorded curve."""
  curves = {m: c for m, c in results.get('curves', {}).items() if c['train_ce'] or c['valid_bound']}
  if not curves:
    return False
  plt = matplotlib_pyplot()
  fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.6), squeeze=False)
  for ax, (model, c) in zip(axes[0], curves.items()):
    for key, label, style in (('train_ce', 'train CE', '-'), ('valid_bound', 'valid NLL bound', 'o-')):
      if c[key]:
        xy = np.asarray(c[key])
        ax.plot(xy[:, 0], xy[:, 1], style, label=label)
    ax.set_title(NAMES[model])
    ax.set_xlabel('step')
  axes[0][0].set_ylabel('nats per note')
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def write_figures(results: dict[str, Any], workdir: str) -> None:
  """Every figure results.json holds the data of, into the workdir."""
  plot_figure5(results, os.path.join(workdir, 'figure5.png'))
  if 'latent' in results:
    plot_figure6(results['latent'], os.path.join(workdir, 'figure6.png'))
  plot_frontier(results, os.path.join(workdir, 'frontier.png'))
  plot_curves(results, os.path.join(workdir, 'curves.png'))
