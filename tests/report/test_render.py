"""The report of a tiny sweep: results.md, the figures and results.html, all from results.json; also
from a workdir in a bucket (the tests' local GCS server)."""
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vrash_jax import storage
from vrash_jax.errors import VrashError
from vrash_jax.report import audio, page, render
from vrash_jax.report.blocks import NAMES

VOID = {'meta', 'img', 'br', 'hr', 'link', 'input', 'source'}
FIGURES = ('figure5.png', 'figure6.png', 'frontier.png', 'curves.png')


class StrictParser(html.parser.HTMLParser):
  """Collects links, images, audio and table rows; fails on any tag closed out of order."""

  def __init__(self):
    super().__init__()
    self.stack, self.links, self.images, self.audio, self.rows = [], [], [], [], []
    self._row, self._cell = None, None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag not in VOID:
      self.stack.append(tag)
    self.links += [attrs[a] for a in ('src', 'href') if a in attrs]
    if tag == 'img':
      self.images.append(attrs)
    if tag == 'audio':
      self.audio.append(attrs['src'])
    if tag == 'tr':
      self._row = []
    if tag in ('td', 'th'):
      self._cell = ''

  def handle_endtag(self, tag):
    assert self.stack and self.stack.pop() == tag, f'</{tag}> closes nothing open'
    if tag in ('td', 'th'):
      self._row.append(self._cell.strip())
      self._cell = None
    if tag == 'tr':
      self.rows.append(self._row)

  def handle_data(self, data):
    if self._cell is not None:
      self._cell += data


def parse_page(path):
  parser = StrictParser()
  with open(path, encoding='utf-8') as f:
    parser.feed(f.read())
  parser.close()
  assert parser.stack == [], f'unclosed tags: {parser.stack}'
  return parser


def test_report_writes_markdown_and_every_figure(swept):
  workdir, _ = swept
  for name in ('results.md',) + FIGURES:
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  markdown = open(os.path.join(workdir, 'results.md')).read()
  assert '| VRASH |' in markdown and '2.11' in markdown and '## Target' in markdown
  assert "## The paper's claims" in markdown and '## Rate-distortion frontier' in markdown


def pm(stats):
  return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def test_results_page_shows_the_same_numbers_and_only_files_that_exist(swept):
  workdir, _ = swept
  results = json.load(open(os.path.join(workdir, 'results.json')))
  page = parse_page(os.path.join(workdir, 'results.html'))
  for link in page.links:
    assert '://' not in link and not os.path.isabs(link), link
    assert os.path.isfile(os.path.join(workdir, link)), link
  assert all(img.get('alt') for img in page.images)
  assert {'figure5.png', 'figure6.png', 'entropy.png'} <= {img['src'] for img in page.images}
  rows = {tuple(row[:2]): row for row in page.rows}
  for model, stats in results['models'].items():
    name = NAMES[model]
    row = next(r for r in page.rows if r[0] == name and len(r) == 9 and '±' in r[1])
    assert row[1:8] == [pm(stats[k]) for k in ('ce_total', 'ce_pitch', 'ce_octave', 'ce_delay', 'kl',
                                               'nll_bound', 'nll_iw')]
    metrics_row = next(r for r in page.rows if r[0] == name and len(r) == 1 + len(results['data'])
                       and all(re.fullmatch(r'-?\d+\.\d{3}', cell) for cell in r[1:]))  # numbers only
    assert metrics_row[1:] == [f'{v:.3f}' for v in results['samples'][model].values()]
  for run in results['runs']:
    row = rows[(NAMES[run['model']], str(run['seed']))]
    assert row[2:] == [str(run['steps']), f"{run['train_wall_s']:.0f}", f"{run['seconds']['compilation']:.0f}",
                       f"{run['seconds'].get('evaluation', 0):.0f}", f"{run['ce_total']:.3f}", f"{run['kl']:.2f}",
                       f"{run['nll_iw']:.3f}"]
  listening = results['listening']
  shown = sum(map(len, listening['samples'].values())) + sum(
      len(e['path']) + 2 for e in listening['interpolations'].values())
  assert set(listening['interpolations']) == {'vae', 'vrash', 'tvrash'} and len(page.audio) == shown
  for wav in page.audio:
    samples, rate = audio.read_wav(os.path.join(workdir, wav))
    assert len(samples) > rate * audio.TAIL_S and np.abs(samples).max() > 0.5


