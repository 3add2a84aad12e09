"""A tiny variant of any model for CPU tests: `--config experiments/configs/smoke.py:lm`."""
from experiments.configs import model_config


def get_config(model: str = 'vrash'):
  c = model_config(model)
  c.max_len = 16
  c.batch_size = 8
  c.eval_batch_size = 8
  c.pitch_embed, c.octave_embed, c.delay_embed, c.meta_embed = 6, 3, 5, 2
  c.hidden = 16
  c.depth = 2
  c.attention_width, c.attention_layers, c.attention_heads = 8, 2, 2
  c.latent_dim = 4
  c.kl_anneal_steps = 4
  c.warmup_steps = 2
  c.train_steps = 8
  c.log_every = 2
  c.eval_every = 4
  c.checkpoint_every = 4
  return c
