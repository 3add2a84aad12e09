"""The claims a study judges, one registered function each, as big_vision registers evaluators.

A claim says which of the study's models it is judged on (`over`: the model tuples, none when
the study lacks them) and judges itself from what was measured (`measurements.Measured`, which
measures each thing once, when first asked). Adding a claim is one function here; adding a model
kind is one row of `config_rules.MODEL_SPECS`, which `each_latent` and `each_pair` read. The
verdicts keep the order the claims are registered in.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from vrash_jax.config_rules import PAIRS
from vrash_jax.study import claims
from vrash_jax.study.measurements import Measured
from vrash_jax.study.runs import release_compiled
from vrash_jax.study.stages import Stages
from vrash_jax.study.study import Study

Models = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Claim:
  name: str
  over: Callable[[Sequence[str]], list[Models]]  # the study's models -> the tuples judged
  judge: Callable[..., dict[str, str]]  # (measured, *models) -> a verdict (`claims.verdict`)


CLAIMS: list[Claim] = []


def claim(over: Callable[[Sequence[str]], list[Models]]):
  """Registers `judge(measured, *models)` as a claim judged on each tuple `over` gives."""

  def register(judge: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
    CLAIMS.append(Claim(judge.__name__, over, judge))
    return judge

  return register


def each_latent(models: Sequence[str]) -> list[Models]:
  """Every latent model of the study (VAE and VRASH, the Transformer VRASH)."""
  return [(latent,) for _, latent in PAIRS if latent in models]


def each_pair(models: Sequence[str]) -> list[Models]:
  """Every language model with its latent variant, both in the study."""
  return [(language, latent) for language, latent in PAIRS if {language, latent} <= set(models)]


def all_of(*names: str) -> Callable[[Sequence[str]], list[Models]]:
  """These models together, once, when the study has them all."""
  return lambda models: [names] if set(names) <= set(models) else []


def always(models: Sequence[str]) -> list[Models]:
  return [()]


@claim(over=each_latent)
def beats_the_strongest_language_model(measured: Measured, model: str) -> dict[str, str]:
  return claims.beats_strongest_lm_claim(measured.frontier, model)


@claim(over=each_pair)
def helps_more_on_longer_melodies(measured: Measured, language: str, latent: str) -> dict[str, str]:
  return claims.length_claim(measured.by_length_seeds, language, latent)


@claim(over=each_pair)
def repeats_less(measured: Measured, language: str, latent: str) -> dict[str, str]:
  return claims.repetition_claim(measured.samples, language, latent)


@claim(over=all_of('lm', 'vrash'))
def more_macro_structure(measured: Measured, lm: str, vrash: str) -> dict[str, str]:
  return claims.structure_claim(measured.samples, measured.data_samples, measured.hottest)


@claim(over=always)
def more_structure_at_the_datas_diversity(measured: Measured) -> dict[str, str]:
  return measured.structure[0]


@claim(over=all_of('vae', 'vrash'))
def more_diverse_than_the_vae(measured: Measured, vae: str, vrash: str) -> dict[str, str]:
  return claims.diversity_claim(measured.samples, measured.hottest)


@claim(over=each_latent)
def separates_styles(measured: Measured, model: str) -> dict[str, str]:
  return claims.style_claim(measured.style_probes[model], measured.silhouette(model), model)


def judge(measured: Measured, models: Sequence[str]) -> list[dict[str, str]]:
  """Every registered claim's verdict on each model tuple it is judged on, in registry order."""
  return [c.judge(measured, *names) for c in CLAIMS for names in c.over(models)]


def measure_claims(study: Study, results: Mapping[str, Any], stages: Stages | None = None) -> dict[str, Any]:
  """results.json's claims: the plan, everything the report shows (measured once, each part said
  done on `stages`), and the verdicts."""
  measured = Measured(study, results, stages)
  measured.measure_all()
  verdicts = judge(measured, study.models)
  release_compiled()
  return {'plan': dataclasses.asdict(study.plan), **measured.table(), 'verdicts': verdicts}
