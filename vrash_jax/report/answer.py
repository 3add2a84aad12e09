"""The answer first: does VRASH beat the LM, by how much, and at what price; then a line per
verdict. results.md, results.html and the console of `vrash-reproduce` open with it. Renders
results.json alone."""
from __future__ import annotations

import textwrap
from typing import Any, Mapping

from vrash_jax.report.blocks import NAMES, PAPER_CE
from vrash_jax.study import claims

MARKS = {claims.HOLDS: '✓', claims.FAILS: '✗', claims.UNSURE: '?'}


def _interval(results: dict[str, Any], model: str, key: str) -> Mapping[str, float] | None:
  """The 95% interval over seeds of a default run's test figure, where the frontier has it."""
  frontier = results.get('claims', {}).get('frontier', {})
  points = frontier.get('points', []) + frontier.get('language_models', [])
  point = next((p for p in points if p['model'] == model and p.get('name') == 'default'), None)
  ci = (point or {}).get('test_ci', {}).get(key)
  return ci if ci and ci.get('n', 0) >= 2 else None


def _mean_and_interval(results: dict[str, Any], model: str, key: str) -> tuple[float, Mapping[str, float] | None]:
  """A default run's test figure over seeds: the interval's own mean where the frontier has one
  (so the mean, its interval and the verdict come from the same K), else the comparison's mean."""
  ci = _interval(results, model, key)
  return (ci['mean'] if ci else results['models'][model][key]['mean']), ci


def _figure(results: dict[str, Any], model: str, key: str) -> str:
  """'3.644 [3.610, 3.678]' (mean [95% interval over seeds]), or the mean alone."""
  mean, ci = _mean_and_interval(results, model, key)
  return f'{mean:.3f}' if ci is None else f"{mean:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _iw_samples(results: dict[str, Any]) -> int:
  """K of the bound the opening quotes: the frontier's where it gave the interval."""
  if _interval(results, 'vrash', 'nll_iw') is not None:
    return results['claims']['plan']['frontier_iw_samples']
  return results['iw_samples']


def _as_density_model(results: dict[str, Any]) -> str:
  """Whether VRASH's bound lies below, above or level with the LM's NLL, by their intervals."""
  bound, nll = _interval(results, 'vrash', 'nll_iw'), _interval(results, 'lm', 'ce_total')
  if bound is None or nll is None:
    seeds = min(results['models'][m]['seeds'] for m in ('lm', 'vrash'))
    return ('with one seed there is no interval to decide it' if seeds < 2 else
            'without the claims\' intervals over seeds there is no verdict')
  sign = claims.compare(bound, nll)
  return {-1: 'as a model of melodies, VRASH beats the LM here',
          1: 'as a model of melodies, VRASH does not beat the LM here',
          0: "as a model of melodies, VRASH is level with the LM within the seeds' spread"}[sign]


def answer(results: dict[str, Any]) -> str:
  """The opening paragraph ('' without both the LM and VRASH)."""
  models = results['models']
  if not {'lm', 'vrash'} <= set(models):
    return ''
  lm, vrash = (_mean_and_interval(results, m, 'ce_total')[0] for m in ('lm', 'vrash'))
  bound = _mean_and_interval(results, 'vrash', 'nll_iw')[0]
  gap = 1 - vrash / lm
  paper_gap = 1 - PAPER_CE['vrash'] / PAPER_CE['lm']
  seeds = min(models['lm']['seeds'], models['vrash']['seeds'])
  excess = bound / lm - 1
  text = (f"Does VRASH beat the LM? On the test split ({results['test_notes']:,} notes; means over {seeds} "
          f"seed{'s' if seeds > 1 else ''} with 95% intervals), VRASH's cross-entropy is "
          f"{_figure(results, 'vrash', 'ce_total')} nats per note against the LM's "
          f"{_figure(results, 'lm', 'ce_total')}: {100 * abs(gap):.1f}% {'lower' if gap >= 0 else 'higher'} "
          f"(the paper: {PAPER_CE['vrash']} against {PAPER_CE['lm']}, {100 * paper_gap:.1f}% lower). The price: "
          'that cross-entropy decodes with z drawn from the posterior, which has read the melody and carries '
          f"{models['vrash']['kl']['mean']:.1f} nats of it per melody. Charged for them, VRASH's bound on the NLL "
          f"(importance-weighted, K={_iw_samples(results)}) is {_figure(results, 'vrash', 'nll_iw')}, "
          f"{100 * abs(excess):.1f}% "
          f"{'above' if excess >= 0 else 'below'} the LM's NLL: {_as_density_model(results)}.")
  return text + _strongest(results)


def _strongest(results: dict[str, Any]) -> str:
  """A sentence on the strongest language model, when the sweep had more than the LM."""
  language_models = results.get('claims', {}).get('frontier', {}).get('language_models', [])
  best = claims.strongest_language_model(language_models)
  if best is None or best['model'] == 'lm':
    return ''
  return (f" Beyond the paper, the strongest language model here (chosen on valid) is the {NAMES[best['model']]}, "
          f"at {best['test']['ce_total']:.3f} nats per note.")


def verdict_lines(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
  """(mark, verdict, claim, headline) of every verdict, in order."""
  return [(MARKS.get(v['verdict'], '?'), v['verdict'], v['claim'], v.get('headline', ''))
          for v in results.get('claims', {}).get('verdicts', [])]


def console_summary(results: dict[str, Any], width: int = 100) -> str:
  """The answer and the verdicts as plain text wrapped to `width`, for the end of a command."""
  opening = answer(results)
  parts = [textwrap.fill(opening, width, break_on_hyphens=False)] if opening else []
  parts += [textwrap.fill(f"{mark} {verdict}: {claim}" + (f': {headline}' if headline else ''), width,
                          subsequent_indent='  ', break_on_hyphens=False)
            for mark, verdict, claim, headline in verdict_lines(results)]
  return '\n'.join(parts[:1] + [''] + parts[1:]).strip()
