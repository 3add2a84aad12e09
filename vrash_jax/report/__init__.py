"""The report of a study, rendered from WORKDIR/results.json alone (no training, no jax).

* `render`: every file at once (`write_report`), or again from results.json (`rebuild`).
* `sections`, `claims_sections`: the results as sections of paragraphs, tables and checklists
  (`blocks`), which `markdown` writes as results.md and `page` as results.html.
* `figures`: figure5.png, figure6.png, frontier.png and curves.png.
* `piano_roll`, `audio`: what the page shows and plays of each MIDI file.
"""
