"""Benchmarks whose figures go in BENCHMARKS.md: the train step (and its PyTorch peer),
bucketing, sampling, data preparation, and a per-kernel profile of a step."""
