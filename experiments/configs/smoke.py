"""A tiny variant of any model for CPU tests: `--config experiments/configs/smoke.py:lm`."""
from experiments.configs import SMOKE, model_config


def get_config(model: str = 'vrash'):
  return model_config(model, SMOKE)
