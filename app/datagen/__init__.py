"""Generators of realistic synthetic data (sales histories) for back-tests, demos and benchmarks."""
