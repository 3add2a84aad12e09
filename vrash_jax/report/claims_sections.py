"""The claims' part of the results: the verdicts, the rate-distortion frontier, figures by melody
length and samples by temperature, as sections. Renders results.json alone."""
from __future__ import annotations

from typing import Any

from vrash_jax.report.blocks import NAMES, Checklist, Section, Table
from vrash_jax.study import claims, structure

SAMPLE_KEYS = ('repeated_note_rate', 'longest_run', 'loop_share', 'recurring_4gram_share',
               'distinct_4gram_rate', 'distinct_4gram_within')


def _pct(x: float) -> str:
  return f'{100 * x:+.1f}%'


def _with_half_width(point: dict[str, Any], key: str, digits: int) -> str:
  """A test figure's mean over the point's seeds, ± the half-width of its 95% interval."""
  value = f"{point['test'][key]:.{digits}f}"
  ci = point.get('test_ci', {}).get(key)
  return value if ci is None or ci['n'] < 2 else f"{value} ± {(ci['high'] - ci['low']) / 2:.{digits}f}"


def frontier_table(frontier: dict[str, Any]) -> Table:
  lm = frontier['lm']
  rows = []
  for p in frontier.get('language_models') or [lm]:  # the RHN LM's figures are the comparison's reference
    rows.append([NAMES[p['model']], p['model'], '-', '-', str(len(p.get('seeds', [0]))),
                 f"{p['valid']['ce_total']:.3f}", _with_half_width(p, 'ce_total', 3), '0',
                 f"{p['test']['ce_total']:.3f}",
                 '' if p['model'] == 'lm' else _pct(1 - p['test']['ce_total'] / lm['test']['ce_total']),
                 '' if p['model'] == 'lm' else _pct(p['test']['ce_total'] / lm['test']['ce_total'] - 1)])
  for p in frontier['points']:
    t, v = p['test'], p['valid']
    mark = ' (recommended)' if p['name'] == frontier.get('recommended') and p['model'] == 'vrash' else ''
    rows.append([NAMES[p['model']], p['name'] + mark, p['technique'], f"{p['free_bits']:g} / {p['note_dropout']:g}",
                 str(len(p.get('seeds', [0]))), f"{v['nll_iw']:.3f}", _with_half_width(p, 'ce_total', 3),
                 _with_half_width(p, 'kl', 2), _with_half_width(p, 'nll_iw', 3),
                 _pct(1 - t['ce_total'] / lm['test']['ce_total']), _pct(t['nll_iw'] / lm['test']['ce_total'] - 1)])
  return Table(['model', 'point', 'technique', 'free bits / note dropout', 'seeds', 'valid NLL ≤ (IW)', 'test CE',
                'test KL', 'test NLL ≤ (IW)', 'CE below LM', 'IW vs LM'], rows)


def frontier_section(frontier: dict[str, Any], k: int, valid_k: int) -> Section:
  goals = frontier['goals']
  best = goals['largest_gap_within_2pct']
  checks = Checklist([
      (bool(goals['latent_pays']),
       f"a VRASH point whose IW bound is at or below the LM's NLL ({goals['lm_nll']:.3f}) with KL >= "
       f"{claims.MIN_KL:g} nats per melody: " + (', '.join(goals['latent_pays']) or 'none')),
      (best is not None and best['ce_gap'] > 0,
       'largest CE gap among VRASH points with an IW bound within +2% of the LM: ' +
       ('none within +2%' if best is None else
        f"{best['name']}, CE {100 * best['ce_gap']:.1f}% below the LM, IW {_pct(best['iw_excess'])}") +
       ' (paper: 9.8%, no likelihood reported)')])
  return Section('Rate-distortion frontier', [
      f'Every VAE and VRASH point, its figures the means over its seeds (± the half-width of their 95% '
      f'interval), with the importance-weighted bound at K={k} on test and K={valid_k} on valid. Test '
      'figures in nats per note (KL: nats per melody); the valid split chose the recommended point (the lowest '
      "CE among VRASH points whose valid bound is at or below the LM's valid NLL with KL >= 5 nats, "
      "else the lowest CE within +2% of it, else the lowest valid bound): "
      f"{frontier.get('recommended')}. The paper's Fig. 5 corresponds to "
      f"{frontier.get('paper_point')} (its valid CE gap is the closest to the paper's 9.8%).",
      frontier_table(frontier), checks])


