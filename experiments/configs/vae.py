"""Variational recurrent autoencoder (paper Fig. 3): the decoder sees z, never the history."""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model = 'vae'
  c.note_dropout = 0.0  # no history inputs to drop
  return c
