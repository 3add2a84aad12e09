"""Configs (`configs/`), the thin absl launchers behind the `vrash-*` commands, and the
benchmarks (`bench/`)."""
