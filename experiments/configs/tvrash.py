"""Transformer VRASH: VRASH's RHN encoder, and a Transformer decoder that gets z at every input."""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model = 'tvrash'
  return c
