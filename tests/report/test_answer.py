"""The opening answer of results.md and results.html, from a results.json written by hand: each
figure it quotes is one mean with its own interval, and the bound's K is the one they came from."""
from vrash_jax.report import answer


def _figures(mean: float, **more: float) -> dict[str, dict[str, float]]:
  return {key: {'mean': value, 'std': 0.01} for key, value in {'ce_total': mean, **more}.items()}


def _ci(mean: float) -> dict[str, float]:
  return {'mean': mean, 'low': mean - 0.02, 'high': mean + 0.02, 'n': 3}


def _results(sweep_bound: float, frontier_bound: float | None) -> dict:
  """The LM at 3.000 and VRASH's CE at 2.900; VRASH's bound at K=16 from the comparison and, with
  `frontier_bound`, at K=64 from the frontier, which also gives the intervals."""
  results = {'test_notes': 1000, 'iw_samples': 16, 'claims': {'plan': {'frontier_iw_samples': 64}},
             'models': {'lm': {'seeds': 3, **_figures(3.0, nll_iw=3.0, kl=0.0)},
                        'vrash': {'seeds': 3, **_figures(2.9, nll_iw=sweep_bound, kl=5.0)}}}
  if frontier_bound is not None:
    vrash = {'ce_total': _ci(2.9), 'nll_iw': _ci(frontier_bound)}
    lm = {'ce_total': _ci(3.0), 'nll_iw': _ci(3.0)}
    results['claims']['frontier'] = {'points': [{'model': 'vrash', 'name': 'default', 'test_ci': vrash}],
                                     'language_models': [{'model': 'lm', 'name': 'default', 'test_ci': lm,
                                                         'valid': {'ce_total': 3.1}}]}
  return results


def test_the_bound_quoted_is_the_one_its_interval_and_verdict_come_from():
  text = answer.answer(_results(sweep_bound=3.024, frontier_bound=2.950))
  assert "VRASH's cross-entropy is 2.900 [2.880, 2.920] nats per note against the LM's 3.000 [2.980, 3.020]" in text
  assert ("bound on the NLL (importance-weighted, K=64) is 2.950 [2.930, 2.970], 1.7% below the LM's NLL: as a "
          'model of melodies, VRASH beats the LM here.') in text
  assert '3.024' not in text


def test_without_intervals_the_comparisons_own_bound_and_k():
  text = answer.answer(_results(sweep_bound=3.024, frontier_bound=None))
  assert ("bound on the NLL (importance-weighted, K=16) is 3.024, 0.8% above the LM's NLL: without the claims' "
          'intervals over seeds there is no verdict.') in text
  results = _results(sweep_bound=3.024, frontier_bound=None)
  results['models']['vrash']['seeds'] = 1
  assert "LM's NLL: with one seed there is no interval to decide it." in answer.answer(results)
