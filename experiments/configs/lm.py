"""Language model (paper Fig. 2): an RHN over the previous notes predicts the next one."""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model = 'lm'
  c.note_dropout = 0.0  # the history is the LM's only input
  return c
