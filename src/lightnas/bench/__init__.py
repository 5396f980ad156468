"""Tabular benchmarks: spaces whose every architecture is already measured."""
