"""What the results page lets a person hear, written as MIDI files under the workdir: samples
of each model, a few test melodies beside them, and decoded paths between two test melodies
through the latent space (the "control over the output" the paper's conclusion claims).

Paths are relative to the workdir and recorded in results.json under 'listening', so the
page (`vrash_jax.report.page`) is rendered from results.json alone.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from vrash_jax import notes
from vrash_jax.melodist import Melodist

SHOWN = 4  # melodies per column of the page
INTERPOLATION_STEPS = 6  # decoded latents from A to B, ends included


def write_tracks(tracks: Sequence[notes.Track], workdir: str, folder: str, prefix: str) -> list[str]:
  """One MIDI file per track in WORKDIR/folder; their paths relative to the workdir."""
  os.makedirs(os.path.join(workdir, folder), exist_ok=True)
  paths = [os.path.join(folder, f'{prefix}_{i:02d}.mid') for i in range(len(tracks))]
  for track, path in zip(tracks, paths):
    Melodist.to_midi(track, os.path.join(workdir, path))
  return paths


def spread(count: int, n: int) -> list[int]:
  """`n` indices spread evenly over range(count) (all of them when count <= n)."""
  return sorted(set(np.linspace(0, count - 1, min(n, count)).round().astype(int).tolist()))


def interpolation_ends(groups: Sequence[str]) -> tuple[int, int]:
  """Two test melodies to interpolate between: the first, and the first of another group
  (style) when there is one, so the path crosses styles."""
  other = next((i for i, g in enumerate(groups) if g != groups[0]), min(1, len(groups) - 1))
  return 0, other


def interpolation(melodist: Melodist, a: notes.Track, b: notes.Track, workdir: str, model: str,
                  ends: list[str]) -> dict[str, Any]:
  """Decodes INTERPOLATION_STEPS latents on the slerp between the posterior means of a and b
  (the most likely note at each step) and writes them as MIDI."""
  path = melodist.interpolate(a, b, steps=INTERPOLATION_STEPS)
  tracks = melodist.decode(path, length=max(len(a), len(b)), program=a.program,
                           tempo_bucket=a.tempo_bucket)
  return {'ends': ends, 'path': write_tracks(tracks, workdir, os.path.join('interpolations', model), 'step'),
          'description': f'{INTERPOLATION_STEPS} latents on the great circle from the posterior mean '
                         'of melody A to that of melody B (ends included), each decoded greedily.'}
