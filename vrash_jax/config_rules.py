"""What a run config may hold: a rule per field, the cross-field rules, and saved configs.

Every entry point checks its config here before it loads data or compiles anything, so a
nonsense value costs one line (`config.FIELD=VALUE: what is wrong; allowed: ...`) instead of
a run that trains backwards or a traceback from inside the model. Pure Python: no jax.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Callable, Mapping

import ml_collections

from vrash_jax.errors import VrashError


@dataclasses.dataclass(frozen=True)
class Rule:
  """One field's type and range: `problem(value)` says what is wrong, or None."""
  kind: type  # int, float, bool or str
  allowed: str  # what is allowed, in words
  within: Callable[[Any], bool] = lambda v: True
  outside: str = 'out of range'  # what a value of the right type but outside `within` is

  def problem(self, value: Any) -> str | None:
    if not _is_kind(value, self.kind):
      return f'not {KIND_NAMES[self.kind]}'
    return None if self.within(value) else self.outside


KIND_NAMES = {int: 'an integer', float: 'a finite number', bool: 'True or False', str: 'a string'}


def _is_kind(value: Any, kind: type) -> bool:
  if isinstance(value, bool) or kind is bool:  # bool is an int to Python, never to a config
    return isinstance(value, bool) and kind is bool
  if kind is float:
    return isinstance(value, (int, float)) and math.isfinite(value)
  return isinstance(value, kind)


def _count(low: int) -> Rule:
  return Rule(int, f'an integer >= {low}', lambda v: v >= low)


