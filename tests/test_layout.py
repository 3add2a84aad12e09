"""The house rules, checked on the source: no import circles (function-level imports counted),
imports that point down only (library < study < report), a small library, a docstring and at
most 400 lines per module."""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('vrash_jax', 'data_prep', 'experiments')
# Modules at the top of vrash_jax/ (the 18th: transformer, the decoder of tlm and tvrash; the 19th:
# compile_ahead, a group's widths compiled before its first step).
LIBRARY_LIMIT = 19


def modules(root=ROOT, packages=PACKAGES):
  """{dotted name: file} of every module of `packages`."""
  out = {}
  for package in packages:
    for folder, _, files in os.walk(os.path.join(root, package)):
      for name in files:
        if name.endswith('.py'):
          path = os.path.join(folder, name)
          dotted = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
          out[dotted.removesuffix('.__init__')] = path
  return out


def imported(module, path, known):
  """The known modules that `module` imports anywhere in its file (`from p import m` names p.m
  when that is a module, else p)."""
  package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      names = [f'{base}.{a.name}' if f'{base}.{a.name}' in known else base for a in node.names]
    else:
      continue
    for name in names:
      while name and name not in known:
        name = name.rpartition('.')[0]
      if name and name != module:
        found.add(name)
  return found


def import_graph(known):
  return {m: imported(m, path, known) for m, path in known.items()}


def circles(graph):
  """The strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while not component or w != v:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
      if len(component) > 1:
        out.append(sorted(component))

  for v in graph:
    if v not in index:
      visit(v)
  return out


def room(module):
  """Which room a module lives in: 'study', 'report', 'library' (the rest of vrash_jax), or
  its top-level package."""
  parts = module.split('.')
  if parts[0] != 'vrash_jax':
    return parts[0]
  return parts[1] if len(parts) > 2 and parts[1] in ('study', 'report') else 'library'


# What each room may import from the others: arrows point down only.
ALLOWED = {'library': {'library'}, 'study': {'library', 'study'}, 'report': {'library', 'study', 'report'},
           'data_prep': {'library', 'data_prep'}}


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
  (tmp_path / 'pkg').mkdir()
  (tmp_path / 'pkg' / '__init__.py').write_text('')
  (tmp_path / 'pkg' / 'a.py').write_text('from pkg import b\n')
  (tmp_path / 'pkg' / 'b.py').write_text('def f():\n  from pkg.a import g\n')
  (tmp_path / 'pkg' / 'c.py').write_text('from . import a\n')
  graph = import_graph(modules(str(tmp_path), ('pkg',)))
  assert graph['pkg.c'] == {'pkg.a'}
  assert circles(graph) == [['pkg.a', 'pkg.b']]


def test_no_module_takes_part_in_an_import_circle():
  assert circles(import_graph(modules())) == []


def test_imports_point_down_only():
  wrong = [(m, dep) for m, deps in import_graph(modules()).items() for dep in deps
           if room(m) in ALLOWED and room(dep) not in ALLOWED[room(m)]]
  assert wrong == []


def test_the_library_stays_small_and_every_module_says_what_it_is_for():
  top = [name for name in os.listdir(os.path.join(ROOT, 'vrash_jax'))
         if name.endswith('.py') and name != '__init__.py']
  assert len(top) <= LIBRARY_LIMIT, sorted(top)
  for module, path in modules(packages=PACKAGES + ('tests',)).items():
    source = open(path).read()
    assert len(source.splitlines()) <= 400, module
    docstring = ast.get_docstring(ast.parse(source))
    assert module.startswith('tests.') or docstring, f'{module} has no docstring'


@pytest.mark.parametrize('package', ['data_prep', 'vrash_jax.report', 'vrash_jax.midi'])
def test_package_imports_no_jax(package):
  """Preparation, the report and MIDI reading run without jax (and never start it)."""
  names = sorted(m for m in modules() if m.startswith(package))
  script = ('import importlib, sys\n'
            f'for name in {names!r}:\n'
            '  importlib.import_module(name)\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax")))\n')
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == '[]'


def picture_edges(name):
  """The arrows (a, b) of the mermaid picture of docs/layout.md whose first node is `name`."""
  text = open(os.path.join(ROOT, 'docs', 'layout.md')).read()
  for block in text.split('```mermaid')[1:]:
    lines = [line.strip() for line in block.split('```')[0].splitlines()]
    edges = {tuple(line.split(' --> ')) for line in lines if ' --> ' in line}
    if any(line.startswith(f'{name}[') or line == name for line in lines[2:3]):
      return edges
  raise AssertionError(f'no picture whose first node is {name}')


def picture_room(module):
  """The node of the house's picture a module belongs to."""
  parts = module.split('.')
  if parts[0] == 'experiments':
    return 'bench' if parts[1:2] == ['bench'] else 'launchers'
  if parts[0] == 'vrash_jax':
    return parts[1] if len(parts) > 2 and parts[1] in ('study', 'report') else 'library'
  return parts[0]


def test_the_pictures_of_the_house_are_its_import_graph():
  graph = import_graph(modules())
  rooms = {(picture_room(m), picture_room(d)) for m, deps in graph.items() for d in deps}
  assert picture_edges('launchers') == {(a, b) for a, b in rooms if a != b}
  study = {(m.split('.')[-1], d.split('.')[-1]) for m, deps in graph.items() for d in deps
           if m.startswith('vrash_jax.study.') and d.startswith('vrash_jax.study.')}
  assert picture_edges('sweep') == study
