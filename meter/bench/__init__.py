"""Benchmarks: cases, timing, metrics and the harness behind meter bench and meter run."""
