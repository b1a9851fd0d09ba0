"""Telemetry: a background sampler over GPUs (NVML) or the CPU (RAPL), and energy windows.

``with monitor_for_device(...) as monitor: with monitor.window("moe.train"): ...`` gives each
window's duration, energy (counter and integrated power, with their disagreement), power,
utilization, clocks and throttle reasons.
"""
