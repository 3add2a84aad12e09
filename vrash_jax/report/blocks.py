"""What the results are made of, rendered alike to results.md and results.html: sections of
paragraphs, tables and checklists, and the models' names as the report shows them."""
from __future__ import annotations

import dataclasses

from vrash_jax.study.claims import MODEL_NAMES as NAMES  # noqa: F401  (the report's names of the models)

PAPER_CE = {'lm': 2.34, 'vrash': 2.11}  # per note, Sec. 4; the VAE's value is not given


@dataclasses.dataclass
class Table:
  header: list[str]
  rows: list[list[str]]


@dataclasses.dataclass
class Checklist:
  items: list[tuple[bool, str]]  # (met, what with its numbers)


@dataclasses.dataclass
class Verdicts:
  items: list[tuple[str, str, str, str, str]]  # (mark, verdict, claim, headline, evidence)


@dataclasses.dataclass
class Section:
  """A titled part of the results, rendered alike to results.md and results.html."""
  title: str
  blocks: list[str | Table | Checklist | Verdicts]  # paragraphs, tables, checklists and verdicts in order
  folded: bool = False  # long evidence: results.html shows its title and opens it on a click
