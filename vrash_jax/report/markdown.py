"""results.md: the sections of the results as Markdown."""
from __future__ import annotations

from typing import Any

from vrash_jax.report.blocks import Checklist, Table, Verdicts
from vrash_jax.report.sections import results_sections


def _markdown_block(block: str | Table | Checklist | Verdicts) -> list[str]:
  if isinstance(block, Table):
    return ([f"| {' | '.join(block.header)} |", '|' + '---|' * len(block.header)] +
            [f"| {' | '.join(row)} |" for row in block.rows])
  if isinstance(block, Checklist):
    return [f"- [{'x' if ok else ' '}] {text}" for ok, text in block.items]
  if isinstance(block, Verdicts):
    return [line for mark, verdict, claim, headline, evidence in block.items
            for line in (f"- {mark} **{verdict}**: {claim}" + (f' ({headline})' if headline else ''),
                         f'  - {evidence}')]
  return [block]


def results_markdown(results: dict[str, Any]) -> str:
  lines = []
  for i, section in enumerate(results_sections(results)):
    lines += [f"{'#' if i == 0 else '##'} {section.title}", '']
    for block in section.blocks:
      lines += _markdown_block(block) + ['']
  return '\n'.join(lines).rstrip('\n') + '\n'
