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
from vrash_jax.report.blocks import NAMES, Checklist, Section, Table, Verdicts
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
.path{display:flex;flex-wrap:wrap;gap:8px}.path .roll{border:1px solid #eee;padding:4px}
p.answer{font-size:115%;line-height:1.5;max-width:60em}
ul.verdicts{list-style:none;padding-left:0}ul.verdicts li{margin:.5em 0;display:flex;gap:.5em}
.mark{flex:0 0 9.5em;font-weight:bold}.holds{color:#2a9d3a}.fails{color:#c8322d}
.unsure{color:#777}.headline{color:#444}
details{margin:.2em 0 .6em 0}details summary{cursor:pointer;color:#1f6fb4}
details.section>summary{font-size:1.3em;font-weight:bold;color:#222;margin:.8em 0 .4em 0}
details p.evidence{margin:.3em 0 .3em 1.5em;font-size:90%;color:#444}"""
VERDICT_CLASS = {'holds': 'holds', 'does not hold': 'fails', 'inconclusive': 'unsure'}


def _e(text: Any) -> str:
  return html.escape(str(text), quote=True)


def _block(block: str | Table | Checklist | Verdicts) -> str:
  if isinstance(block, Table):
    head = ''.join(f'<th>{_e(h)}</th>' for h in block.header)
    body = ''.join('<tr>' + ''.join(f'<td>{_e(c)}</td>' for c in row) + '</tr>' for row in block.rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
  if isinstance(block, Checklist):
    items = ''.join(f'<li><span class="{"ok" if ok else "no"}">{"✓ met" if ok else "✗ not met"}</span> '
                    f'{_e(text)}</li>' for ok, text in block.items)
    return f'<ul class="checks">{items}</ul>'
  if isinstance(block, Verdicts):
    return '<ul class="verdicts">' + ''.join(
        f'<li><span class="mark {VERDICT_CLASS.get(verdict, "unsure")}">{_e(mark)} {_e(verdict)}</span><div>{_e(claim)}'
        + (f'<br><span class="headline">{_e(headline)}</span>' if headline else '')
        + f'<details><summary>evidence</summary><p class="evidence">{_e(evidence)}</p></details></div></li>'
        for mark, verdict, claim, headline, evidence in block.items) + '</ul>'
  return f'<p>{_e(block)}</p>'


def _section(section: Section) -> str:
  """A section under its heading; a folded one shows its title and opens on a click."""
  blocks = ''.join(_block(b) for b in section.blocks)
  if section.folded:
    return f'<details class="section"><summary>{_e(section.title)}</summary>{blocks}</details>'
  return f'<h2>{_e(section.title)}</h2>{blocks}'


def _figure(name: str, caption: str) -> str:
  return f'<figure><img src="{_e(name)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


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
  title, *rest = results_sections(results)
  verdicts = [s for s in rest[:1] if any(isinstance(b, Verdicts) for b in s.blocks)]
  shown = [(f, c) for f, c in FIGURES.items() if os.path.isfile(os.path.join(workdir, f))]
  body = [f'<h1>{_e(title.title)}</h1>'] + [f'<p class="answer">{_e(b)}</p>' for b in title.blocks]
  body += [_section(s) for s in verdicts] + [_figure(f, c) for f, c in shown if f == 'figure5.png']
  body += ['<h2>The details</h2>'] + [_section(s) for s in rest[len(verdicts):]]
  if any(f != 'figure5.png' for f, _ in shown):
    body.append('<h2>Figures</h2>')
    body += [_figure(f, c) for f, c in shown if f != 'figure5.png']
  if listening.get('samples'):
    body += ['<h2>Listen: samples beside test melodies</h2>',
             f'<p>{_e(listening["description"])} Each piano roll spans its own melody: its pitch '
             f'range (at least {piano_roll.MIN_SPAN} semitones, a row each, C rows shaded) and its '
             'duration, given below it; the first column of each note is darker.</p>',
             _samples_table(listening['samples'], media)]
  if listening.get('interpolations'):
    body += ['<h2>Latent interpolation</h2>', _interpolations(listening['interpolations'], media)]
  page = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>{_e(title.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
          + '\n'.join(body) + '\n</body>\n</html>\n')
  path = os.path.join(workdir, 'results.html')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)
  return path
