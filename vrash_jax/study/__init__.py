"""The reproduction study built on the library: the paper's comparison and claims.

* `study`: `Study`, the frozen object a sweep is built from (data, workdir, configs, models,
  seeds, `ClaimsPlan`), whose splits load once.
* `rundir`: `RunDir`, the one owner of a run's folder.
* `runs`: how runs are trained or resumed, in groups and lanes; the frontier's points.
* `run_plan`: the plan a sweep says before it starts, with a projected wall time, and its progress.
* `sweep`: plan, train, evaluate, measure and judge the claims, write WORKDIR/results.json, the
  one source of every number `vrash_jax.report` renders.
* `measurements`: what the claims need from trained models (frontier, length, samples, latents),
  each measured once (`Measured`).
* `claim_registry`: the claims a study judges, one registered function each.
* `claims`: the statistics and verdicts (numpy/scipy/sklearn only).
* `melody_metrics`: objective metrics of melodies (repetition, diversity, structure).
* `listening`: the samples and interpolations the results page plays, as MIDI files.
* `stages`: what a study says as it goes: its stages, and the time each part leaves.

Importing this package is cheap; its modules load jax when they need it.
"""
RESULTS = 'results.json'  # in the workdir: every number of a sweep, the one source of its report
