"""Deterministic demo data: a realistic product event stream for demos, tests and benchmarks."""