def test_report_rebuilds_the_page_and_figures_from_results_json(swept, tmp_path):
  workdir, _ = swept
  page = os.path.join(workdir, 'results.html')
  before = open(page).read()
  wav = parse_page(page).audio[0]
  for name in (page, os.path.join(workdir, wav)) + tuple(os.path.join(workdir, f) for f in FIGURES):
    os.remove(name)
  assert render.rebuild(workdir) == page
  assert open(page).read() == before and os.path.isfile(os.path.join(workdir, wav))
  assert all(os.path.getsize(os.path.join(workdir, f)) > 0 for f in FIGURES)
  shutil.copy(os.path.join(workdir, 'results.json'), tmp_path)
  with pytest.raises(VrashError, match='lacks .* MIDI files that results.json names'):
    render.rebuild(str(tmp_path))


def run_report_launcher(workdir):
  return subprocess.run([sys.executable, '-m', 'experiments.report', f'--workdir={workdir}'],
                        capture_output=True, text=True, timeout=120)


def test_report_launcher_prints_the_page_or_one_error_line(swept, tmp_path):
  ok = run_report_launcher(swept[0])
  assert ok.returncode == 0 and ok.stdout.strip() == f'results page: {swept[0]}/results.html'
  missing = run_report_launcher(tmp_path)
  assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
      f'error: {tmp_path}/results.json does not exist: run `vrash-sweep` or `vrash-reproduce` there first']


def test_the_page_and_results_md_open_with_the_answer_then_figure_5(swept):
  workdir, _ = swept
  results = json.load(open(os.path.join(workdir, 'results.json')))
  page = open(os.path.join(workdir, 'results.html'), encoding='utf-8').read()
  body = page[page.index('<body>'):]
  m = results['models']
  lm, vrash = m['lm']['ce_total']['mean'], m['vrash']['ce_total']['mean']
  opening = body[body.index('<p class="answer">'):body.index('</p>')]
  assert opening.index('Does VRASH beat the LM?') < opening.index(f'{vrash:.3f}') < opening.index(f'{lm:.3f}')
  assert f"{100 * abs(1 - vrash / lm):.1f}% {'lower' if vrash <= lm else 'higher'}" in opening
  assert f"{m['vrash']['nll_iw']['mean']:.3f}" in opening and f"{m['vrash']['kl']['mean']:.1f} nats" in opening
  verdicts = results['claims']['verdicts']
  assert body.count('<details><summary>evidence</summary>') == len(verdicts)
  for v in verdicts:
    assert html.escape(v['headline'], quote=True) in body and html.escape(v['evidence'], quote=True) in body
  order = [body.index(s) for s in ('class="answer"', 'class="verdicts"', 'src="figure5.png"', 'The details',
                                   'src="figure6.png"', 'Listen: samples')]
  assert order == sorted(order)
  assert body.count('src="figure5.png"') == 1
  markdown = open(os.path.join(workdir, 'results.md')).read().splitlines()
  assert markdown[0].startswith('# VRASH against the LM') and markdown[2].startswith('Does VRASH beat the LM?')
  assert sum(line.startswith(('- ✓ **holds**', '- ✗ **does not hold**', '- ? **inconclusive**'))
             for line in markdown) == len(verdicts)


# Here, beside the other tests on the tiny sweep: a test file's tests share a test worker, and so
# no worker waits for another to make the sweep.
def test_vrash_report_renders_a_bucket_workdir_locally_and_uploads_the_page(swept, gcs):
  workdir, results = swept
  remote = f'{gcs}/report'
  for name in ['results.json', 'entropy.png'] + [midi for _, midi in page.media_items(results['listening'])]:
    storage.path(os.path.join(workdir, name)).copy(storage.path(f'{remote}/{name}'))  # as a sweep leaves them
  assert render.rebuild(remote) == f'{remote}/results.html'
  with open(os.path.join(workdir, 'results.html')) as f:
    assert storage.read_text(f'{remote}/results.html') == f.read()
  assert storage.path(f'{remote}/figure5.png').is_file() and storage.path(f'{remote}/results.md').is_file()
