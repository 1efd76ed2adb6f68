"""Benchmarks: each prints its figures beside a baseline measured in the same run.

Not tests: nothing here asserts a time. Run them with `make bench` (scripts/bench.sh).
"""
