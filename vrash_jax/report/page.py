"""results.html: a sweep on one static page a person opens in a browser.

The page holds the tables of results.md (the same `Section`s, so the same numbers),
every figure of the workdir, and what the paper asks the reader to listen to: samples of each
model beside test melodies, and latent interpolations, each as a piano roll, an audio player
and its MIDI file. Everything is rendered from results.json and the MIDI files it names; links
are relative and nothing needs JavaScript, so the folder can be copied or served as it is.
No jax.
"""
from __future__ import annotations

import html
import os
from typing import Any, Sequence

from vrash_jax.errors import VrashError
from vrash_jax.report import audio, piano_roll
from vrash_jax.report.blocks import NAMES, Checklist, Table
from vrash_jax.report.figures import FIGURES
from vrash_jax.report.sections import results_sections

COLOURS = {'test': '#555555', 'lm': '#1f6fb4', 'vae': '#2a9d3a', 'vrash': '#c8322d', 'tlm': '#7b4fb0',
           'tvrash': '#d0851b'}
LABELS = {'test': 'test data', **NAMES}
STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure img{max-width:760px;width:100%;border:1px solid #ddd}
.roll{width:250px}.roll img{display:block;width:250px;height:84px;image-rendering:pixelated;border:1px solid #ddd}
.roll audio{width:250px;margin-top:4px}.roll div{font-size:90%}
ul.checks{list-style:none;padding-left:0}.ok{color:#2a9d3a}.no{color:#c8322d}
.path{display:flex;flex-wrap:wrap;gap:8px}.path .roll{border:1px solid #eee;padding:4px}"""


def _e(text: Any) -> str:
  return html.escape(str(text), quote=True)


def _block(block: str | Table | Checklist) -> str:
  if isinstance(block, Table):
    head = ''.join(f'<th>{_e(h)}</th>' for h in block.header)
    body = ''.join('<tr>' + ''.join(f'<td>{_e(c)}</td>' for c in row) + '</tr>' for row in block.rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
  if isinstance(block, Checklist):
    items = ''.join(f'<li><span class="{"ok" if ok else "no"}">{"✓ met" if ok else "✗ not met"}</span> '
                    f'{_e(text)}</li>' for ok, text in block.items)
    return f'<ul class="checks">{items}</ul>'
  return f'<p>{_e(block)}</p>'


def render_media(workdir: str, items: Sequence[tuple[str, str]], soundfont: str | None = None
                 ) -> dict[str, dict[str, Any]]:
  """For each (source, MIDI path relative to workdir): a piano roll PNG (spanning the melody's
  own pitches and duration) and a WAV beside the MIDI file. Returns {path: {png, wav, alt, size}}."""
  missing = [path for _, path in items if not os.path.isfile(os.path.join(workdir, path))]
  if missing:
    raise VrashError(f'{workdir} lacks {len(missing)} MIDI files that results.json names (e.g. '
                     f'{missing[0]}): run the sweep there again to write them')
  out = {}
  for source, path in items:
    notes = piano_roll.midi_notes(os.path.join(workdir, path))
    stem = os.path.splitext(path)[0]
    low, high, duration = piano_roll.fit(notes)
    grid = piano_roll.cells(notes, low, high, duration)
    piano_roll.write_png(os.path.join(workdir, stem + '.png'), grid, COLOURS[source], high)
    audio.midi_to_wav(os.path.join(workdir, path), os.path.join(workdir, stem + '.wav'), soundfont)
    pitches = [p for p, _, _ in notes]
    span = f', MIDI pitches {min(pitches)} to {max(pitches)}' if pitches else ''
    end = max((e for _, _, e in notes), default=0.0)
    out[path] = {'png': stem + '.png', 'wav': stem + '.wav', 'size': f'{len(notes)} notes, {end:.1f} s',
                 'alt': f'piano roll of a {LABELS[source]} melody: {len(notes)} notes{span}, {end:.1f} s'}
  return out


def _roll(media: dict[str, Any], path: str, caption: str = '') -> str:
  m = media[path]
  title = f'<div>{_e(caption)}</div>' if caption else ''
  return (f'<div class="roll">{title}<img src="{_e(m["png"])}" alt="{_e(m["alt"])}">'
          f'<audio controls preload="none" src="{_e(m["wav"])}"></audio>'
          f'<div>{_e(m["size"])} · <a href="{_e(path)}">MIDI</a> · <a href="{_e(m["wav"])}">WAV</a></div></div>')


def _samples_table(samples: dict[str, list[str]], media: dict[str, Any]) -> str:
  sources = list(samples)
  head = '<th>#</th>' + ''.join(f'<th style="color:{COLOURS[s]}">{_e(LABELS[s])}</th>' for s in sources)
  rows = []
  for i in range(max(len(v) for v in samples.values())):
    cells = ''.join(f'<td>{_roll(media, samples[s][i]) if i < len(samples[s]) else ""}</td>' for s in sources)
    rows.append(f'<tr><td>{i + 1}</td>{cells}</tr>')
  return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _interpolations(interpolations: dict[str, dict[str, Any]], media: dict[str, Any]) -> str:
  parts = []
  for model, entry in interpolations.items():
    a, b = entry['ends']
    path = entry['path']
    rolls = ([_roll(media, a, 'A (test melody)')] +
             [_roll(media, p, f'step {i + 1} of {len(path)}') for i, p in enumerate(path)] +
             [_roll(media, b, 'B (test melody)')])
    parts.append(f'<h3 style="color:{COLOURS[model]}">{_e(LABELS[model])}</h3>'
                 f'<p>{_e(entry["description"])}</p><div class="path">{"".join(rolls)}</div>')
  return ''.join(parts)


def media_items(listening: dict[str, Any]) -> list[tuple[str, str]]:
  """Every (source, MIDI path) the page plays, once each."""
  items = {}
  for source, paths in listening.get('samples', {}).items():
    items.update({p: source for p in paths})
  for model, entry in listening.get('interpolations', {}).items():
    items.update({p: 'test' for p in entry['ends']})
    items.update({p: model for p in entry['path']})
  return [(source, path) for path, source in items.items()]


def write_html(results: dict[str, Any], workdir: str, soundfont: str | None = None) -> str:
  """Renders the media and writes WORKDIR/results.html (figures: those of FIGURES
  that the workdir holds)."""
  listening = results.get('listening', {})
  media = render_media(workdir, media_items(listening), soundfont)
  sections = results_sections(results)
  body = [f'<h1>{_e(sections[0].title)}</h1>'] + [_block(b) for b in sections[0].blocks]
  for section in sections[1:]:
    body += [f'<h2>{_e(section.title)}</h2>'] + [_block(b) for b in section.blocks]
  shown = [(f, c) for f, c in FIGURES.items() if os.path.isfile(os.path.join(workdir, f))]
  if shown:
    body.append('<h2>Figures</h2>')
    body += [f'<figure><img src="{_e(f)}" alt="{_e(c)}"><figcaption>{_e(c)}</figcaption></figure>'
             for f, c in shown]
  if listening.get('samples'):
    body += ['<h2>Listen: samples beside test melodies</h2>',
             f'<p>{_e(listening["description"])} Each piano roll spans its own melody: its pitch '
             f'range (at least {piano_roll.MIN_SPAN} semitones, a row each, C rows shaded) and its '
             'duration, given below it; the first column of each note is darker.</p>',
             _samples_table(listening['samples'], media)]
  if listening.get('interpolations'):
    body += ['<h2>Latent interpolation</h2>', _interpolations(listening['interpolations'], media)]
  page = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>{_e(sections[0].title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
          + '\n'.join(body) + '\n</body>\n</html>\n')
  path = os.path.join(workdir, 'results.html')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)
  return path
