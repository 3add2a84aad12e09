"""Benchmarks whose figures go in BENCHMARKS.md, each reached as `vrash-bench NAME` (`cli.py`)
through one harness (`harness.py`): the train step (and its PyTorch peer), a whole machine,
bucketing, groups and lanes of runs, sampling, reading, data preparation, and a per-kernel
profile of a step."""
