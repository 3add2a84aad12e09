"""Self-contained model exports: parameters (orbax) + config + vocabularies.

    PATH/export.json        format name and version, model, training step
    PATH/config.json        the run's config (the model is rebuilt from it alone)
    PATH/vocabularies.json  the note vocabulary the model was trained on
    PATH/params/            the parameters, an orbax StandardCheckpointer directory

No optimizer state, no dataset, no training code is needed to load it.
"""
from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from vrash_jax import checkpoint, config_rules, evaluation, models, notes, storage, train_state
from vrash_jax.errors import VrashError

FORMAT = 'vrash_jax.export'
FORMAT_VERSION = 1


def package_version() -> str:
  """The installed vrash_jax's version, recorded for provenance ('unknown' in a source tree that
  was never installed)."""
  try:
    return importlib.metadata.version('vrash_jax')
  except importlib.metadata.PackageNotFoundError:
    return 'unknown'


def _abstract_params(config: ml_collections.ConfigDict) -> Any:
  model = models.MelodyModel(config)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), train_state.dummy_batch(config))['params'])
  return checkpoint.abstract_like(shapes, jax.sharding.SingleDeviceSharding(jax.devices()[0]))


def export_params(params: Any, config: ml_collections.ConfigDict, out: str, step: int) -> str:
  """Writes an export of `params` to `out`, a local path or gs:// (replacing an export there);
  returns the path. export.json is written last: a folder without it is no export."""
  target = storage.path(out)
  if target.exists():
    if not (target / 'export.json').is_file():
      raise VrashError(f'--out {out!r} exists and is not a vrash_jax export: choose a new path')
    target.rmtree()
  target.mkdir(parents=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(target / 'params', jax.device_get(params))
  for name, data in (('config.json', config.to_dict()), ('vocabularies.json', notes.vocabularies()),
                     ('export.json', {'format': FORMAT, 'version': FORMAT_VERSION, 'model': config.model,
                                      'step': step, 'vrash_jax': package_version()})):
    storage.write_text(target / name, json.dumps(data, indent=2))
  return str(target)


def export_workdir(workdir: str, out: str, step: int | None = None) -> str:
  """Exports the parameters of WORKDIR's best checkpoint by the valid bound (else its latest),
  or of the given step."""
  config, state = evaluation.restore_for_inference(workdir, step)
  return export_params(state.params, config, out, int(jax.device_get(state.step)))


def _read_json(path: Any) -> Any:
  return json.loads(storage.read_text(path))


def load(path: str) -> tuple[ml_collections.ConfigDict, Any, dict[str, Any]]:
  """(config, params, export info) of an export (local or gs://), after checking it is one this
  version reads."""
  root = storage.path(path)
  if not (root / 'export.json').is_file():
    raise VrashError(f'{path!r} is not a vrash_jax export (no export.json): make one with `vrash-export`')
  info = _read_json(root / 'export.json')
  if info.get('format') != FORMAT or info.get('version') != FORMAT_VERSION:
    raise VrashError(f'{path!r} is export format {info.get("format")} v{info.get("version")}; this '
                     f'vrash_jax reads {FORMAT} v{FORMAT_VERSION}: re-export it with this version')
  vocab = _read_json(root / 'vocabularies.json')
  if vocab != json.loads(json.dumps(notes.vocabularies())):
    raise VrashError(f'{path!r} was trained on note schema {vocab.get("schema_version")}, this '
                     f'vrash_jax uses schema {notes.SCHEMA_VERSION}: retrain or use a matching version')
  config = config_rules.from_saved(_read_json(root / 'config.json'), str(root / 'config.json'))
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(root / 'params', _abstract_params(config))
  return config, params, info
