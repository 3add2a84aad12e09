"""Every report file of a workdir, rendered from its results.json: results.md, the figures and
results.html with its piano rolls and audio. Rendering needs no training and no jax."""
from __future__ import annotations

import json
import os
from typing import Any

from vrash_jax import storage
from vrash_jax.errors import VrashError
from vrash_jax.report import audio, figures, markdown, page
from vrash_jax.study import RESULTS


def write_report(results: dict[str, Any], workdir: str, soundfont: str | None = None) -> str:
  """results.md, the figures and results.html (its audio rendered with `soundfont` when given,
  else sine waves) for a sweep's results; returns the page's path."""
  storage.require_local(workdir, 'the report\'s folder')
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(markdown.results_markdown(results))
  figures.write_figures(results, workdir)
  return page.write_html(results, workdir, soundfont)


def rebuild(workdir: str, soundfont: str | None = None) -> str:
  """Renders every report file of `workdir` (local or gs://) again from its results.json; returns
  the page. A bucket's files are rendered in a local folder with what they need (the MIDI the
  page plays, the data's figure), then uploaded."""
  path = storage.join(workdir, RESULTS)
  if not storage.path(path).is_file():
    raise VrashError(f'{path} does not exist: run `vrash-sweep` or `vrash-reproduce` there first')
  if soundfont:
    audio.check_soundfont(soundfont)
  results = json.loads(storage.read_text(path))
  with storage.staged(workdir) as folder:
    if folder != workdir:
      needed = [midi for _, midi in page.media_items(results.get('listening', {}))] + ['entropy.png']
      for name in needed:
        source = storage.path(storage.join(workdir, name))
        if source.is_file():
          os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
          source.copy(storage.path(os.path.join(folder, name)), overwrite=True)
    page_path = write_report(results, folder, soundfont)
  return storage.join(workdir, os.path.relpath(page_path, folder))
