"""A study, built once from a preset or from flags: what a sweep trains, evaluates and judges.

`Study` is frozen: the dataset, the workdir, each model's config, the models and their seeds,
how the claims are measured (`ClaimsPlan`) and how runs share a step. Its splits (`Splits`) load
once, when first read; every stage of `sweep.run_sweep` asks the study instead of passing its
parts along.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import ml_collections

from vrash_jax import config_rules, input_pipeline
from vrash_jax import notes as note_schema
from vrash_jax.study import melody_metrics, run_plan
from vrash_jax.study.rundir import run_path
from vrash_jax.study.runs import ConfigFor, Point, Seeds, seeds_of


@dataclasses.dataclass(frozen=True)
class ClaimsPlan:
  """What a sweep measures beyond the comparison (the paper's claims; see `claim_registry`)."""
  frontier: tuple[Point, ...] = ()  # extra runs at other rates or with other techniques
  # Of the repetition/structure/diversity samples: a curve, along which `structure` finds where a
  # model's diversity is the data's.
  temperatures: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 1.0, 1.2)
  sample_seeds: int = 3  # sampling seeds per temperature (one per trained seed where there are)
  sample_length: int = 64  # notes per sample; the data's row uses test melodies cut to this
  frontier_iw_samples: int = 64  # K of the importance-weighted bound of test frontier and length figures
  valid_iw_samples: int = 16  # K of the valid bound that picks the recommended point


class Splits:
  """A dataset's splits at one `max_len`, each loaded once, when first read."""

  def __init__(self, data_dir: str, max_len: int):
    self.data_dir, self.max_len = data_dir, max_len

  def _load(self, split: str) -> dict[str, Any]:
    return input_pipeline.load_split(self.data_dir, split, self.max_len)

  @functools.cached_property
  def train(self) -> dict[str, Any]:
    return self._load('train')

  @functools.cached_property
  def valid(self) -> dict[str, Any]:
    return self._load('valid')

  @functools.cached_property
  def test(self) -> dict[str, Any]:
    return self._load('test')

  @property
  def has_valid(self) -> bool:
    return input_pipeline.has_split(self.data_dir, 'valid')

  @functools.cached_property
  def test_tracks(self) -> list[note_schema.Track]:
    return input_pipeline.tracks_from_arrays(self.test)

  @functools.cached_property
  def training_ngrams(self) -> set:
    """The training melodies' 8-grams: a sample that repeats one copies the training data."""
    return melody_metrics.ngram_set(input_pipeline.tracks_from_arrays(self.train), 8)


@dataclasses.dataclass(frozen=True)
class Study:
  """Every model x seed of a comparison, the frontier's extra runs (`plan.frontier`), and how
  they are evaluated and judged."""
  data_dir: str  # the prepared dataset (local or gs://)
  workdir: str  # runs/, results.json, the report's files
  config_for: ConfigFor  # model name -> its config (a fresh one per call)
  models: tuple[str, ...]  # the models compared, in the report's order
  seeds: Seeds  # the same seeds for every model, or {model: seeds}
  plan: ClaimsPlan = ClaimsPlan()
  iw_samples: int = 16  # K of the test importance-weighted bound of the comparison
  num_samples: int = 64  # melodies sampled per model for the objective metrics
  notes: str = ''  # why these choices; copied into results.json and results.md
  group_size: int = 0  # runs that train together; 0: `run_plan.group_size` chooses
  mix_seeds: bool | None = None  # seeds mixed in a group; None: `run_plan.mixes_seeds` chooses

  def __post_init__(self):
    object.__setattr__(self, 'models', tuple(self.models))  # a list from flags reads the same

  def seeds_of(self, model: str) -> tuple[int, ...]:
    return tuple(seeds_of(self.seeds, model))

  def config(self, model: str, seed: int | None = None) -> ml_collections.ConfigDict:
    config = self.config_for(model)
    if seed is not None:
      config.seed = seed
    return config

  def run_dir(self, model: str, seed: int) -> str:
    """The folder of a comparison run (the frontier's have theirs: `Point.directory`)."""
    return run_path(self.workdir, model, seed)

  @property
  def max_len(self) -> int:
    return self.config_for(self.models[0]).max_len

  @functools.cached_property
  def splits(self) -> Splits:
    return Splits(self.data_dir, self.max_len)

  def validate(self, devices: int) -> None:
    """Refuses a config that breaks a rule (`config_rules`), before any data is read."""
    for model in self.models:
      config_rules.validate(self.config_for(model), devices=devices)
    for point in self.plan.frontier:
      point.config(self.config_for)

  def planned_runs(self) -> list[run_plan.PlannedRun]:
    """Every run, as its folder left it: each model's seeds, then each frontier point's."""
    out = [run_plan.planned_run(self.config(m, s), self.run_dir(m, s)) for m in self.models for s in self.seeds_of(m)]
    for point in self.plan.frontier:
      out += [run_plan.planned_run(point.config(self.config_for, s), point.directory(self.workdir, s))
              for s in point.seeds]
    return out

  def default_points(self) -> list[Point]:
    """Each model's comparison runs as a frontier point (no overrides)."""
    return [Point(m, 'default', 'preset config', seeds=self.seeds_of(m)) for m in self.models]

