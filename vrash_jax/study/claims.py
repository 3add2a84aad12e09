"""The paper's claims, measured: pure numpy/scipy/sklearn over figures, sample metrics and latents.

Each `*_claim` function returns a verdict dict {'claim', 'verdict', 'evidence', 'headline'} whose
verdict is 'holds', 'does not hold' or 'inconclusive', with the numbers that decide it in
`evidence` and the one or two that say most in `headline` (a line of the report's answer). A
difference counts only when the 95% confidence intervals over seeds do not overlap.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vrash_jax.config_rules import LANGUAGE_MODELS, MODEL_SPECS

HOLDS, FAILS, UNSURE = 'holds', 'does not hold', 'inconclusive'
PAPER_CE_GAP = 1 - 2.11 / 2.34  # VRASH's CE below the LM's in the paper (Sec. 4): 9.8%
IW_TOLERANCE = 0.02  # a bound within +2% of the LM's NLL counts as "no worse as a density model"
MIN_KL = 5.0  # nats per melody: a latent that carries at least this much is "used"
LENGTH_BUCKETS = ((1, 32), (33, 64), (65, 128), (129, 10**9))  # notes per melody
MODEL_NAMES = {m: s.shown_as for m, s in MODEL_SPECS.items()}


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
  """Mean and Student-t confidence interval of independent values (one per seed)."""
  from scipy import stats

  v = np.asarray(values, np.float64)
  mean = float(v.mean())
  if v.size < 2:
    return {'mean': mean, 'low': mean, 'high': mean, 'n': int(v.size)}
  half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
  return {'mean': mean, 'low': mean - half, 'high': mean + half, 'n': int(v.size)}


def compare(a: Mapping[str, float], b: Mapping[str, float]) -> int:
  """+1 when a's interval lies above b's, -1 below, 0 when they overlap."""
  return 1 if a['low'] > b['high'] else -1 if a['high'] < b['low'] else 0


def verdict(claim: str, sign: int, evidence: str, seeds: int, headline: str = '') -> dict[str, str]:
  """A verdict from the sign of a comparison of 95% intervals over `seeds` seeds; without an
  interval (fewer than 2 seeds) there is none: inconclusive."""
  if seeds < 2:
    return {'claim': claim, 'verdict': UNSURE, 'evidence': f'{evidence} (one seed: no interval, no verdict)',
            'headline': f'{headline} (one seed: no interval)'.lstrip()}
  outcome = HOLDS if sign > 0 else FAILS if sign < 0 else UNSURE
  return {'claim': claim, 'verdict': outcome, 'evidence': evidence, 'headline': headline}


def unsure(claim: str, why: str) -> dict[str, str]:
  """No verdict, for want of the data to decide."""
  return {'claim': claim, 'verdict': UNSURE, 'evidence': why, 'headline': why}


def summarize_samples(per_seed: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]
                      ) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
  """{model: {temperature: [metrics of seed 0, 1, ...]}} -> {model: {temperature: {metric: CI}}}."""
  return {model: {t: {k: mean_ci([m[k] for m in runs]) for k in runs[0]} for t, runs in temps.items()}
          for model, temps in per_seed.items()}


def _fmt(ci: Mapping[str, float], digits: int = 3) -> str:
  return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def _seeds(summary: Mapping[str, Any], models: Sequence[str]) -> int:
  """The fewest seeds behind any interval of these models' sample metrics."""
  return min(ci['n'] for m in models for temps in [summary[m]] for metrics in temps.values() for ci in metrics.values())