def length_section(by_length: dict[str, dict[str, Any]]) -> Section:
  lm = by_length['lm']
  rows = []
  for bucket, f in lm.items():
    row = [bucket, str(int(f['melodies'])), str(int(f['notes'])), f"{f['ce_total']:.3f}"]
    for m in ('vae', 'vrash'):
      if m in by_length and bucket in by_length[m]:
        g = by_length[m][bucket]
        row += [f"{g['ce_total']:.3f} ({_pct(g['ce_total'] / f['ce_total'] - 1)})",
                f"{g['nll_iw']:.3f} ({_pct(g['nll_iw'] / f['ce_total'] - 1)})"]
    rows.append(row)
  header = ['notes per melody', 'melodies', 'notes', 'LM NLL']
  for m in ('vae', 'vrash'):
    if m in by_length:
      header += [f'{NAMES[m]} CE (vs LM)', f'{NAMES[m]} NLL ≤ IW (vs LM)']
  return Section('By melody length (test; means over the seeds)', [Table(header, rows)])


def samples_section(samples: dict[str, Any], data: dict[str, float], seeds: int) -> Section:
  rows = [['test data', '-'] + [f'{data[k]:.3f}' for k in SAMPLE_KEYS]]
  for model, temps in samples.items():
    for t, figures in temps.items():
      rows.append([NAMES[model], t] + [f"{figures[k]['mean']:.3f} ± {(figures[k]['high'] - figures[k]['low']) / 2:.3f}"
                                       for k in SAMPLE_KEYS])
  return Section('Samples by temperature', [
      f'Mean ± half-width of the 95% confidence interval over {seeds} seeds (seed s samples from the '
      'model trained with seed s). The data row is the test melodies cut to the samples\' length.',
      Table(['source', 'T'] + list(SAMPLE_KEYS), rows)], folded=True)


def structure_section(figures: dict[str, Any], data: dict[str, Any]) -> Section:
  """Each model's recurrence at the data's diversity (`vrash_jax.study.structure`)."""
  recurring, diverse = data['recurring_4gram_share'], data['distinct_4gram_rate']
  rows = [['test data', '-', f"{diverse['mean']:.3f}", f"{recurring['mean']:.3f} ± {_half(recurring):.3f}", '-', '-']]
  for model, s in figures.items():
    if 'recurrence' in s:
      r = s['recurrence']
      rows.append([NAMES[model], f"{s['temperature']:.2f}", f"{diverse['mean']:.3f}",
                   f"{r['mean']:.3f} ± {_half(r):.3f}", f"{100 * s['distance']:+.1f} points",
                   'yes' if s['reached'] else 'no'])
    else:
      gap = s.get('diversity_gap')
      rows.append([NAMES[model], f"none (nearest {s.get('nearest_temperature')})",
                   '-' if gap is None else f"{gap:+.3f} from the data's", '-',
                   '-' if s.get('distance') is None else f"{100 * s['distance']:+.1f} points", 'no'])
  return Section("Structure at the data's diversity", [
      "Share of 4-note patterns that recur 8 or more notes later in the same melody, read at the "
      "temperature where a model's distinct-4-gram rate equals the data's (interpolated between the "
      'sampled temperatures, per seed); mean ± half-width of the 95% interval over seeds. The data row '
      'comes from random subsets of as many test melodies as a model has samples. A model reaches the '
      "data's structure when the data's share lies inside its interval.",
      Table(['source', 'T at the data\'s diversity', 'distinct 4-gram rate', 'recurring 4-gram share',
             'distance from the data', 'reached'], rows)])


def _half(ci: dict[str, float]) -> float:
  return (ci['high'] - ci['low']) / 2


def sections(results: dict[str, Any]) -> list[Section]:
  c = results.get('claims')
  if not c:
    return []
  out = []
  if c['frontier'].get('goals'):
    out.append(frontier_section(c['frontier'], c['plan']['frontier_iw_samples'],
                                c['plan']['valid_iw_samples']))
  if 'lm' in c.get('by_length', {}):  # the table reads the LM's buckets
    out.append(length_section(c['by_length']))
  if c.get('structure'):
    out.append(structure_section(c['structure'], structure.data_reference(c['data_subsets'])))
  out.append(samples_section(c['samples'], c['data_samples'], c['plan']['sample_seeds']))
  return out
