"""A telemetry sample of one device (a GPU through NVML, or the CPU through RAPL), in base units."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Reading:
    """One telemetry sample of one device. None means not supported (or not readable this time), never 0."""

    t_s: float  # time.monotonic()
    utilization_ratio: float | None  # share of the last sample period with a kernel running
    memory_utilization_ratio: float | None
    power_w: float | None  # the preferred reading: instant where available
    power_instant_w: float | None
    power_average_w: float | None
    energy_j: float | None  # an energy counter: NVML (J since driver load) or RAPL
    sm_clock_hz: float | None
    mem_clock_hz: float | None
    clock_event_mask: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    power_limit_w: float | None
    # Profiling activity over the last sample period (NVML GPM, Hopper and newer), 0-1
    sm_activity_ratio: float | None = None  # share of SMs busy
    tensor_activity_ratio: float | None = None  # share of time the SMs ran any tensor-core work
    dram_bandwidth_ratio: float | None = None  # DRAM bandwidth used over its peak

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
