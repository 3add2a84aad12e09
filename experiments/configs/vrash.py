"""VRASH (paper Fig. 4): the VAE's decoder also listens to the notes it has composed."""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model = 'vrash'
  return c
