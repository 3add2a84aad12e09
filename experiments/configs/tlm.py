"""Transformer LM: the language model with a causal Transformer decoder in place of the RHN."""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model = 'tlm'
  c.note_dropout = 0.0  # the history is the LM's only input
  return c