def _rate(what: str) -> Rule:
  return Rule(float, f'{what} in [0, 1)', lambda v: 0 <= v < 1)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What a kind of model is made of (`models.MelodyModel` builds it) and how reports name it."""
  shown_as: str  # its name in tables, figures and verdicts
  latent: bool  # an RHN encoder and a latent code z, trained with a KL term
  history: bool  # the decoder reads the melody's previous notes
  attention: bool  # the decoder is the Transformer (transformer.py), not an RHN
  paper: bool  # one of the paper's three models
  language_model: str | None = None  # for a latent model with history: the LM its claims compare it with


# The one table of model kinds: configs, rules, the model, the study and the report read it.
MODEL_SPECS: dict[str, ModelSpec] = {
    'lm': ModelSpec('LM', latent=False, history=True, attention=False, paper=True),  # paper Fig. 2
    'vae': ModelSpec('VAE', latent=True, history=False, attention=False, paper=True),  # Fig. 3
    'vrash': ModelSpec('VRASH', latent=True, history=True, attention=False, paper=True, language_model='lm'),  # Fig. 4
    'tlm': ModelSpec('Transformer LM', latent=False, history=True, attention=True, paper=False),
    'tvrash': ModelSpec('Transformer VRASH', latent=True, history=True, attention=True, paper=False,
                        language_model='tlm'),
}
MODELS = tuple(MODEL_SPECS)
PAPER_MODELS = tuple(m for m, s in MODEL_SPECS.items() if s.paper)
LANGUAGE_MODELS = tuple(m for m, s in MODEL_SPECS.items() if not s.latent)  # no latent code, no encoder
LATENT_MODELS = tuple(m for m, s in MODEL_SPECS.items() if s.latent)
# Each language model with its latent variant: the pairs the paper's LM-vs-VRASH claims compare.
PAIRS = tuple((s.language_model, m) for m, s in MODEL_SPECS.items() if s.language_model)
DTYPES = ('float32', 'bfloat16')
RHN_KERNELS = ('xla', 'pallas', 'pallas_layer')  # how the RHN's scans run (rhn.rhn_scan)

# A rule for every field of experiments/configs/base.py (a test holds the two in step).
RULES: dict[str, Rule] = {
    'model': Rule(str, ' or '.join(repr(m) for m in MODELS), lambda v: v in MODELS, 'no such model'),
    'seed': Rule(int, 'an integer in [0, 2**32)', lambda v: 0 <= v < 2**32),
    'max_len': _count(1),
    'batch_size': _count(1),
    'eval_batch_size': _count(1),
    'bucket_step': Rule(int, 'an integer >= 0 (0: no length bucketing)', lambda v: v >= 0),
    'pitch_embed': _count(1),
    'octave_embed': _count(1),
    'delay_embed': _count(1),
    'meta_embed': _count(1),
    'hidden': _count(1),
    'depth': _count(1),
    'transform_bias': Rule(float, 'a finite number'),
    'input_dropout': _rate('a dropout rate'),
    'state_dropout': _rate('a dropout rate'),
    'output_dropout': _rate('a dropout rate'),
    'custom_backward': Rule(bool, 'True or False'),
    'scan_unroll': Rule(int, 'an integer >= 0 (0: by platform)', lambda v: v >= 0),
    'rhn_kernel': Rule(str, ' or '.join(repr(k) for k in RHN_KERNELS), lambda v: v in RHN_KERNELS,
                       'no such kernel'),
    'attention_layers': _count(1),
    'attention_width': _count(2),
    'attention_heads': _count(1),
    'attention_dropout': _rate('a dropout rate'),
    'dtype': Rule(str, ' or '.join(repr(d) for d in DTYPES), lambda v: v in DTYPES, 'no such dtype'),
    'latent_dim': _count(1),
    'note_dropout': _rate('a share of hidden history notes'),
    'kl_anneal_steps': _count(0),
    'free_bits': Rule(float, 'nats per latent dimension >= 0', lambda v: v >= 0),
    'kl_cycles': _count(0),
    'pretrain_steps': _count(0),
    'learning_rate': Rule(float, 'a number > 0', lambda v: v > 0),
    'warmup_steps': _count(0),
    'train_steps': _count(1),
    'grad_clip': Rule(float, 'a global norm > 0', lambda v: v > 0),
    'log_every': _count(1),
    'eval_every': Rule(int, 'an integer >= 0 (0: evaluate only at the end)', lambda v: v >= 0),
    'valid_iw_samples': _count(0),
    'patience': Rule(int, 'an integer >= 0 (0: train all train_steps)', lambda v: v >= 0),
    'checkpoint_every': _count(1),
    'max_to_keep': _count(1),
}

# Fields newer than the first saved configs, with the behaviour of the versions before them.
LEGACY_DEFAULTS: dict[str, Any] = {
    'custom_backward': False,  # RHN gradients by scan autodiff (identical up to float rounding)
    'scan_unroll': 1,  # a time step per scan iteration
    'rhn_kernel': 'xla',  # the RHN's scans as XLA loops
    'dtype': 'float32',  # every computation in float32
    'bucket_step': 0,  # every batch padded to max_len, batches drawn from one stream
    'kl_cycles': 0,  # one linear rise of the KL weight
    'pretrain_steps': 0,  # no autoencoder pretraining
    'valid_iw_samples': 0,  # valid evaluations without the importance-weighted bound
    'patience': 0,  # no early stopping
    # The Transformer decoder's fields (read by 'tlm' and 'tvrash' only, which came with them).
    'attention_layers': 2,
    'attention_width': 128,
    'attention_heads': 4,
    'attention_dropout': 0.1,
}


def _shown(value: Any) -> str:
  return repr(value) if isinstance(value, str) else str(value)


def _cross_field_problems(c: Mapping[str, Any], devices: int | None) -> list[str]:
  """Rules between fields; only asked once every field has a valid value."""
  out = []
  if c['warmup_steps'] > c['train_steps']:
    out.append(f"config.warmup_steps={c['warmup_steps']}: longer than the run; "
               f"allowed: at most config.train_steps={c['train_steps']}")
  if c['pretrain_steps'] and c['model'] in LANGUAGE_MODELS:
    out.append(f"config.pretrain_steps={c['pretrain_steps']}: a language model has no encoder to pretrain; "
               f"allowed: 0 for {c['model']!r}")
  if c['attention_width'] % (2 * c['attention_heads']):
    out.append(f"config.attention_width={c['attention_width']}: does not split into "
               f"config.attention_heads={c['attention_heads']} heads of an even size (rotary pairs); "
               f"allowed: a multiple of {2 * c['attention_heads']}")
  if c['pretrain_steps'] and c['pretrain_steps'] >= c['train_steps']:
    out.append(f"config.pretrain_steps={c['pretrain_steps']}: leaves no steps to train the VAE; "
               f"allowed: fewer than config.train_steps={c['train_steps']}")
  if c['patience'] and not c['eval_every']:
    out.append(f"config.patience={c['patience']}: counts evaluations, but config.eval_every=0 "
               'evaluates only at the end; allowed: 0, or set config.eval_every')
  if c['rhn_kernel'] != 'xla' and not c['custom_backward']:
    out.append(f"config.rhn_kernel={c['rhn_kernel']!r}: its kernels are the hand-written backward's; "
               'allowed: config.custom_backward=True, or config.rhn_kernel=\'xla\'')
  if devices and c['batch_size'] % devices:
    out.append(f"config.batch_size={c['batch_size']}: does not split over the {devices} devices; "
               f'allowed: a multiple of {devices}')
  return out


def problems(config: Mapping[str, Any], devices: int | None = None) -> list[str]:
  """Every problem of `config`, one line each (empty when it is valid)."""
  out = [f'config.{name}: missing; allowed: {rule.allowed}'
         for name, rule in RULES.items() if name not in config]
  for name in config:
    if name not in RULES:
      out.append(unknown_field_message(name))
  for name, rule in RULES.items():
    if name in config:
      reason = rule.problem(config[name])
      if reason:
        out.append(f'config.{name}={_shown(config[name])}: {reason}; allowed: {rule.allowed}')
  return out or _cross_field_problems(config, devices)


def validate(config: ml_collections.ConfigDict | Mapping[str, Any], devices: int | None = None,
             source: str = '') -> None:
  """Raises one VrashError listing every problem (one per line); `devices`: check the batch
  splits over that many devices; `source` prefixes each line (e.g. a saved config's path)."""
  found = problems(config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config,
                   devices)
  if found:
    raise VrashError('\n'.join(f'{source}: {p}' if source else p for p in found))


def closest_field(name: str) -> str | None:
  match = difflib.get_close_matches(name, RULES, n=1, cutoff=0.5)
  return match[0] if match else None


def unknown_field_message(name: str) -> str:
  guess = closest_field(name)
  hint = f'did you mean config.{guess}?' if guess else f'the fields are {", ".join(RULES)}'
  return f'config.{name}: no such field; {hint}'


def from_saved(saved: Mapping[str, Any], source: str) -> ml_collections.ConfigDict:
  """A config read back from a checkpoint or export: fields added since it was written take
  the behaviour of the version that wrote it (LEGACY_DEFAULTS); anything else that does not
  fit this version is refused with the file named, never a KeyError later."""
  config = dict(saved)
  for name, value in LEGACY_DEFAULTS.items():
    config.setdefault(name, value)
  found = problems(config)
  if found:
    raise VrashError(f'{source} holds a config this version of vrash_jax cannot use '
                     f'({"; ".join(found)}): retrain, or use the vrash_jax version that wrote it')
  return ml_collections.ConfigDict(config)
