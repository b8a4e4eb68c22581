"""Benchmarks run against a stack of their own (`make bench`)."""
