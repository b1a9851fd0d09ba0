"""Telemetry sources: something the sampler can read. A GPU through the device seam, or the CPU through RAPL."""

from __future__ import annotations

import time
from typing import Protocol

from meter.device.gpu import GpuDevice
from meter.device.rapl import RaplCounter
from meter.device.reading import Reading
from meter.results.document import TelemetrySource


class Source(Protocol):
    key: str

    def read(self) -> Reading: ...

    def read_energy_j(self) -> float | None: ...

    def describe(self) -> TelemetrySource: ...


class GpuSource:
    """A GPU read through the seam (any vendor); ``key`` is ``gpu<index>``."""

    def __init__(self, gpu: GpuDevice):
        self.gpu = gpu
        self.key = f"gpu{gpu.index}"
        self.read_energy_j = gpu.read_energy_j  # read at every window edge: one call fewer

    def read(self) -> Reading:
        return self.gpu.read()

    def read_energy_j(self) -> float | None:
        return self.gpu.read_energy_j()

    def describe(self) -> TelemetrySource:
        gpu = self.gpu.describe()
        return TelemetrySource(
            kind="gpu",
            index=gpu.index,
            name=gpu.name,
            uuid=gpu.uuid,
            pci_bus_id=gpu.pci_bus_id,
            architecture=gpu.architecture,
            mig_enabled=gpu.mig_enabled,
            power_semantics=gpu.power_semantics,
            supported=dict(gpu.supported),
        )


class CpuSource:
    """CPU package energy from RAPL; power is the average since the previous reading."""

    key = "cpu"

    def __init__(self, rapl: RaplCounter):
        self.rapl = rapl

    def read(self) -> Reading:
        energy, power = self.rapl.read_power_w()
        return Reading(
            t_s=time.monotonic(),
            utilization_ratio=None,
            memory_utilization_ratio=None,
            power_w=power,
            power_instant_w=None,
            power_average_w=power,
            energy_j=energy,
            sm_clock_hz=None,
            mem_clock_hz=None,
            clock_event_mask=None,
            memory_used_bytes=None,
            memory_total_bytes=None,
            temperature_c=None,
            power_limit_w=None,
        )

    def read_energy_j(self) -> float | None:
        return self.rapl.read_energy_j()

    def describe(self) -> TelemetrySource:
        return TelemetrySource(
            kind="cpu",
            domains=self.rapl.names,
            power_semantics="RAPL energy difference between samples",
            supported={"energy": True, "power": True},
        )
