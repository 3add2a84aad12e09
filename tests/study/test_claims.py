"""The claims' arithmetic and verdicts on hand-made inputs (no training)."""
import numpy as np
import pytest

from vrash_jax.study import claims


def test_mean_ci_is_the_student_t_interval():
  ci = claims.mean_ci([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.3027
  assert ci['mean'] == 2.0 and ci['n'] == 3
  assert ci['high'] - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
  assert claims.mean_ci([0.5]) == {'mean': 0.5, 'low': 0.5, 'high': 0.5, 'n': 1}


def test_length_buckets_cover_every_length_once():
  names = [claims.length_bucket(n) for n in (1, 32, 33, 64, 65, 128, 129, 256)]
  assert names == ['1-32', '1-32', '33-64', '33-64', '65-128', '65-128', '>128', '>128']
  with pytest.raises(ValueError):
    claims.length_bucket(0)


def probe_data(n, informative, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.choice(['a', 'b', 'c'], size=n)
  z = rng.normal(size=(n, 8))
  if informative:
    z[:, 0] += 4.0 * (labels == 'a') - 4.0 * (labels == 'b')
    z[:, 1] += 4.0 * (labels == 'c')
  meta = rng.integers(0, 3, size=(n, 2))  # unrelated to the labels
  return z, meta, labels


def test_style_probe_on_random_labels_scores_chance():
  probe = claims.style_probe(*probe_data(600, informative=False))
  acc = probe['accuracy']
  for name in ('latent', 'meta', 'latent_and_meta'):
    assert abs(acc[name]['mean'] - 1 / 3) < 0.07, (name, acc[name])
  assert claims.style_claim([probe, probe], None)['verdict'] != claims.HOLDS


def test_style_probe_finds_a_latent_that_encodes_style():
  probes = [claims.style_probe(*probe_data(300, informative=True), seed=s) for s in range(3)]
  assert probes[0]['accuracy']['latent']['mean'] > 0.9 > 0.5 > probes[0]['accuracy']['meta']['mean']
  verdict = claims.style_claim(probes, 0.3)
  assert verdict['verdict'] == claims.HOLDS and 'over 3 seeds' in verdict['evidence']
  one = claims.style_claim(probes[:1], 0.3)  # one seed: no interval over seeds, no verdict
  assert one['verdict'] == claims.UNSURE and 'one seed: no interval' in one['evidence']


def test_style_probe_leaves_out_styles_rarer_than_the_folds():
  z, meta, labels = probe_data(60, informative=True)
  labels = np.concatenate([labels, ['rare'] * 3])
  z, meta = np.concatenate([z, z[:3]]), np.concatenate([meta, meta[:3]])
  probe = claims.style_probe(z, meta, labels)
  assert probe['left_out'] == 3 and probe['styles'] == 3


def summary(lm_rates, vrash_rates):
  """Per-temperature summaries of repeated-note rates over seeds (other metrics constant)."""
  out = {}
  for model, rates in (('lm', lm_rates), ('vrash', vrash_rates)):
    runs = {t: [{'repeated_note_rate': r, 'longest_run': 2.0, 'loop_share': 0.0} for r in seeds]
            for t, seeds in rates.items()}
    out[model] = claims.summarize_samples({model: runs})[model]
  return out


def test_repetition_verdicts():
  high, low = [0.30, 0.31, 0.32], [0.10, 0.11, 0.12]
  holds = summary({'0.5': high, '1.0': high}, {'0.5': low, '1.0': low})
  assert claims.repetition_claim(holds)['verdict'] == claims.HOLDS
  reversed_ = summary({'0.5': low, '1.0': low}, {'0.5': high, '1.0': high})
  assert claims.repetition_claim(reversed_)['verdict'] == claims.FAILS
  mixed = summary({'0.5': high, '1.0': low}, {'0.5': low, '1.0': high})
  assert claims.repetition_claim(mixed)['verdict'] == claims.UNSURE
  overlapping = summary({'0.5': [0.1, 0.3, 0.2]}, {'0.5': [0.15, 0.25, 0.2]})
  assert claims.repetition_claim(overlapping)['verdict'] == claims.UNSURE


def point(model, name, ce, kl, iw, valid_scale=1.0):
  figures = {'ce_total': ce, 'kl': kl, 'nll_iw': iw}
  return {'model': model, 'name': name, 'test': figures,
          'valid': {k: v * valid_scale for k, v in figures.items()}}


def test_frontier_goals_and_recommendation():
  lm = {'ce_total': 3.0}
  points = [point('vrash', 'fb0', 2.99, 3.0, 2.98),      # pays, but KL < 5
            point('vrash', 'fb0.5', 2.90, 8.0, 2.99),    # pays with KL 8
            point('vrash', 'fb1', 2.70, 16.0, 3.05),     # +1.7%: within 2%, the largest gap
            point('vrash', 'nd0.5', 2.60, 16.0, 3.20),   # +6.7%: too dear
            point('vae', 'fb0', 3.50, 4.0, 3.60)]
  goals = claims.frontier_goals(points, lm)
  assert goals['latent_pays'] == ['fb0.5']
  assert goals['largest_gap_within_2pct']['name'] == 'fb1'
  assert goals['largest_gap_within_2pct']['ce_gap'] == pytest.approx(0.1)
  assert goals['largest_gap_within_2pct']['iw_excess'] == pytest.approx(0.05 / 3)
  assert claims.recommend(points, lm) == 'fb0.5'  # the latent pays for itself first
  assert claims.recommend([p for p in points if p['name'] != 'fb0.5'], lm) == 'fb1'
  assert claims.recommend([points[3]], lm) == 'nd0.5'  # nothing close: the lowest bound
  assert claims.paper_point(points, lm) == 'fb1'  # 10% below the LM, the paper's 9.8%


def test_length_claim_compares_the_shortest_and_longest_buckets_over_seeds():
  lm = {'1-32': {'ce_total': 3.0}, '>128': {'ce_total': 3.0}}

  def vrash(short, long, noise=0.0):
    return {'1-32': {'ce_total': short[0] + noise, 'nll_iw': short[1]},
            '>128': {'ce_total': long[0], 'nll_iw': long[1]}}

  more = [vrash((2.97, 3.05), (2.80, 2.95), n) for n in (0.0, 0.01, -0.01)]
  assert claims.length_claim({'lm': [lm] * 3, 'vrash': more})['verdict'] == claims.HOLDS
  less = [vrash((2.80, 2.95), (2.97, 3.05), n) for n in (0.0, 0.01, -0.01)]
  assert claims.length_claim({'lm': [lm] * 3, 'vrash': less})['verdict'] == claims.FAILS
  either = [vrash((2.97, 3.05), (2.80, 2.95)), vrash((2.80, 2.95), (2.97, 3.05))]  # seeds disagree
  assert claims.length_claim({'lm': [lm] * 2, 'vrash': either})['verdict'] == claims.UNSURE
  single = claims.length_claim({'lm': [lm], 'vrash': more[:1]})  # one seed: no interval, no verdict
  assert single['verdict'] == claims.UNSURE and 'one seed: no interval' in single['evidence']
  one_bucket = {'lm': [{'1-32': lm['1-32']}], 'vrash': [{'1-32': more[0]['1-32']}]}
  assert claims.length_claim(one_bucket)['verdict'] == claims.UNSURE
  level = [vrash((2.97, 3.05), (2.97 - 1e-5, 3.05), n) for n in (0.0, 0.01, -0.01)]  # a gap that barely moves
  headline = claims.length_claim({'lm': [lm] * 3, 'vrash': level})['headline']
  assert 'moves +0.0 points' in headline and '-0.0' not in headline


def test_no_verdict_without_an_interval_over_seeds():
  one = summary({'0.5': [0.30]}, {'0.5': [0.10]})  # far apart, but one seed each
  verdict = claims.repetition_claim(one)
  assert verdict['verdict'] == claims.UNSURE and 'one seed: no interval' in verdict['evidence']
