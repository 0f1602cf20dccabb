"""Benchmarks of orderflow on the embedded stack: they print figures, they assert nothing.

`python -m bench.throughput` compares the fully automatic order path with a baseline
workflow of eight no-op activities on the same Temporal server.
"""
