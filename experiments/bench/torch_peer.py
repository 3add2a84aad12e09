"""A plain PyTorch VRASH (and LM/VAE) train step: the benchmark's peer, same sizes and heads.

Written the way a PyTorch user would: RHN cells unrolled with a Python loop over time steps
and micro-layers (the input projection hoisted into one matmul, H and T gates fused, as in
`vrash_jax.rhn`), variational dropout, note dropout, three softmax heads, CE + free-bits KL,
Adam with global-norm clipping. On CUDA, float32 matmuls may use TF32 and Adam is fused, as a
user chasing speed would set; bfloat16 runs under autocast. Only the benchmark imports this
module (`pip install -e ".[bench]"`).

  python -m experiments.bench.torch_peer --model vrash --batch 64 --length 64 --hidden 256 \
      --depth 3 --mode reduce_overhead --device cuda [--dtype bfloat16]

prints one JSON line: the warm step time and the first step's (compilation) time.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vrash_jax import notes

HEADS = notes.TOKEN_FIELDS


def _keep(rate: float, shape: tuple[int, ...], training: bool, device: torch.device
          ) -> torch.Tensor | None:
  if not training or rate <= 0:
    return None
  return torch.bernoulli(torch.full(shape, 1.0 - rate, device=device)) / (1.0 - rate)


def rhn_time_step(state: torch.Tensor, projected: torch.Tensor, mask: torch.Tensor,
                  recurrent: list[torch.Tensor], bias: list[torch.Tensor],
                  state_keep: list[torch.Tensor] | None) -> torch.Tensor:
  """One time step through every micro-layer; padded steps keep the state."""
  hidden, new = state.shape[-1], state
  for layer, (weight, layer_bias) in enumerate(zip(recurrent, bias)):
    s = new if state_keep is None else new * state_keep[layer]
    pre = torch.addmm(layer_bias, s, weight)
    if layer == 0:
      pre = pre + projected
    h, g = torch.tanh(pre[:, :hidden]), torch.sigmoid(pre[:, hidden:])
    new = h * g + new * (1.0 - g)
  return torch.where(mask, new, state)


class RHN(nn.Module):
  """Zilly et al.'s RHN with coupled carry gate; returns (outputs [B, T, H], final state)."""

  def __init__(self, features: int, hidden: int, depth: int, transform_bias: float,
               dropout: float):
    super().__init__()
    self.hidden, self.depth, self.dropout = hidden, depth, dropout
    self.step = rhn_time_step
    self.w_in = nn.Linear(features, 2 * hidden, bias=False)
    self.recurrent = nn.Parameter(torch.randn(depth, hidden, 2 * hidden) / hidden**0.5)
    bias = torch.zeros(depth, 2 * hidden)
    bias[:, hidden:] = transform_bias
    self.bias = nn.Parameter(bias)

  def forward(self, x: torch.Tensor, mask: torch.Tensor, state: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    batch, length, features = x.shape
    input_keep = _keep(self.dropout, (batch, 1, features), self.training, x.device)
    state_keep = _keep(self.dropout, (self.depth, batch, self.hidden), self.training, x.device)
    output_keep = _keep(self.dropout, (batch, 1, self.hidden), self.training, x.device)
    projected = self.w_in(x if input_keep is None else x * input_keep)
    # Split by micro-layer once, outside the loop: indexing the stacked tensors inside it makes
    # the compiled backward scatter every step's gradient into a copy of the whole stack.
    weights, biases = self.recurrent.unbind(0), self.bias.unbind(0)
    keeps = None if state_keep is None else state_keep.unbind(0)
    outputs = []
    for t in range(length):
      state = self.step(state, projected[:, t], mask[:, t, None], weights, biases, keeps)
      outputs.append(state)
    out = torch.stack(outputs, 1)
    return (out if output_keep is None else out * output_keep), state


class MelodyModel(nn.Module):
  """LM / VAE / VRASH with the sizes of a `vrash_jax` config; forward returns the loss."""

  def __init__(self, config: Any):
    super().__init__()
    c = self.config = config
    self.embed = nn.ModuleDict({f: nn.Embedding(notes.VOCAB_SIZES[f] + 1, size) for f, size in
                                zip(HEADS, (c.pitch_embed, c.octave_embed, c.delay_embed))})
    self.meta = nn.ModuleDict({f: nn.Embedding(n, c.meta_embed)
                               for f, n in notes.META_FIELDS.items()})
    note, meta = c.pitch_embed + c.octave_embed + c.delay_embed, 2 * c.meta_embed
    rhn = dict(hidden=c.hidden, depth=c.depth, transform_bias=c.transform_bias,
               dropout=c.state_dropout)
    decoder_in = meta + (c.latent_dim if c.model != 'lm' else 0) + (note if c.model != 'vae' else 0)
    self.decoder = RHN(decoder_in, **rhn)
    if c.model != 'lm':
      self.encoder = RHN(note + meta, **rhn)
      self.posterior = nn.Linear(c.hidden, 2 * c.latent_dim)
      self.latent_to_state = nn.Linear(c.latent_dim, c.hidden)
    self.heads = nn.ModuleDict({f: nn.Linear(c.hidden, notes.VOCAB_SIZES[f]) for f in HEADS})

  def _notes(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([self.embed[f](tokens[f]) for f in HEADS], -1)

  def forward(self, batch: dict[str, torch.Tensor], kl_weight: float) -> torch.Tensor:
    c, mask = self.config, batch['mask']
    size, length = mask.shape
    meta = torch.cat([self.meta[f](batch[f]) for f in notes.META_FIELDS], -1)
    meta = meta[:, None].expand(size, length, meta.shape[-1])
    parts, kl = [meta], torch.zeros((), device=mask.device)
    state = torch.zeros(size, c.hidden, device=mask.device)
    if c.model != 'lm':
      _, final = self.encoder(torch.cat([self._notes(batch), meta], -1), mask, state)
      mean, log_var = self.posterior(final).chunk(2, -1)
      z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
      state = torch.tanh(self.latent_to_state(z))
      parts.append(z[:, None].expand(size, length, z.shape[-1]))
      per_dim = 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var)
      kl = torch.clamp(per_dim.mean(0), min=c.free_bits).sum() * size
    if c.model != 'vae':
      history = self._notes({f: F.pad(batch[f], (1, 0), value=notes.VOCAB_SIZES[f])[:, :-1]
                             for f in HEADS})
      keep = torch.bernoulli(torch.full(mask.shape, 1.0 - c.note_dropout, device=mask.device))
      parts.append(history * keep[..., None])
    outputs, _ = self.decoder(torch.cat(parts, -1), mask, state)
    weights = mask.float()
    ce = sum((F.cross_entropy(self.heads[f](outputs).flatten(0, 1), batch[f].flatten(),
                              reduction='none') * weights.flatten()).sum() for f in HEADS)
    return (ce + kl_weight * kl) / weights.sum()


def to_torch(batch: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
  return {k: torch.from_numpy(np.asarray(v)).to(device, torch.bool if v.dtype == bool else torch.long)
          for k, v in batch.items()}


# eager; torch.compile on the RHN time step; on the whole model; on the whole model with CUDA
# graphs (mode="reduce-overhead", which a user on a GPU would try for a launch-bound step).
MODES = ('eager', 'compile_step', 'compile', 'reduce_overhead')


def _synchronize(device: str) -> None:
  if device.startswith('cuda'):
    torch.cuda.synchronize()


def measure(config: Any, batch: dict[str, np.ndarray], mode: str, steps: int, repeats: int,
            device: str = 'cpu', dtype: str = 'float32') -> dict[str, float]:
  """Warm train-step seconds (median of `repeats` timings of `steps` steps) and the first
  step's seconds (tracing and compilation for the compiled modes).

  'compile' and 'reduce_overhead' compile the whole model, so the Python loop over notes
  unrolls into one graph (forward and backward), as a PyTorch user would write it.
  """
  if mode not in MODES:
    raise ValueError(f'unknown PyTorch peer mode {mode!r}; choose from {MODES}')
  cuda = device.startswith('cuda')
  if cuda:
    torch.set_float32_matmul_precision('high')  # TF32, as JAX's default precision on GPUs
  torch.manual_seed(0)
  model = MelodyModel(config).to(device).train()
  optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=cuda)
  forward = model
  if mode == 'compile_step':
    step_fn = torch.compile(rhn_time_step)
    for module in model.modules():
      if isinstance(module, RHN):
        module.step = step_fn
  elif mode in ('compile', 'reduce_overhead'):
    forward = torch.compile(model, mode='reduce-overhead' if mode == 'reduce_overhead' else None)
  data = to_torch(batch, device)
  autocast = (torch.autocast(device.split(':')[0], dtype=torch.bfloat16) if dtype == 'bfloat16'
              else contextlib.nullcontext())

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = forward(data, 1.0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach()

  start = time.perf_counter()
  step()  # first call: tracing and compilation for torch.compile
  _synchronize(device)
  compile_s = time.perf_counter() - start
  for _ in range(2):  # more warm-up: recompilation and CUDA-graph recording show here
    step()
  times = []
  for _ in range(repeats):
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
      loss = step()
    float(loss)
    _synchronize(device)
    times.append((time.perf_counter() - start) / steps)
  return {'step_s': float(np.median(times)), 'compile_s': compile_s}


def main(argv: list[str]) -> None:
  """The peer alone, in its own process (the suite time-boxes it): one JSON line."""
  import argparse

  from experiments.bench.harness import shape_config
  from vrash_jax.study.step_timing import synthetic_batch

  parser = argparse.ArgumentParser(prog='python -m experiments.bench.torch_peer')
  for name, default in (('batch', 64), ('length', 64), ('hidden', 256), ('depth', 3), ('steps', 10),
                        ('repeats', 3)):
    parser.add_argument(f'--{name}', type=int, default=default)
  parser.add_argument('--model', default='vrash', choices=('lm', 'vae', 'vrash'))
  parser.add_argument('--mode', default='eager', choices=MODES)
  parser.add_argument('--device', default='cpu')
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  a = parser.parse_args(argv)
  config = shape_config(a.model, a.batch, a.length, a.hidden, a.depth, devices=1)
  result = measure(config, synthetic_batch(a.batch, a.length), a.mode, a.steps, a.repeats, a.device, a.dtype)
  print(json.dumps({**result, 'torch': torch.__version__, 'device': a.device}), flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
