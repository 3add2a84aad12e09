"""Structure at the data's diversity: do a model's melodies come back to themselves as the data's do?

A model can recur patterns by looping (a low temperature) or look diverse by wandering (a high
one), so recurrence alone says little. Along each model's temperature curve (samples of every
seed at every temperature), the temperature where its distinct-4-gram rate equals the data's is
found by linear interpolation between the two temperatures around it; the share of 4-note
patterns that recur 8+ notes later is read there. The data's own figures come from as many test
melodies as a model's samples (the distinct rate falls with the number of melodies pooled).
A model reaches the data's structure when the data's share lies in the 95% interval over seeds of
its matched share; its distance is the mean minus the data's. Pure numpy.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from vrash_jax.study import claims

DIVERSITY, RECURRENCE = 'distinct_4gram_rate', 'recurring_4gram_share'


def matched_point(curve: Mapping[float, Mapping[str, float]], target: float) -> dict[str, float] | None:
  """On one seed's curve {temperature: metrics}, the (temperature, recurrence) where the
  distinct rate crosses `target`, interpolated linearly; None when no two neighbouring
  temperatures bracket it."""
  temperatures = sorted(curve)
  for low, high in zip(temperatures, temperatures[1:]):
    a, b = curve[low][DIVERSITY], curve[high][DIVERSITY]
    if min(a, b) <= target <= max(a, b):
      w = 0.5 if a == b else (target - a) / (b - a)
      return {'temperature': low + w * (high - low),
              'recurrence': (1 - w) * curve[low][RECURRENCE] + w * curve[high][RECURRENCE]}
  return None


def seed_curves(per_temperature: Mapping[str, Sequence[Mapping[str, float]]]) -> list[dict[float, Mapping[str, float]]]:
  """{temperature: [metrics per seed]} -> [{temperature: metrics} per seed]."""
  seeds = min(len(v) for v in per_temperature.values())
  return [{float(t): runs[s] for t, runs in per_temperature.items()} for s in range(seeds)]


def data_reference(subsets: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
  """The data's diversity and recurrence, mean and 95% interval over random subsets of test
  melodies, each as large as a model's samples."""
  return {k: claims.mean_ci([s[k] for s in subsets]) for k in (DIVERSITY, RECURRENCE)}


def model_structure(per_temperature: Mapping[str, Sequence[Mapping[str, float]]],
                    data: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
  """One model at the data's diversity: its matched temperature and recurrence per seed, their
  interval, the distance to the data's recurrence, and whether the data's lies inside."""
  target, reference = data[DIVERSITY]['mean'], data[RECURRENCE]['mean']
  curves = seed_curves(per_temperature)
  points = [matched_point(c, target) for c in curves]
  out: dict[str, Any] = {'seeds': len(curves), 'matched_seeds': sum(p is not None for p in points),
                         'per_seed': points}
  if all(p is not None for p in points) and points:
    recurrence = claims.mean_ci([p['recurrence'] for p in points])
    out.update(temperature=float(np.mean([p['temperature'] for p in points])), recurrence=recurrence,
               distance=recurrence['mean'] - reference,
               reached=len(points) >= 2 and recurrence['low'] <= reference <= recurrence['high'])
  else:  # the curve never reaches the data's diversity: say how far its nearest end stays
    rates = {t: np.mean([c[t][DIVERSITY] for c in curves]) for t in curves[0]} if curves else {}
    nearest = min(rates, key=lambda t: abs(rates[t] - target), default=None)
    out.update(reached=False, nearest_temperature=nearest,
               diversity_gap=None if nearest is None else float(rates[nearest] - target),
               distance=None if nearest is None else float(
                   np.mean([c[nearest][RECURRENCE] for c in curves]) - reference))
  return out


def matched_diversity_claim(samples: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
                    data: Mapping[str, Mapping[str, float]]) -> tuple[dict[str, str], dict[str, Any]]:
  """The paper's open problem (Sec. 5, repetition at varying distances), measured fairly:
  `samples` = {model: {temperature: [metrics per seed]}}. Returns the verdict (holds when some
  model reaches the data's structure, fails when every model's interval excludes it) and each
  model's figures."""
  models = {m: model_structure(per_t, data) for m, per_t in samples.items()}
  claim = ("Some model's samples recur patterns at the data's rate at the data's diversity "
           '(the paper\'s open problem, Sec. 5)')
  parts = [f"data: distinct rate {_pct(data[DIVERSITY])}, recurring {_pct(data[RECURRENCE])}"]
  for m, s in models.items():
    if 'recurrence' in s:
      parts.append(f"{claims.MODEL_NAMES[m]}: at T={s['temperature']:.2f} recurring {_pct(s['recurrence'])} "
                   f"({100 * s['distance']:+.1f} points from the data)")
    elif s['nearest_temperature'] is None:
      parts.append(f'{claims.MODEL_NAMES[m]}: no samples')
    else:
      parts.append(f"{claims.MODEL_NAMES[m]}: its distinct rate never meets the data's (at "
                   f"T={s['nearest_temperature']:g}, the nearest, it is {100 * s['diversity_gap']:+.1f} points "
                   f"from it; recurring {100 * s['distance']:+.1f} points from the data's)")
  seeds = min((s['seeds'] for s in models.values()), default=0)
  sign = 1 if any(s['reached'] for s in models.values()) else -1
  evidence = '; '.join(parts) + ' (mean [95% CI] over seeds; the data over subsets of as many melodies)'
  shares = [f"{claims.MODEL_NAMES[m]} {100 * s['recurrence']['mean']:.1f}%" if 'recurrence' in s
            else f'{claims.MODEL_NAMES[m]} never as diverse as the data' for m, s in models.items()]
  headline = (f"at the data's diversity, 4-note patterns recurring 8+ notes later: data "
              f"{100 * data[RECURRENCE]['mean']:.1f}%, " + ', '.join(shares))
  return claims.verdict(claim, sign, evidence, seeds, headline), models


def _pct(ci: Mapping[str, float]) -> str:
  return f"{100 * ci['mean']:.1f}% [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"
