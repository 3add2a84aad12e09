"""The sections of the results (results.md and results.html alike), from results.json alone:
the comparison with the paper, the target, the claims, sample metrics, the latent space, runs."""
from __future__ import annotations

from typing import Any

from vrash_jax.config_rules import PAPER_MODELS
from vrash_jax.report import answer, claims_sections
from vrash_jax.report.blocks import NAMES, PAPER_CE, Checklist, Section, Table, Verdicts

TITLE = 'VRASH against the LM (Tikhonov & Yamshchikov 2017), reproduced'


def _round(value: float | None) -> str:
  return '-' if value is None else f'{value:.3f}'


def _pm(stats: dict[str, float] | None) -> str:
  return '-' if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def _seconds(run: dict[str, Any], part: str) -> str:
  """A part of a run's time ('-' for runs recorded before the breakdown existed)."""
  return f"{run['seconds'].get(part, 0.0):.0f}" if 'seconds' in run else '-'


def target_check(results: dict[str, Any]) -> Checklist:
  """The issue's target, criterion by criterion, with the numbers."""
  m = results['models']
  if not all(k in m for k in PAPER_MODELS):
    return Checklist([(False, '(the target needs lm, vae and vrash)')])
  ce = {k: m[k]['ce_total']['mean'] for k in m}
  untrained = min(results['untrained'][k]['ce_total'] for k in m)
  lm_nll = ce['lm']
  vrash_nll = m['vrash'].get('nll_iw', m['vrash']['nll_bound'])['mean']
  gap = 1 - ce['vrash'] / ce['lm']
  return Checklist([
      (untrained > ce['vae'] > ce['lm'] > ce['vrash'],
       f"ordering untrained > VAE > LM > VRASH: {untrained:.3f} > {ce['vae']:.3f} > {ce['lm']:.3f} > "
       f"{ce['vrash']:.3f}"),
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


def opening(results: dict[str, Any]) -> list[Section]:
  """The answer, then a line per verdict with its evidence folded under it."""
  verdicts = results.get('claims', {}).get('verdicts', [])
  lines = [(mark, verdict, claim, headline, v['evidence'])
           for (mark, verdict, claim, headline), v in zip(answer.verdict_lines(results), verdicts)]
  out = [Section(TITLE, [answer.answer(results) or 'The answer needs both the LM and VRASH in the sweep.'])]
  if lines:
    out.append(Section("The paper's claims", [
        'A verdict holds or fails only when the 95% intervals over seeds do not overlap.', Verdicts(lines)]))
  return out


def results_sections(results: dict[str, Any]) -> list[Section]:
  """Every table and verdict of a sweep, from results.json alone; the first is the title and
  the answer, the second the verdicts."""
  seeds = ', '.join(f"{NAMES[m]} {s['seeds']}" for m, s in results['models'].items())
  sections = opening(results) + [Section('Cross-entropy comparison (paper Fig. 5)', [
      f"Test split: {results['test_notes']} notes. Seeds per model: {seeds}. "
      'Figures are nats per note (KL: nats per melody), mean ± std over seeds.',
      comparison_table(results),
      'CE uses z drawn from the posterior, which has seen the melody (what the paper plots); the two '
      'bounds charge for that information, so they compare VAE/VRASH with the LM as density models.']),
      Section('Target', [target_check(results)])]
  sections += claims_sections.sections(results)
  sources = [('test data', results['data'])] + [(NAMES[m], results['samples'][m]) for m in results['samples']]
  sections.append(Section('Samples: objective metrics', [Table(
      ['source'] + list(results['data']),
      [[name] + [f'{v:.3f}' for v in row.values()] for name, row in sources])], folded=True))
  if 'latent' in results:
    lat = results['latent']
    sections.append(Section('Latent space (VRASH, seed 0)', [
        f"Silhouette score of the test melodies' posterior means by style: "
        f"{_round(lat['silhouette_by_style'])} ({lat['points']} melodies, {len(lat['styles'])} styles). "
        'See figure6.png.']))
  if results.get('notes'):
    sections.append(Section('Choices', [results['notes']], folded=True))
  sections.append(Section('Runs', [
      'Training seconds summed over every sitting, and the parts of them spent compiling (the first '
      'step at each batch width) and evaluating the valid split.',
      Table(['model', 'seed', 'steps', 'train s', 'compilation s', 'evaluation s', 'CE', 'KL', 'NLL ≤ (IW)'],
            [[NAMES[r['model']], str(r['seed']), str(r['steps']), f"{r['train_wall_s']:.0f}",
              _seconds(r, 'compilation'), _seconds(r, 'evaluation'), f"{r['ce_total']:.3f}", f"{r['kl']:.2f}",
              f"{r.get('nll_iw', float('nan')):.3f}"] for r in results['runs']])], folded=True))
  return sections
