"""The machine: NVML for GPUs, Linux powercap for CPU energy, and what software is installed."""
