"""Error counters of one NVIDIA GPU: XID events, ECC counts, row remapping.

XIDs arrive as NVML events (``nvmlEventTypeXidCriticalError``): the device is registered on an
event set when it is opened and each read drains the set without waiting. ECC and row-remap
counters are the driver's own. Each counter is probed once; one the GPU lacks (ECC off, no row
remapper before Ampere) reads None from then on, never 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from meter.device.gpu import GpuHealth, GpuLost
from meter.device.nvidia.nvml import NvmlSession, error_name

_LOST = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_GPU_NOT_FOUND")
MAX_EVENTS_PER_READ = 1000  # an event storm must not hold the sampler


class NvmlHealth:
    def __init__(self, session: NvmlSession, handle: Any):
        self.session, self.handle = session, handle
        self.xids: Counter[int] = Counter()
        self.last_xid: int | None = None
        self.supported = {"xid": False, "ecc": True, "row_remap": True}
        self._events = self._register_xid_events()

    def _register_xid_events(self) -> Any:
        nv = self.session.nv
        kinds = self.session.optional(nv.nvmlDeviceGetSupportedEventTypes, self.handle)
        if kinds is None or not kinds & nv.nvmlEventTypeXidCriticalError:
            return None
        event_set = self.session.optional(nv.nvmlEventSetCreate)
        if event_set is None:
            return None
        status = self.session.query(
            nv.nvmlDeviceRegisterEvents, self.handle, nv.nvmlEventTypeXidCriticalError, event_set
        )
        if status[1] != "ok":
            self.session.optional(nv.nvmlEventSetFree, event_set)
            return None
        self.supported["xid"] = True
        return event_set

    def _drain_xids(self) -> None:
        nv = self.session.nv
        for _ in range(MAX_EVENTS_PER_READ):
            try:
                data = nv.nvmlEventSetWait_v2(self._events, 0)
            except nv.NVMLError as exc:
                name = error_name(nv, exc)
                if name in _LOST:
                    raise GpuLost(f"GPU lost while reading XID events: {exc}") from None
                return  # NVML_ERROR_TIMEOUT: nothing more waiting
            if data.eventType & nv.nvmlEventTypeXidCriticalError:
                self.last_xid = int(data.eventData)
                self.xids[self.last_xid] += 1

    def _probe(self, key: str, fn, *args):
        if not self.supported[key]:
            return None
        value, status = self.session.query(fn, *args)
        if status == "unsupported":
            self.supported[key] = False
        return value

    def read(self) -> GpuHealth:
        nv, h = self.session.nv, self.handle
        if self._events is not None:
            self._drain_xids()
        ecc = {}
        for kind, error_type in (
            ("corrected", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            ("uncorrected", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        ):
            for scope, counter in (("volatile", nv.NVML_VOLATILE_ECC), ("aggregate", nv.NVML_AGGREGATE_ECC)):
                value = self._probe("ecc", nv.nvmlDeviceGetTotalEccErrors, h, error_type, counter)
                ecc[f"ecc_{kind}_{scope}"] = None if value is None else int(value)
        remap = self._probe("row_remap", nv.nvmlDeviceGetRemappedRows, h)
        return GpuHealth(
            xid_errors=dict(self.xids) if self.supported["xid"] else None,
            last_xid=self.last_xid,
            **ecc,
            remapped_rows_correctable=None if remap is None else int(remap[0]),
            remapped_rows_uncorrectable=None if remap is None else int(remap[1]),
            row_remap_pending=None if remap is None else bool(remap[2]),
            row_remap_failure=None if remap is None else bool(remap[3]),
        )

    def close(self) -> None:
        if self._events is not None:
            self.session.optional(self.session.nv.nvmlEventSetFree, self._events)
            self._events = None
