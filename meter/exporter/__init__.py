"""The Prometheus exporter: per-GPU telemetry, running cost, and the latest benchmark results."""
