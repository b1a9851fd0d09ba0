"""Cluster scale: meter bench --distributed under torchrun, communication benchmarks, gathering at rank 0."""
