"""Structure at the data's diversity, and the strongest-language-model verdict, on hand-made
melodies and figures (no training)."""
import numpy as np
import pytest

from vrash_jax import notes
from vrash_jax.study import claims, melody_metrics, structure


def melody(pitches):
  n = len(pitches)
  return notes.Track(np.array(pitches) % 12, np.full(n, 5), np.full(n, 11), 73, 0.25)


def figures(tracks):
  return melody_metrics.melody_metrics(tracks, tracks, set())


def test_hand_made_melodies_recur_and_diversify_as_built():
  phrase = [0, 2, 4, 5, 7, 9, 11, 12]
  rng = np.random.default_rng(0)
  song = figures([melody(phrase + list(rng.integers(0, 12, 8)) + phrase)])  # a phrase that comes back
  loop = figures([melody([0, 4, 7, 12] * 6)])  # a loop recurs too, but repeats itself
  wander = figures([melody(list(range(12)) + list(range(11, -1, -1)))])  # up and down: nothing comes back
  assert song['recurring_4gram_share'] == pytest.approx(5 / 13)  # the phrase's 5, of 13 4-grams with room
  assert wander['recurring_4gram_share'] == 0 and wander['distinct_4gram_rate'] == 1
  assert loop['recurring_4gram_share'] == 1 and loop['distinct_4gram_rate'] == pytest.approx(4 / 21)


def ci(mean, half=0.0, n=3):
  return {'mean': mean, 'low': mean - half, 'high': mean + half, 'n': n}


def curve(points):
  """{temperature: (distinct rate, recurring share)} for one seed -> metrics per temperature."""
  return {t: {'distinct_4gram_rate': d, 'recurring_4gram_share': r} for t, (d, r) in points.items()}


def test_the_matched_point_interpolates_between_the_bracketing_temperatures():
  c = curve({0.5: (0.4, 0.30), 1.0: (0.8, 0.10), 1.2: (0.9, 0.05)})
  point = structure.matched_point(c, 0.6)
  assert point['temperature'] == pytest.approx(0.75) and point['recurrence'] == pytest.approx(0.20)
  assert structure.matched_point(c, 0.95) is None  # never that diverse
  assert structure.matched_point(c, 0.3) is None


def per_temperature(seed_points):
  """[{temperature: (distinct, recurring)} per seed] -> {str(temperature): [metrics per seed]}."""
  temps = sorted(seed_points[0])
  return {str(t): [curve(s)[t] for s in seed_points] for t in temps}


DATA = {'distinct_4gram_rate': ci(0.6, 0.01), 'recurring_4gram_share': ci(0.10, 0.01)}


def test_a_model_whose_interval_holds_the_data_reaches_it_and_the_verdict_holds():
  near = per_temperature([{0.5: (0.4, 0.14), 1.0: (0.8, 0.06)}, {0.5: (0.4, 0.16), 1.0: (0.8, 0.08)},
                          {0.5: (0.4, 0.12), 1.0: (0.8, 0.04)}])  # at 0.6: 0.10, 0.12, 0.08
  loops = per_temperature([{0.5: (0.2, 0.9), 1.0: (0.5, 0.5)}] * 3)  # never the data's diversity
  verdict, models = structure.matched_diversity_claim({'tvrash': near, 'lm': loops}, DATA)
  assert models['tvrash']['reached'] and models['tvrash']['temperature'] == pytest.approx(0.75)
  assert models['tvrash']['distance'] == pytest.approx(0.0, abs=1e-9)
  assert not models['lm']['reached'] and models['lm']['nearest_temperature'] == 1.0
  assert models['lm']['diversity_gap'] == pytest.approx(-0.1)
  assert verdict['verdict'] == claims.HOLDS and "distinct rate never meets the data's" in verdict['evidence']


def test_no_model_at_the_data_structure_is_a_failed_verdict_with_each_distance():
  flat = per_temperature([{0.5: (0.4, 0.01), 1.0: (0.8, 0.00)}, {0.5: (0.4, 0.02), 1.0: (0.8, 0.01)},
                          {0.5: (0.4, 0.01), 1.0: (0.8, 0.01)}])
  verdict, models = structure.matched_diversity_claim({'vrash': flat}, DATA)
  assert verdict['verdict'] == claims.FAILS and not models['vrash']['reached']
  assert models['vrash']['distance'] == pytest.approx(np.mean([0.005, 0.015, 0.01]) - 0.10)
  single = per_temperature([{0.5: (0.4, 0.1), 1.0: (0.8, 0.1)}])
  one_seed, _ = structure.matched_diversity_claim({'vrash': single}, DATA)
  assert one_seed['verdict'] == claims.UNSURE  # no interval over one seed


def point(model, valid_ce, test, name='default'):
  """A frontier point whose seeds have these test figures (ce_total, nll_iw, kl)."""
  per_seed = [{'valid': {'ce_total': valid_ce}, 'test': {'ce_total': c, 'nll_iw': b, 'kl': k}} for c, b, k in test]
  return {'model': model, 'name': name, 'valid': {'ce_total': valid_ce}, 'per_seed': per_seed}


def test_the_strongest_language_model_is_chosen_on_valid_and_beaten_only_beyond_its_interval():
  lm = point('lm', 3.10, [(3.00, 3.00, 0)] * 3)
  tlm = point('tlm', 3.00, [(3.20, 3.20, 0), (3.21, 3.21, 0), (3.19, 3.19, 0)])  # better on valid, worse on test
  vrash = point('vrash', 3.0, [(2.9, 3.10, 8.0), (2.9, 3.11, 8.0), (2.9, 3.12, 8.0)])
  assert claims.strongest_language_model([lm, tlm, vrash]) is tlm
  beats = claims.beats_strongest_lm_claim([lm, tlm, vrash], 'vrash')
  assert beats['verdict'] == claims.HOLDS and 'Transformer LM' in beats['evidence']
  without_tlm = claims.beats_strongest_lm_claim([lm, vrash], 'vrash')  # 3.11 above the LM's 3.00
  assert without_tlm['verdict'] == claims.FAILS
  assert claims.beats_strongest_lm_claim([vrash], 'vrash')['verdict'] == claims.UNSURE
