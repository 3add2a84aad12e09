"""Run configurations: `base.py` and the per-model variants that override it."""
import importlib
from typing import Any

import ml_collections

from vrash_jax import config_rules
from vrash_jax.config_rules import MODELS  # noqa: F401  (the models a config may name)
from vrash_jax.errors import VrashError

# The CPU presets' model (overrides of any model's config): a small RHN and small embeddings; the
# Transformer decoder near the RHN one's parameter count (the Transformer LM has 87k parameters,
# the LM 93k; Transformer VRASH 168k, VRASH 179k).
SMALL_MODEL = {'hidden': 128, 'depth': 2, 'pitch_embed': 16, 'octave_embed': 4, 'delay_embed': 8,
               'meta_embed': 4, 'attention_width': 56, 'attention_layers': 2, 'attention_heads': 2}
# Tests' and the tiny preset's model and schedule: minutes of compiling and seconds of training.
SMOKE = {'max_len': 16, 'batch_size': 8, 'eval_batch_size': 8, 'pitch_embed': 6, 'octave_embed': 3,
         'delay_embed': 5, 'meta_embed': 2, 'hidden': 16, 'depth': 2, 'attention_width': 8,
         'attention_layers': 2, 'attention_heads': 2, 'latent_dim': 4, 'kl_anneal_steps': 4, 'warmup_steps': 2,
         'train_steps': 8, 'log_every': 2, 'eval_every': 4, 'checkpoint_every': 4}


def model_config(model: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """experiments/configs/<model>.py's config with flattened overrides ({'hidden': 128}) applied,
  checked by `config_rules` (unknown fields and bad values are one VrashError)."""
  if model not in MODELS:
    raise VrashError(f'no config for model {model!r}; the models are {", ".join(MODELS)}')
  config = importlib.import_module(f'experiments.configs.{model}').get_config()
  overrides = dict(overrides or {})
  config_rules.validate({**config.to_dict(), **overrides})  # before ConfigDict's own type errors
  config.update_from_flattened_dict(overrides)
  return config
