"""Run configurations: `base.py` and the per-model variants that override it."""
import importlib
from typing import Any

import ml_collections

MODELS = ('lm', 'vae', 'vrash')


def model_config(model: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """experiments/configs/<model>.py's config with flattened overrides ({'hidden': 128}) applied."""
  config = importlib.import_module(f'experiments.configs.{model}').get_config()
  config.update_from_flattened_dict(dict(overrides or {}))
  return config
