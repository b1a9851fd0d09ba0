"""Metering the user's own jobs: ``meter measure -- CMD`` and the Python API (``meter.Meter``).

Both measure the GPUs a job may use through one telemetry monitor, in consecutive one-minute
segments, and write a run file of kind ``job`` through the run-file contract (``meter.results``):
duration, per-GPU energy (the counter, integrated power as a cross-check, a confidence flag),
power, utilization, clocks, throttle reasons, peak memory, dollars and, given work counts,
tokens per second, achieved TFLOP/s, MFU and joules per token. Docs: docs/measure.md.
"""