def strongest_language_model(points: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
  """Of the frontier's language-model points, the one with the lowest valid CE (never chosen
  on test)."""
  lms = [p for p in points if p['model'] in LANGUAGE_MODELS]
  return min(lms, key=lambda p: p['valid']['ce_total'], default=None)


def beats_strongest_lm_claim(points: Sequence[Mapping[str, Any]], model: str) -> dict[str, str]:
  """Beyond the paper: does `model`'s default point beat the strongest language model we have
  as a density model? Holds when the 95% interval over seeds of its test IW bound lies below
  that of the language model's test NLL (its CE), fails when above. Its CE is shown too, but a
  CE conditioned on the melody's own z is no likelihood."""
  lm = strongest_language_model(points)
  target = next((p for p in points if p['model'] == model and p['name'] == 'default'), None)
  claim = (f'{MODEL_NAMES[model]} beats the strongest language model as a density model '
           '(IW bound below its NLL)')
  if lm is None or target is None:
    return unsure(claim, 'no language model or no such model in this sweep')
  others = ', '.join(f"{MODEL_NAMES[p['model']]} {p['valid']['ce_total']:.3f}"
                     for p in points if p['model'] in LANGUAGE_MODELS)
  nll = mean_ci([r['test']['ce_total'] for r in lm['per_seed']])
  bound, ce, kl = (mean_ci([r['test'][k] for r in target['per_seed']]) for k in ('nll_iw', 'ce_total', 'kl'))
  evidence = (f"strongest language model by valid CE: {MODEL_NAMES[lm['model']]} (valid CE {others}); test NLL "
              f"per note {_fmt(nll)} vs {MODEL_NAMES[model]} IW bound {_fmt(bound)} (CE {_fmt(ce)}, KL "
              f"{kl['mean']:.2f} nats per melody; mean [95% CI] over seeds)")
  headline = (f"{MODEL_NAMES[model]}'s bound {bound['mean']:.3f} vs the {MODEL_NAMES[lm['model']]}'s NLL "
              f"{nll['mean']:.3f} nats per note ({100 * (bound['mean'] / nll['mean'] - 1):+.1f}%)")
  return verdict(claim, compare(nll, bound), evidence, min(len(lm['per_seed']), len(target['per_seed'])), headline)


def repetition_claim(summary: Mapping[str, Any], language: str = 'lm', latent: str = 'vrash') -> dict[str, str]:
  """Paper: repetition is "more prominent for the Language Model" than for VRASH (or for any
  language model against its latent variant)."""
  signs, parts = [], []
  names = f'{MODEL_NAMES[language]} vs {MODEL_NAMES[latent]}'
  for t in summary[language]:
    lm, vrash = summary[language][t], summary[latent][t]
    sign = compare(lm['repeated_note_rate'], vrash['repeated_note_rate'])
    signs.append(sign)
    parts.append(f"T={t}: repeated-note rate {names} {_fmt(lm['repeated_note_rate'])} vs "
                 f"{_fmt(vrash['repeated_note_rate'])}, longest run {lm['longest_run']['mean']:.2f} vs "
                 f"{vrash['longest_run']['mean']:.2f}, looping share {lm['loop_share']['mean']:.2f} vs "
                 f"{vrash['loop_share']['mean']:.2f}")
  # Holds at every temperature, or fails somewhere while holding nowhere; else mixed.
  overall = 1 if all(s > 0 for s in signs) else -1 if min(signs) < 0 and max(signs) <= 0 else 0
  t = read_at(summary[language])
  headline = (f"repeated-note rate at T={t}: {MODEL_NAMES[language]} "
              f"{summary[language][t]['repeated_note_rate']['mean']:.3f}, {MODEL_NAMES[latent]} "
              f"{summary[latent][t]['repeated_note_rate']['mean']:.3f}")
  return verdict(f'Sampled {MODEL_NAMES[language]} melodies repeat notes more than {MODEL_NAMES[latent]} melodies '
                 '(paper Sec. 4)', overall, '; '.join(parts) + ' (mean [95% CI] over seeds)',
                 _seeds(summary, (language, latent)), headline)


def read_at(temperatures: Iterable[str]) -> str:
  """The temperature the paper's sample claims are read at (of those sampled, as strings): 1.0,
  the model's own distribution, when sampled, else the hottest."""
  temperatures = list(temperatures)
  return '1.0' if '1.0' in temperatures else max(temperatures, key=float)


def structure_claim(summary: Mapping[str, Any], data: Mapping[str, float], temperature: str) -> dict[str, str]:
  """Beyond the paper: VRASH's samples have more macro structure (4-note patterns recurring
  8+ notes later in the same melody) than the LM's."""
  key = 'recurring_4gram_share'
  lm, vrash = summary['lm'][temperature][key], summary['vrash'][temperature][key]
  evidence = (f'T={temperature}: share of 4-note patterns recurring 8+ notes later: data '
              f'{data[key]:.3f}, LM {_fmt(lm)}, VRASH {_fmt(vrash)}'
              + (f", VAE {_fmt(summary['vae'][temperature][key])}" if 'vae' in summary else ''))
  headline = (f"4-note patterns recurring 8+ notes later at T={temperature}: data {data[key]:.3f}, "
              f"LM {lm['mean']:.3f}, VRASH {vrash['mean']:.3f}")
  return verdict('VRASH melodies have more macro structure than LM melodies (recurring patterns)',
                  compare(vrash, lm), evidence, min(lm['n'], vrash['n']), headline)


def diversity_claim(summary: Mapping[str, Any], temperature: str) -> dict[str, str]:
  """Paper: VRASH's melodies are more diverse than the VAE's (distinct 4-grams across and
  within samples)."""
  vae, vrash = summary['vae'][temperature], summary['vrash'][temperature]
  across = compare(vrash['distinct_4gram_rate'], vae['distinct_4gram_rate'])
  within = compare(vrash['distinct_4gram_within'], vae['distinct_4gram_within'])
  sign = 1 if across > 0 and within >= 0 else -1 if across < 0 else 0
  evidence = (f"T={temperature}: distinct 4-gram rate across samples VRASH {_fmt(vrash['distinct_4gram_rate'])} "
              f"vs VAE {_fmt(vae['distinct_4gram_rate'])}; within a sample VRASH "
              f"{_fmt(vrash['distinct_4gram_within'])} vs VAE {_fmt(vae['distinct_4gram_within'])}")
  headline = (f"distinct 4-grams across samples at T={temperature}: VRASH {vrash['distinct_4gram_rate']['mean']:.3f}, "
              f"VAE {vae['distinct_4gram_rate']['mean']:.3f}")
  return verdict('VRASH melodies are more diverse than VAE melodies (paper Sec. 4)', sign, evidence,
                  _seeds(summary, ('vae', 'vrash')), headline)


def style_probe(z: np.ndarray, meta: np.ndarray, labels: Sequence[str], folds: int = 5,
                seed: int = 0) -> dict[str, Any]:
  """Cross-validated accuracy of a linear probe (logistic regression) predicting style from
  posterior means, from the meta-information alone (one-hot), from both, and of the majority
  class. Styles with fewer melodies than folds are left out (counted)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import StratifiedKFold
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import OneHotEncoder, StandardScaler

  labels = np.asarray(labels)
  names, counts = np.unique(labels, return_counts=True)
  keep = np.isin(labels, names[counts >= folds])
  z, meta, labels = np.asarray(z)[keep], np.asarray(meta)[keep], labels[keep]
  out: dict[str, Any] = {'melodies': int(keep.sum()), 'left_out': int((~keep).sum()),
                         'styles': int(len(np.unique(labels))), 'folds': folds}
  if out['styles'] < 2:
    return out
  meta_1hot = OneHotEncoder(handle_unknown='ignore').fit_transform(meta).toarray()
  inputs = {'latent': z, 'meta': meta_1hot, 'latent_and_meta': np.concatenate([z, meta_1hot], 1)}
  scores: dict[str, list[float]] = {k: [] for k in ('majority', *inputs)}
  for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, labels):
    values, counts = np.unique(labels[train], return_counts=True)
    scores['majority'].append(float(np.mean(labels[test] == values[counts.argmax()])))
    for name, x in inputs.items():
      probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
      scores[name].append(float(probe.fit(x[train], labels[train]).score(x[test], labels[test])))
  out['accuracy'] = {k: mean_ci(v) for k, v in scores.items()}
  out['gain_over_meta'] = mean_ci(np.subtract(scores['latent_and_meta'], scores['meta']))
  return out


def latent_map(z: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict[str, Any]:
  """How styles sit in the latent space (paper Fig. 6): the silhouette score of the style labels
  among posterior means z [N, Z], and a 2-d t-SNE map of z (`tsne`: xy and style per melody)
  that figure6.png draws."""
  from sklearn.manifold import TSNE
  from sklearn.metrics import silhouette_score

  counts = collections.Counter(labels)
  out: dict[str, Any] = {'method': 't-SNE of posterior means', 'points': len(labels),
                         'styles': dict(counts.most_common())}
  usable = 2 <= len(counts) < len(labels)
  out['silhouette_by_style'] = float(silhouette_score(z, labels)) if usable else None
  if len(labels) >= 5:
    xy = TSNE(2, perplexity=min(30.0, (len(labels) - 1) / 3), init='pca', random_state=seed).fit_transform(z)
    out['tsne'] = {'xy': np.round(xy, 3).tolist(), 'style': list(labels)}
  return out


def style_claim(probes: Sequence[Mapping[str, Any]], silhouette: float | None, model: str = 'vrash'
                ) -> dict[str, str]:
  """Paper Fig. 6: the latent space separates styles. Counts only beyond what the meta says: the
  probe's gain of latent + meta over meta alone (mean over folds), with its 95% interval over
  the seeds of the trained models (`probes`: one per seed)."""
  claim = 'The latent code separates styles beyond what the meta-information already says (Fig. 6)'
  if model != 'vrash':
    claim += f': {MODEL_NAMES[model]}'
  probes = [p for p in probes if 'accuracy' in p]
  if not probes:
    return unsure(claim, 'too few styles to probe')
  gain = mean_ci([p['gain_over_meta']['mean'] for p in probes])
  sign = 1 if gain['low'] > 0 else -1 if gain['high'] <= 0.0 or gain['mean'] <= 0 else 0
  acc, first = probes[0]['accuracy'], probes[0]
  by_style = '-' if silhouette is None else f'{silhouette:.3f}'
  evidence = (f"{first['folds']}-fold linear probe over {first['melodies']} melodies, {first['styles']} styles "
              f"(the first seed's model, [95% CI] over the folds): majority {_fmt(acc['majority'])}, meta only "
              f"{_fmt(acc['meta'])}, latent only {_fmt(acc['latent'])}, latent + meta {_fmt(acc['latent_and_meta'])}; "
              f"gain of the latent over meta, mean [95% CI] over {len(probes)} seeds: {_fmt(gain)}; silhouette by "
              f"style {by_style}")
  headline = (f"the latent adds {_pct_ci(gain)} of style-probe accuracy to the meta-information's "
              f"{100 * acc['meta']['mean']:.1f}%")
  return verdict(claim, sign, evidence, len(probes), headline)


def length_bucket(length: int) -> str:
  for low, high in LENGTH_BUCKETS:
    if low <= length <= high:
      return f'{low}-{high}' if high < 10**9 else f'>{low - 1}'
  raise ValueError(f'a melody of {length} notes')


def length_claim(by_length: Mapping[str, Sequence[Mapping[str, Mapping[str, float]]]], language: str = 'lm',
                 latent: str = 'vrash') -> dict[str, str]:
  """Paper's macro-structure argument: the latent helps more on longer melodies. `by_length`:
  {model: [{bucket: figures} per seed]}. With the language model and its latent variant
  (LM and VRASH, or the Transformer pair) of each seed, the latent one's CE gap to the language
  model's NLL and its IW bound's excess over it, in the shortest and the longest length bucket;
  holds when, over seeds, the gap grows and the excess shrinks from one to the other (95%
  intervals of the differences away from 0), fails when both move the other way."""
  claim = 'The latent helps more on longer melodies (the paper\'s macro-structure argument)'
  if (language, latent) != ('lm', 'vrash'):
    claim += f': {MODEL_NAMES[latent]} against {MODEL_NAMES[language]}'
  pairs = list(zip(by_length[language], by_length.get(latent, [])))
  buckets = [b for b in pairs[0][0] if all(b in lm and b in vrash for lm, vrash in pairs)] if pairs else []
  if len(buckets) < 2:
    return unsure(claim, f'test melodies in {len(buckets)} length bucket(s) only')

  def gaps(lm, vrash, bucket):
    return 1 - vrash[bucket]['ce_total'] / lm[bucket]['ce_total'], vrash[bucket]['nll_iw'] / lm[bucket]['ce_total'] - 1

  first, last = buckets[0], buckets[-1]
  ce = mean_ci([gaps(lm, v, last)[0] - gaps(lm, v, first)[0] for lm, v in pairs])
  iw = mean_ci([gaps(lm, v, last)[1] - gaps(lm, v, first)[1] for lm, v in pairs])
  sign = 1 if ce['low'] > 0 and iw['high'] < 0 else -1 if ce['high'] < 0 and iw['low'] > 0 else 0
  means = {b: np.mean([gaps(lm, v, b) for lm, v in pairs], axis=0) for b in buckets}
  evidence = ('; '.join(f'{b} notes: CE {100 * g[0]:.1f}% below the LM, IW bound {100 * g[1]:+.1f}%'
                        for b, g in means.items())
              + f' (means over {len(pairs)} seeds); from {first} to {last} notes, the CE gap moves by '
              f'{_pct_ci(ce)} and the bound by {_pct_ci(iw)} (mean [95% CI])')
  headline = (f"from {first} to {last} notes, the CE gap to the LM moves {_points(ce['mean'])} points and the "
              f"bound's excess {_points(iw['mean'])}")
  return verdict(claim, sign, evidence, len(pairs), headline)


def _pct_ci(ci: Mapping[str, float]) -> str:
  return f"{_points(ci['mean'])} [{_points(ci['low'])}, {_points(ci['high'])}] points"


def _points(fraction: float) -> str:
  """A fraction as signed percentage points, never '-0.0' (adding 0.0 turns -0.0 into 0.0)."""
  return f'{round(100 * fraction, 1) + 0.0:+.1f}'


def frontier_goals(points: Sequence[Mapping[str, Any]], lm: Mapping[str, float], split: str = 'test'
                   ) -> dict[str, Any]:
  """Two goals on the VRASH points of the frontier, with the LM's NLL on `split`: an
  IW bound at or below the LM with KL >= MIN_KL; the largest CE gap among IW within +2%."""
  vrash = [p for p in points if p['model'] == 'vrash']
  nll = lm['ce_total']
  paying = [p for p in vrash if p[split]['nll_iw'] <= nll and p[split]['kl'] >= MIN_KL]
  close = [p for p in vrash if p[split]['nll_iw'] <= (1 + IW_TOLERANCE) * nll]
  best_gap = max(close, key=lambda p: -p[split]['ce_total'], default=None)
  return {'lm_nll': nll,
          'latent_pays': [p['name'] for p in paying],
          'largest_gap_within_2pct': None if best_gap is None else {
              'name': best_gap['name'], 'ce_gap': 1 - best_gap[split]['ce_total'] / nll,
              'iw_excess': best_gap[split]['nll_iw'] / nll - 1}}


def recommend(points: Sequence[Mapping[str, Any]], lm_valid: Mapping[str, float]) -> str | None:
  """The VRASH point to use by default, chosen on the valid split: the largest CE gap among
  points whose latent pays for itself (IW bound at or below the LM's NLL with KL >= MIN_KL),
  else among points within +2% of the LM, else the lowest IW bound."""
  goals = frontier_goals(points, lm_valid, 'valid')
  vrash = {p['name']: p for p in points if p['model'] == 'vrash'}
  if goals['latent_pays']:
    return min(goals['latent_pays'], key=lambda name: vrash[name]['valid']['ce_total'])
  if goals['largest_gap_within_2pct']:
    return goals['largest_gap_within_2pct']['name']
  return min(vrash.values(), key=lambda p: p['valid']['nll_iw'])['name'] if vrash else None


def paper_point(points: Sequence[Mapping[str, Any]], lm_valid: Mapping[str, float]) -> str | None:
  """The VRASH point whose valid CE gap to the LM is closest to the paper's 9.8%."""
  vrash = [p for p in points if p['model'] == 'vrash']

  def distance_to_paper(p):
    return abs(1 - p['valid']['ce_total'] / lm_valid['ce_total'] - PAPER_CE_GAP)

  return min(vrash, key=distance_to_paper)['name'] if vrash else None
