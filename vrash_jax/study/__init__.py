"""The reproduction study built on the library: the paper's comparison and claims.

* `runs`: where each run of a study lives, and how it is trained or resumed.
* `run_plan`: the plan a sweep says before it starts, with a projected wall time, and its progress.
* `sweep`: every model x seed trained and evaluated, the claims measured; writes
  WORKDIR/results.json, the one source of every number `vrash_jax.report` renders.
* `measurements`: what the claims need from trained models (frontier, length, samples, latents).
* `claims`: verdicts from those measurements (numpy/scipy/sklearn only).
* `melody_metrics`: objective metrics of melodies (repetition, diversity, structure).
* `listening`: the samples and interpolations the results page plays, as MIDI files.
* `stages`: what a study says as it goes: its stages, and the time each part leaves.

Importing this package is cheap; its modules load jax when they need it.
"""
RESULTS = 'results.json'  # in the workdir: every number of a sweep, the one source of its report
