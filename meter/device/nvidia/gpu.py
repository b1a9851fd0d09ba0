"""One NVIDIA GPU behind the seam (:class:`meter.device.gpu.GpuDevice`), each field probed once.

A field the device does not support (NVML_ERROR_NOT_SUPPORTED) is never queried again and reads
as None; it is never reported as 0. Units are converted here, once: mW -> W, mJ -> J, MHz -> Hz,
percent -> ratio.
"""

from __future__ import annotations

import time

from meter.device.gpu import GpuDescription, GpuHealth, GpuIdentity, GpuProcess
from meter.device.nvidia.gpm import NvmlGpm
from meter.device.nvidia.health import NvmlHealth
from meter.device.nvidia.nvml import NvmlSession
from meter.device.reading import Reading

FIELDS = (
    "utilization",
    "power_fields",
    "power_usage",
    "energy",
    "sm_clock",
    "mem_clock",
    "clock_events",
    "memory",
    "temperature",
    "power_limit",
)

_ARCH_NAMES = {
    2: "kepler",
    3: "maxwell",
    4: "pascal",
    5: "volta",
    6: "turing",
    7: "ampere",
    8: "ada",
    9: "hopper",
    10: "blackwell",
}


class NvmlGpu:
    """One GPU, read through an open :class:`NvmlSession`."""

    def __init__(self, session: NvmlSession, index: int):
        self.session = session
        self.index = index
        self.handle = session.handle(index)
        self.identity: GpuIdentity = session.identity(index)
        nv = session.nv
        arch = session.optional(nv.nvmlDeviceGetArchitecture, self.handle)
        self.architecture = _ARCH_NAMES.get(arch, "unknown") if arch is not None else "unknown"
        self._power_field_ids = [nv.NVML_FI_DEV_POWER_INSTANT, nv.NVML_FI_DEV_POWER_AVERAGE]
        self.supported: dict[str, bool] = {f: True for f in FIELDS}
        self.supported_power_fields = {"instant": True, "average": True}
        self.gpm = NvmlGpm(session, self.handle)
        self._health = NvmlHealth(session, self.handle)
        self.read()  # probes every field once
        self.power_semantics = self._power_semantics()

    def _power_semantics(self) -> str:
        if self.supported_power_fields["instant"]:
            return "instant (field NVML_FI_DEV_POWER_INSTANT)"
        if self.supported_power_fields["average"]:
            return "1 s average (field NVML_FI_DEV_POWER_AVERAGE)"
        if self.supported["power_usage"]:
            # nvmlDeviceGetPowerUsage averages over 1 s on Ampere (except GA100) and newer.
            averaged = self.architecture in ("ampere", "ada", "hopper", "blackwell")
            return "nvmlDeviceGetPowerUsage (" + ("1 s average" if averaged else "instant") + f", {self.architecture})"
        return "unsupported"

    def _get(self, field: str, fn, *args):
        if not self.supported[field]:
            return None
        value, status = self.session.query(fn, *args)
        if status == "unsupported":
            self.supported[field] = False
        return value

    def read(self) -> Reading:
        nv, h = self.session.nv, self.handle
        t = time.monotonic()
        util = self._get("utilization", nv.nvmlDeviceGetUtilizationRates, h)
        instant = average = None
        fields = self._get("power_fields", nv.nvmlDeviceGetFieldValues, h, self._power_field_ids)
        if fields is not None:
            for key, fv in zip(("instant", "average"), fields):
                if fv.nvmlReturn == 0:
                    value = fv.value.uiVal / 1e3
                    if key == "instant":
                        instant = value
                    else:
                        average = value
                elif fv.nvmlReturn == nv.NVML_ERROR_NOT_SUPPORTED:
                    self.supported_power_fields[key] = False
            if not any(self.supported_power_fields.values()):
                self.supported["power_fields"] = False
        usage = None
        if instant is None and average is None:
            mw = self._get("power_usage", nv.nvmlDeviceGetPowerUsage, h)
            usage = None if mw is None else mw / 1e3
        energy = self._get("energy", nv.nvmlDeviceGetTotalEnergyConsumption, h)
        sm = self._get("sm_clock", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
        mem = self._get("mem_clock", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)
        events = self._get("clock_events", nv.nvmlDeviceGetCurrentClocksEventReasons, h)
        memory = self._get("memory", nv.nvmlDeviceGetMemoryInfo, h)
        temp = self._get("temperature", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
        limit = self._get("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit, h)
        gpm = self.gpm.read()
        return Reading(
            t_s=t,
            utilization_ratio=None if util is None else util.gpu / 100.0,
            memory_utilization_ratio=None if util is None else util.memory / 100.0,
            power_w=instant if instant is not None else (average if average is not None else usage),
            power_instant_w=instant,
            power_average_w=average if average is not None else usage,
            energy_j=None if energy is None else energy / 1e3,
            sm_clock_hz=None if sm is None else sm * 1e6,
            mem_clock_hz=None if mem is None else mem * 1e6,
            clock_event_mask=None if events is None else int(events),
            memory_used_bytes=None if memory is None else int(memory.used),
            memory_total_bytes=None if memory is None else int(memory.total),
            temperature_c=None if temp is None else float(temp),
            power_limit_w=None if limit is None else limit / 1e3,
            sm_activity_ratio=gpm.sm_activity_ratio,
            tensor_activity_ratio=gpm.tensor_activity_ratio,
            dram_bandwidth_ratio=gpm.dram_bandwidth_ratio,
        )

    def read_energy_j(self) -> float | None:
        """The energy counter alone, for window edges (cheaper than a full read)."""
        if not self.supported["energy"]:
            return None
        nv = self.session.nv
        try:  # the hot path of every window edge: one NVML call, no helper frames
            return nv.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3
        except nv.NVMLError:
            pass  # classified below: lost (raises), unsupported (remembered) or transient (None)
        value = self._get("energy", nv.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        return None if value is None else value / 1e3

    def health(self) -> GpuHealth:
        return self._health.read()

    def processes(self) -> list[GpuProcess]:
        """Compute processes on this GPU (none where the driver cannot list them)."""
        nv = self.session.nv
        # the versioned call: the unversioned wrapper raises a non-NVML error on a library without it
        call = getattr(nv, "nvmlDeviceGetComputeRunningProcesses_v3", None) or nv.nvmlDeviceGetComputeRunningProcesses
        found = self.session.optional(call, self.handle)
        return [GpuProcess(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in found or []]

    def close(self) -> None:
        self.gpm.close()
        self._health.close()

    def describe(self) -> GpuDescription:
        return GpuDescription(
            index=self.index,
            name=self.identity.name,
            uuid=self.identity.uuid,
            pci_bus_id=self.identity.pci_bus_id,
            architecture=self.architecture,
            mig_enabled=self.identity.mig_enabled,
            power_semantics=self.power_semantics,
            supported={
                **self.supported,
                "power_instant": self.supported_power_fields["instant"],
                "power_average": self.supported_power_fields["average"],
                "gpm": self.gpm.supported,
                **self._health.supported,
            },
        )
