"""The presets of `vrash-reproduce` (what each trains, on which data), and how a prepared
dataset is recognized as a preset's: by the options in its stats.json, so that the TFRecords
alone (no MIDI) serve a machine that cannot prepare them."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from experiments.configs import MODELS, SMALL_MODEL, SMOKE
from vrash_jax import storage
from vrash_jax.config_rules import PAPER_MODELS
from vrash_jax.errors import VrashError
from vrash_jax.study.runs import Point, Seeds, rate_points
from vrash_jax.study.study import ClaimsPlan


@dataclasses.dataclass(frozen=True)
class Preset:
  works_per_collection: int  # N tunes or works of every collection, spread over its files (0 = all)
  models: tuple[str, ...]  # the models of the comparison, each trained with `seeds`
  prep: dict[str, Any]  # PrepOptions overrides
  config: dict[str, Any]  # overrides of every model's config
  seeds: Seeds  # the same seeds for every model, or {model: seeds}
  iw_samples: int
  num_samples: int
  plan: ClaimsPlan  # the frontier's extra runs, and the samples behind the claims
  notes: str  # why these choices; copied into results.md


# Techniques meant to keep the latent used without inflating the bound, at the default rate.
TECHNIQUES = (
    Point('vrash', 'pretrain', 'encoder pretraining, decoder reset (Li et al. 2019)',
          (('pretrain_steps', 300), ('kl_anneal_steps', 200))),
    Point('vrash', 'cyclical', 'cyclical annealing, 4 cycles (Fu et al. 2019)', (('kl_cycles', 4),)),
    Point('vrash', 'nd0.5-fb1', 'note dropout 0.5, free bits 1 (the earlier default)',
          (('note_dropout', 0.5), ('free_bits', 1.0))),
)
THREE_SEEDS = (0, 1, 2)
WHOLE_CORPUS_FRONTIER = (rate_points('vrash', (0.0, 0.125, 0.25, 1.0), THREE_SEEDS)
                         + tuple(dataclasses.replace(p, seeds=THREE_SEEDS) for p in TECHNIQUES)
                         + rate_points('vae', (0.0, 0.125, 0.25, 1.0)))

PRESETS = {
    'tiny': Preset(
        works_per_collection=4, models=PAPER_MODELS,
        prep={'max_len': 16, 'valid_fraction': 0.25, 'test_fraction': 0.25},
        config=SMOKE, seeds=(0, 1), iw_samples=2, num_samples=4,
        plan=ClaimsPlan(temperatures=(0.5, 1.0), sample_seeds=2, sample_length=16, frontier_iw_samples=2,
                        valid_iw_samples=2),
        notes=('tiny preset: 4 works of each collection in chunks of 16 notes, the tests\' tiny models '
               '(RHN hidden 16) trained 8 steps, 2 seeds: every stage in a minute or two on a CPU, to try '
               'a command (`vrash-borrowed`) before spending an accelerator on it. Its figures mean '
               'nothing.')),
    'quick': Preset(
        works_per_collection=150, models=PAPER_MODELS,
        prep={'max_len': 128},
        config={**SMALL_MODEL, 'max_len': 128, 'bucket_step': 64, 'batch_size': 32, 'eval_batch_size': 128,
                'train_steps': 300, 'warmup_steps': 50, 'kl_anneal_steps': 150, 'log_every': 100,
                'eval_every': 150, 'checkpoint_every': 300},
        seeds={'lm': (0, 1, 2), 'vae': (0,), 'vrash': (0, 1, 2)},
        iw_samples=8, num_samples=32,
        plan=ClaimsPlan(temperatures=(0.5, 0.7, 0.8, 0.9, 1.0), frontier_iw_samples=8, valid_iw_samples=8),
        notes=('quick preset: 150 tunes or works of each of the six collections (spread over '
               'their files, so every style is in), melodies in chunks of at most 128 notes (most '
               'are whole), lengths bucketed by 64 notes (2 compiled widths), RHN hidden 128 depth 2, 300 '
               'steps of batch 32 with the better of 2 valid evaluations kept: sized for minutes on a 2-core '
               'CPU, so the models are far from saturation. The paper\'s three models: 3 seeds for the LM '
               'and VRASH, 1 for the VAE (its 3 sampling seeds share one model); the Transformer LM and '
               'Transformer VRASH, and the frontier\'s other rates, are in the cpu and paper presets. The '
               'frontier holds each model\'s default rate (bounds at K=8); claims use 3 seeds, 32 samples '
               'each at 5 temperatures. Each run trains alone, its batch split over the CPU cores (on a '
               'CPU runs of different seeds do not pay as a group).')),
    'cpu': Preset(
        works_per_collection=0, models=MODELS,
        prep={'max_len': 256},
        config={**SMALL_MODEL, 'max_len': 256, 'bucket_step': 32, 'batch_size': 64, 'eval_batch_size': 256,
                'train_steps': 1500, 'warmup_steps': 100, 'kl_anneal_steps': 400, 'log_every': 200,
                'eval_every': 250, 'patience': 4, 'checkpoint_every': 250},
        seeds=(0, 1, 2), iw_samples=16, num_samples=128,
        plan=ClaimsPlan(frontier=WHOLE_CORPUS_FRONTIER),
        notes=('cpu preset: the whole default corpus, whole melodies (chunks of at most 256 notes), '
               "the quick preset's model (RHN hidden 128 depth 2) trained up to 1500 steps of batch 64 "
               '(lengths bucketed by 32 notes), evaluated on valid every 250 steps and stopped after '
               '4 evaluations without a better '
               'valid bound; the best checkpoint gives every test figure. Frontier: VAE and VRASH at '
               'free bits 0, 0.125, 0.25, 0.5 and 1 nat per dimension, and VRASH with encoder '
               'pretraining (300 steps), cyclical annealing (4 cycles), and the earlier default (note '
               'dropout 0.5, free bits 1).')),
    'paper': Preset(
        works_per_collection=0, models=MODELS,
        prep={'max_len': 256},
        config={'max_len': 256, 'patience': 3},
        seeds=(0, 1, 2), iw_samples=64, num_samples=256,
        plan=ClaimsPlan(frontier=WHOLE_CORPUS_FRONTIER),
        notes=('paper preset: the whole default corpus, whole melodies (chunks of at most 256 notes), '
               'RHN hidden 256 depth 3 (Zilly et al.), up to 20k steps of batch 64 with KL annealed over 2k '
               'steps, evaluated on valid every 2k steps and stopped after 3 evaluations without a better '
               "valid bound, the base config's rate (free bits per dimension and note dropout), and the cpu "
               "preset's frontier.")),
}


def prepared_stats(data_dir: str, options: Any) -> dict[str, Any] | None:
  """DATA_DIR's stats.json (local or gs://) if it holds a dataset this version reads, prepared
  with `options`; else None."""
  from vrash_jax import input_pipeline

  stats_path = storage.join(data_dir, 'stats.json')
  if not storage.path(stats_path).is_file():
    return None
  stats = json.loads(storage.read_text(stats_path))
  if stats.get('options') != dataclasses.asdict(options):
    return None
  try:
    input_pipeline.dataset_info(data_dir)
  except VrashError:
    return None
  return stats


def dataset_matches(midi_dir: str, data_dir: str, options: Any) -> bool:
  """Whether DATA_DIR holds a dataset this version reads, prepared with `options` from as many
  MIDI files as MIDI_DIR holds now."""
  stats = prepared_stats(data_dir, options)
  files = sum(f.endswith(('.mid', '.midi')) for _, _, fs in os.walk(midi_dir) for f in fs)
  return stats is not None and stats.get('files_total') == files


def check_prepared(data_dir: str, preset_name: str) -> None:
  """Refuses a --data_dir that does not hold a dataset prepared with the preset's options."""
  from data_prep.process import PrepOptions

  if prepared_stats(data_dir, PrepOptions(**PRESETS[preset_name].prep)) is None:
    raise VrashError(f'--data_dir {data_dir} holds no dataset prepared for --preset {preset_name} (its stats.json '
                     f'must list the preset\'s options): run `vrash-reproduce --preset {preset_name} --plan_only` '
                     'where the prep extra is installed, and copy its WORKDIR/data there')
